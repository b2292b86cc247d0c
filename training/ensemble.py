"""Teacher ensembles: fused and split soft-label targets, weights chosen on val only.

A config file (tracked; examples in ``training/configs/``) names the members and
either fixed weights or ``"weights": "search"``::

    {"name": "rn18_b3", "temperature": 2.0,
     "members": [{"name": "rn18", "path": "runs/teacher_rn18", "weight": 0.7},
                 {"name": "b3",   "path": "runs/teacher_b3",   "weight": 0.3}]}

A member path is a soft-label folder or a run folder holding
``softlabels/<index>-<fp8>/``; relative paths are taken from ``--root`` (default: the
current folder). Every member passes the alignment gate first.

Outputs in ``OUT``:

- ``softlabels/<index>-<fp8>/``: the fused target sum_i w_i softmax(z_i / T), kind
  ``ensemble_fused`` (its ``logits`` are T * log(fused), so softmax(logits / T) is the target);
- ``softlabels_split/<index>-<fp8>/``: the split targets, each member's logits and probs
  at T kept apart, with the weights (kind ``ensemble_split``);
- ``ensemble.json`` (config, resolved members, weights, temperature, search table),
  ``classes.json``, and, as for a single teacher, ``metrics_{val,test}.json``, confusion
  matrices, ``logits_{val,test}.npz`` and the calibration files. The ensemble as a
  classifier is log(sum_i w_i softmax(z_i)) (member probabilities at T=1); that is what
  is evaluated and calibrated.

With ``"weights": "search"`` the weights are searched on a simplex grid using the val
rows only (val NLL of the T=1 ensemble, then val accuracy, then closeness to equal
weights); test rows are never looked at, to avoid the earlier scripts' test-set leak.
"""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.calibration import nll_from_logits, softmax
from fer_models.classes import write_classes_json
from fer_models.errors import ArtifactError
from fer_models.files import atomic_write_text, read_json, write_json

from training.alignment import check_alignment, require_aligned
from training.index import CanonicalIndex, load_index
from training.softlabel_files import DEFAULT_TEMPERATURE, fuse, write_softlabels, write_split_softlabels

SEARCH_METRICS = ("nll", "accuracy")


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate an ensemble config."""
    path = Path(path)
    cfg = read_json(path)
    if not isinstance(cfg, dict) or not isinstance(cfg.get("members"), list) or not cfg["members"]:
        raise ArtifactError(path, "an ensemble config needs a non-empty 'members' list")
    search = cfg.get("weights") == "search"
    if "weights" in cfg and not search:
        raise ArtifactError(path, "'weights' may only be \"search\"; give fixed weights per member")
    for i, m in enumerate(cfg["members"]):
        if not isinstance(m, dict) or "path" not in m:
            raise ArtifactError(path, f"member {i} needs a 'path'")
        if not search:
            w = m.get("weight")
            if not isinstance(w, (int, float)) or isinstance(w, bool) or w < 0:
                raise ArtifactError(path, f"member {i} needs a non-negative 'weight' (or set \"weights\": \"search\")")
    if not search and sum(float(m["weight"]) for m in cfg["members"]) <= 0:
        raise ArtifactError(path, "member weights sum to zero")
    metric = (cfg.get("search") or {}).get("metric", "nll")
    if metric not in SEARCH_METRICS:
        raise ArtifactError(path, f"search metric must be one of {SEARCH_METRICS}")
    t = cfg.get("temperature", DEFAULT_TEMPERATURE)
    if not isinstance(t, (int, float)) or t <= 0:
        raise ArtifactError(path, f"temperature must be a positive number, got {t!r}")
    return cfg


def simplex_grid(n_members: int, step: float) -> np.ndarray:
    """All weight vectors on the simplex with coordinates that are multiples of ``step``."""
    k = int(round(1.0 / step))
    if not np.isclose(k * step, 1.0):
        raise ValueError(f"search step {step} must divide 1")
    rows = [c for c in itertools.product(range(k + 1), repeat=n_members - 1) if sum(c) <= k]
    return np.array([[*c, k - sum(c)] for c in rows], dtype=np.float64) / k


def search_weights(member_logits_val: np.ndarray, labels_val: np.ndarray, step: float = 0.05,
                   metric: str = "nll") -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Weights minimising val NLL (or maximising val accuracy) of the T=1 ensemble; returns them and the table.

    Ties: the other metric, then the smallest distance to equal weights.
    """
    probs = softmax(np.asarray(member_logits_val, dtype=np.float64))  # (M, n, K), T=1
    m = probs.shape[0]
    table = []
    for w in simplex_grid(m, step):
        fused = fuse(probs, w)
        z = np.log(np.clip(fused, 1e-30, None))
        table.append({"weights": w.tolist(), "nll": nll_from_logits(z, labels_val),
                      "accuracy": float(np.mean(fused.argmax(1) == labels_val)),
                      "dist_uniform": float(np.linalg.norm(w - 1.0 / m))})
    if metric == "nll":
        key = lambda r: (round(r["nll"], 9), -r["accuracy"], r["dist_uniform"])  # noqa: E731
    else:
        key = lambda r: (-r["accuracy"], round(r["nll"], 9), r["dist_uniform"])  # noqa: E731
    best = min(table, key=key)
    return np.asarray(best["weights"]), table


def build_ensemble(config_path: str | Path, index_dir: str | Path | CanonicalIndex, out: str | Path,
                   root: str | Path | None = None, calibrate: bool = True) -> Path:
    """Gate every member, fix the weights, write fused and split targets, evaluate and calibrate."""
    from training.evaluate import write_split_report

    config_path = Path(config_path)
    cfg = load_config(config_path)
    index = index_dir if isinstance(index_dir, CanonicalIndex) else load_index(index_dir)
    base = Path(root) if root is not None else Path.cwd()
    out = Path(out)
    t = float(cfg.get("temperature", DEFAULT_TEMPERATURE))

    members, logits = [], []
    for i, m in enumerate(cfg["members"]):
        p = Path(m["path"]).expanduser()
        sl = require_aligned(p if p.is_absolute() else base / p, index)
        if sl.kind == "ensemble_split":
            raise ArtifactError(sl.path, "split targets cannot be an ensemble member; use the fused folder")
        name = str(m.get("name") or sl.path.parent.parent.name or f"member{i}")
        members.append({"name": name, "softlabel_dir": str(sl.path.resolve()), "kind": sl.kind,
                        "arrays_sha256": sl.meta["arrays_sha256"], "member_temperature": sl.temperature,
                        "producer": sl.meta.get("producer")})
        logits.append(sl.arrays["logits"].astype(np.float64))
    zs = np.stack(logits)  # (M, N, K)
    names = [m["name"] for m in members]
    if len(set(names)) != len(names):
        raise ArtifactError(config_path, f"member names must be unique: {names}")

    table: list[dict[str, Any]] = []
    if cfg.get("weights") == "search":
        search = cfg.get("search") or {}
        val = index.positions("val")
        w, table = search_weights(zs[:, val], index.labels[val], float(search.get("step", 0.05)),
                                  search.get("metric", "nll"))
        source = f"searched on val ({search.get('metric', 'nll')}, step {search.get('step', 0.05)})"
    else:
        w = np.array([float(m["weight"]) for m in cfg["members"]])
        source = "config"
    w = w / w.sum()
    for m, wi in zip(members, w):
        m["weight"] = float(wi)

    producer = {"ensemble": {"name": cfg.get("name", config_path.stem), "config": str(config_path.resolve()),
                             "weights_source": source},
                "members": members, "weights": [float(x) for x in w]}
    fused_t = fuse(softmax(zs / t), w)
    pseudo = t * np.log(np.clip(fused_t, 1e-30, None))
    fused_dir = write_softlabels(out / "softlabels" / index.short_name, index, pseudo, t, "ensemble_fused",
                                 producer, probs=fused_t)
    split_dir = write_split_softlabels(out / "softlabels_split" / index.short_name, index, zs, w, names, t, producer)
    for d in (fused_dir, split_dir):
        res = check_alignment(d, index)
        if res["status"] != "passed":
            raise ArtifactError(d, "alignment diagnostic failed: " + "; ".join(res["problems"]))

    write_classes_json(out, index.classes, dataset=index.name)
    write_json(out / "ensemble.json", {"config": cfg, "name": producer["ensemble"]["name"], "temperature": t,
                                       "weights": dict(zip(names, [float(x) for x in w])),
                                       "weights_source": source, "members": members,
                                       "index_name": index.name, "index_fingerprint": index.fingerprint,
                                       "classifier": "log(sum_i w_i softmax(z_i)) at T=1",
                                       "fused_dir": str(fused_dir), "split_dir": str(split_dir)})
    if table:
        buf = io.StringIO()
        wr = csv.writer(buf, lineterminator="\n")
        wr.writerow([*(f"w_{n}" for n in names), "val_nll", "val_accuracy"])
        for r in table:
            wr.writerow([*(f"{x:.4f}" for x in r["weights"]), f"{r['nll']:.6f}", f"{r['accuracy']:.6f}"])
        atomic_write_text(out / "weight_search.csv", buf.getvalue())

    classifier = np.log(np.clip(fuse(softmax(zs), w), 1e-30, None))
    for split in ("val", "test"):
        pos = index.positions(split)
        if len(pos):
            mt = write_split_report(out, split, classifier[pos], pos, index, index.classes,
                                    {"ensemble": producer["ensemble"]["name"], "weights": [float(x) for x in w]})
            print(f"ensemble {split}: acc {mt['accuracy']:.4f} macro_f1 {mt['macro_f1']:.4f} nll {mt['nll']:.4f} "
                  f"ece {mt['ece']:.4f}")
    print(f"weights {dict(zip(names, np.round(w, 4).tolist()))} ({source}), T={t}\n"
          f"  fused -> {fused_dir}\n  split -> {split_dir}")
    if calibrate and len(index.positions("val")):
        from training.calibrate import calibrate_run

        calibrate_run(out)
    return out


def best_on_val(folders: Sequence[str | Path]) -> Path:
    """The ensemble folder with the highest val accuracy (ties: lower val NLL), the students' teacher.

    Chosen on val only, like every choice in the pipeline; every folder must hold an ensemble
    (``ensemble.json``) evaluated on val (``metrics_val.json``) over the same index.
    """
    if not folders:
        raise ArtifactError(None, "no ensemble folders to choose from")
    rows, prints = [], set()
    for f in map(Path, folders):
        for name in ("ensemble.json", "metrics_val.json"):
            if not (f / name).is_file():
                raise ArtifactError(f / name, "missing: not an evaluated ensemble folder (run fer-train ensemble)")
        ens, val = read_json(f / "ensemble.json"), read_json(f / "metrics_val.json")
        prints.add(ens.get("index_fingerprint"))
        try:
            rows.append((-float(val["accuracy"]), float(val["nll"]), str(f)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f / "metrics_val.json", f"no numeric accuracy / nll ({exc})") from exc
    if len(prints) > 1:
        raise ArtifactError(Path(folders[0]), f"ensembles were built on different indexes: {sorted(map(str, prints))}")
    return Path(min(rows)[2])


def add_parser(sub: Any) -> None:
    q = sub.add_parser("pick-ensemble", help="print the ensemble folder with the best val accuracy (ties: val NLL)")
    q.add_argument("folders", nargs="+", help="ensemble folders written by fer-train ensemble")
    q.set_defaults(func=lambda a: (print(best_on_val(a.folders)), 0)[1])
    p = sub.add_parser("ensemble", help="fuse aligned teachers into fused and split soft-label targets")
    p.add_argument("config", help="ensemble config JSON (see training/configs/)")
    p.add_argument("--index", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--root", default=None, help="folder that relative member paths start from (default: cwd)")
    p.add_argument("--no-calibrate", action="store_true")
    p.set_defaults(func=lambda a: (build_ensemble(a.config, a.index, a.out, a.root, not a.no_calibrate), 0)[1])

