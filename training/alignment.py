"""The alignment gate: prove a soft-label folder belongs to this index, row by row, before using it.

The earlier scripts compared paths and shapes only, so a shuffled or re-ordered
array passed. Here the gate compares what matters:

- the index fingerprint and the row count (wrong index, truncated file);
- the class list and order (re-ordered classes);
- the ``sample_id`` and ``label`` of every row against the index (re-ordered rows);
- a hash of the arrays against the one recorded at export (edited after export);
- that ``probs`` equal softmax(logits / T) (arrays from different runs mixed);
- that the argmax accuracy per split still equals the one recorded at export (rows
  or class columns shuffled inside the arrays, even when the rest was rewritten to fit);
- and, in the full diagnostic (``check_alignment``), a random sample of rows
  recomputed from the producer (the teacher checkpoint, or the ensemble members)
  and compared within a tolerance.

``require_aligned`` is what every consumer (ensembles, students) calls first; it
runs the cheap checks and refuses a folder whose recorded diagnostic failed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from fer_models.calibration import softmax
from fer_models.classes import check_same_classes, read_classes_json
from fer_models.errors import ArtifactError, ClassListMismatch
from fer_models.files import sha256_file, write_json

from training.artifacts import arrays_sha256, load_npz
from training.index import CanonicalIndex, load_index
from training.softlabel_files import (ALIGNMENT_FILE, SOFTLABELS_FILE, SoftLabels, fuse, now_iso,
                                      read_alignment_meta, recorded_accuracy, resolve_softlabel_dir)

ACCURACY_TOL = 1e-9
PROBS_TOL = 1e-4
RECOMPUTE_TOL = 1e-3
DIAG_FAILED = "the recorded alignment diagnostic failed"
DIAG_STALE = "the recorded alignment diagnostic is stale"


def _as_index(index: CanonicalIndex | str | Path) -> CanonicalIndex:
    return index if isinstance(index, CanonicalIndex) else load_index(index)


def structural_problems(folder: Path, index: CanonicalIndex) -> tuple[list[str], dict[str, Any], dict[str, np.ndarray]]:
    """Every cheap check of the gate; returns (problems, alignment.json, arrays)."""
    meta = read_alignment_meta(folder)
    problems: list[str] = []
    # classes: names and order
    check_same_classes(index.classes, meta["classes"], folder / ALIGNMENT_FILE, "soft-label classes")
    if (folder / "classes.json").is_file():
        check_same_classes(index.classes, read_classes_json(folder), folder / "classes.json", "soft-label classes")
    # which index
    if meta["index_fingerprint"] != index.fingerprint:
        problems.append(f"made for index {meta.get('index_name')!r} (fingerprint {str(meta['index_fingerprint'])[:12]}) "
                        f"but this is index {index.name!r} (fingerprint {index.fingerprint[:12]})")
    if int(meta["n_rows"]) != len(index):
        problems.append(f"alignment.json records {meta['n_rows']} rows, the index has {len(index)}")
    split = meta["kind"] == "ensemble_split"
    main = ("member_logits", "member_probs", "weights") if split else ("logits", "probs")
    arrays = load_npz(folder / SOFTLABELS_FILE, main + ("sample_id", "label"))
    n = arrays["sample_id"].shape[0]
    lead = arrays["member_probs"].shape[1] if split else arrays["probs"].shape[0]
    k = (arrays["member_probs"] if split else arrays["probs"]).shape[-1]
    if n != len(index) or lead != len(index):
        problems.append(f"arrays hold {lead} rows ({n} sample ids), the index has {len(index)}: truncated or padded")
        return problems, meta, arrays
    if k != len(index.classes):
        problems.append(f"arrays have {k} class columns, the index has {len(index.classes)} classes")
        return problems, meta, arrays
    ids = arrays["sample_id"].astype(str)
    bad = np.flatnonzero(ids != np.array(index.sample_ids))
    if len(bad):
        i = int(bad[0])
        problems.append(f"{len(bad)} rows are in another order than the index: row {i} holds {ids[i]!r}, "
                        f"the index has {index.sample_ids[i]!r}")
    bad = np.flatnonzero(arrays["label"].astype(np.int64) != index.labels)
    if len(bad):
        problems.append(f"{len(bad)} rows carry other labels than the index (first at row {int(bad[0])})")
    digest = arrays_sha256(arrays)
    if digest != meta["arrays_sha256"]:
        problems.append("arrays differ from the ones recorded at export (arrays_sha256 mismatch): the file was "
                        "changed or replaced after export")
    t = float(meta["temperature"])
    if split:
        w = arrays["weights"]
        if len(w) != arrays["member_probs"].shape[0] or not np.isclose(w.sum(), 1.0) or np.any(w < 0):
            problems.append(f"member weights {w.tolist()} are not non-negative and summing to 1")
        zs, ps = arrays["member_logits"], arrays["member_probs"]
    else:
        zs, ps = arrays["logits"][None], arrays["probs"][None]
    err = float(np.max(np.abs(softmax(zs.astype(np.float64) / t) - ps))) if zs.size else 0.0
    if err > PROBS_TOL:
        problems.append(f"probs are not softmax(logits / T={t}) (max difference {err:.2e}): arrays mixed up")
    scores = fuse(arrays["member_probs"], arrays["weights"]) if split else arrays["probs"]
    now = recorded_accuracy(scores, index)
    for s, rec in meta["recorded_accuracy"].items():
        cur = now.get(s)
        if rec is None and cur is None:
            continue
        if rec is None or cur is None or abs(float(rec) - float(cur)) > ACCURACY_TOL:
            problems.append(f"argmax accuracy on {s} is {cur if cur is None else round(cur, 6)} but "
                            f"{rec if rec is None else round(float(rec), 6)} was recorded at export: rows or class "
                            "columns are shuffled")
    diag = meta.get("diagnostic") or {}
    if diag.get("status") == "failed":
        problems.append(f"{DIAG_FAILED}: " + "; ".join(diag.get("problems", [])))
    elif diag.get("status") == "passed" and diag.get("arrays_sha256") not in (None, meta["arrays_sha256"]):
        problems.append(f"{DIAG_STALE}: the arrays (and their recorded hash) were rewritten after the diagnostic "
                        "passed; rerun fer-train check-alignment")
    return problems, meta, arrays


def require_aligned(softlabel_dir: str | Path, index: CanonicalIndex | str | Path) -> SoftLabels:
    """The gate every consumer calls first: returns the soft labels or raises ArtifactError saying what differs."""
    index = _as_index(index)
    folder = resolve_softlabel_dir(softlabel_dir, index)
    problems, meta, arrays = structural_problems(folder, index)
    if problems:
        raise ArtifactError(folder, "soft labels are not aligned with the index: " + "; ".join(problems))
    if (meta.get("diagnostic") or {}).get("status") != "passed":
        # never train on soft labels whose rows were not recomputed from their producer: run it now
        print(f"{folder}: alignment diagnostic never run; running it now (fer-train check-alignment)",
              file=sys.stderr)
        try:
            result = check_alignment(folder, index)
        except OSError:  # a read-only folder: judge it all the same, without recording the verdict
            result = check_alignment(folder, index, write=False)
        if result["status"] != "passed":
            raise ArtifactError(folder, "alignment diagnostic failed: " + "; ".join(result["problems"]))
        meta = read_alignment_meta(folder)
    return SoftLabels(folder, meta, arrays)


# ----------------------------------------------------------------------------- full diagnostic

def _recompute_teacher(meta: dict[str, Any], index: CanonicalIndex, rows: np.ndarray, checkpoint: str | Path | None,
                       data_root: str | Path | None) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    from training.data import FERDataset, checkpoint_crop_spec
    from training.evaluate import predict_logits
    from training.models import model_from_checkpoint

    producer = meta.get("producer") or {}
    ckpt = Path(checkpoint or producer.get("checkpoint") or "")
    problems: list[str] = []
    info: dict[str, Any] = {"checkpoint": str(ckpt)}
    if not ckpt.is_file():
        raise ArtifactError(ckpt, "checkpoint that produced the soft labels not found (pass --checkpoint)")
    digest = sha256_file(ckpt)
    info["checkpoint_sha256"] = digest
    if producer.get("checkpoint_sha256") and digest != producer["checkpoint_sha256"]:
        problems.append(f"checkpoint {ckpt} is not the one that produced the soft labels (sha256 "
                        f"{digest[:12]} vs recorded {producer['checkpoint_sha256'][:12]})")
    model, ck = model_from_checkpoint(ckpt, classes=index.classes)
    spec = checkpoint_crop_spec(ck, ckpt)
    root = data_root if data_root is not None else producer.get("data_root")
    ds = FERDataset(index, spec, positions=rows, root=root if root and Path(root).exists() else None)
    tta = producer.get("tta") or "none"  # folders from before TTA existed were made without it
    info["tta"] = tta
    z, pos = predict_logits(model, ds, batch_size=64, tta=tta)
    assert np.array_equal(pos, rows)
    return z, problems, info


def _recompute_ensemble(meta: dict[str, Any], index: CanonicalIndex, rows: np.ndarray
                        ) -> tuple[np.ndarray, list[str], dict[str, Any]]:
    """Fused pseudo-logits (or member logits) of ``rows`` rebuilt from the member folders."""
    problems: list[str] = []
    members = meta.get("members") or []
    if not members:
        raise ArtifactError(None, "ensemble alignment.json lists no members")
    logits = []
    for m in members:
        sl = require_aligned(m["softlabel_dir"], index)
        if sl.meta["arrays_sha256"] != m.get("arrays_sha256"):
            problems.append(f"member {m['name']} changed since the ensemble was built ({sl.path})")
        logits.append(sl.arrays["logits"][rows].astype(np.float64))
    zs = np.stack(logits)
    return zs, problems, {"members": [m["softlabel_dir"] for m in members]}


def check_alignment(softlabel_dir: str | Path, index: CanonicalIndex | str | Path,
                    checkpoint: str | Path | None = None, n_rows: int = 64, tolerance: float = RECOMPUTE_TOL,
                    seed: int = 0, data_root: str | Path | None = None, write: bool = True) -> dict[str, Any]:
    """The full diagnostic: gate checks plus ``n_rows`` random rows recomputed from the producer.

    The result (status passed/failed, problems, max difference) is written into
    alignment.json (``diagnostic``) and returned.
    """
    index = _as_index(index)
    folder = resolve_softlabel_dir(softlabel_dir, index)
    meta = read_alignment_meta(folder)
    try:
        problems, _, arrays = structural_problems(folder, index)
    except ClassListMismatch as exc:
        problems, arrays = [exc.problem], {}
    problems = [p for p in problems if not p.startswith((DIAG_FAILED, DIAG_STALE))]  # judge the data, not an old verdict
    result: dict[str, Any] = {"status": "failed", "checked_at": now_iso(), "arrays_sha256": meta["arrays_sha256"],
                              "tolerance": tolerance,
                              "recomputed_rows": 0, "max_abs_diff": None}
    if not problems:
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(len(index), size=min(n_rows, len(index)), replace=False))
        kind = meta["kind"]
        if kind in ("teacher", "student"):
            z, extra_problems, info = _recompute_teacher(meta, index, rows, checkpoint, data_root)
            stored = arrays["logits"][rows].astype(np.float64)
        elif kind == "ensemble_fused":
            zs, extra_problems, info = _recompute_ensemble(meta, index, rows)
            t = float(meta["temperature"])
            w = np.asarray([m["weight"] for m in meta["members"]])
            z = t * np.log(np.clip(fuse(softmax(zs / t), w), 1e-30, None))
            stored = arrays["logits"][rows].astype(np.float64)
        else:  # ensemble_split
            z, extra_problems, info = _recompute_ensemble(meta, index, rows)
            stored = arrays["member_logits"][:, rows].astype(np.float64)
        problems += extra_problems
        diff = float(np.max(np.abs(z - stored)))
        result.update(info, recomputed_rows=int(len(rows)), max_abs_diff=diff)
        close = np.isclose(z, stored, atol=tolerance, rtol=tolerance)
        bad_rows = np.flatnonzero(~close.all(axis=-1).reshape(-1, len(rows)).all(axis=0))
        if len(bad_rows):
            r = int(rows[bad_rows[0]])
            problems.append(f"{len(bad_rows)} of {len(rows)} recomputed rows differ from the stored ones "
                            f"(max |diff| {diff:.3g} > {tolerance}; e.g. row {r} {index.sample_ids[r]!r})")
    result["recorded_accuracy"] = meta["recorded_accuracy"]
    result["problems"] = problems
    result["status"] = "passed" if not problems else "failed"
    if write:
        meta["diagnostic"] = result
        write_json(folder / ALIGNMENT_FILE, meta)
    return result


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check-alignment", help="verify a soft-label folder against the index (and recompute rows)")
    p.add_argument("dir", help="soft-label folder, or a run folder holding softlabels/<index>-<fp8>/")
    p.add_argument("--index", required=True)
    p.add_argument("--checkpoint", default=None, help="producer checkpoint (default: the one alignment.json names)")
    p.add_argument("--rows", type=int, default=64, help="random rows to recompute")
    p.add_argument("--tolerance", type=float, default=RECOMPUTE_TOL)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="data root if it moved since the index was built")
    p.set_defaults(func=_run_cli)


def _run_cli(args: Any) -> int:
    res = check_alignment(args.dir, args.index, args.checkpoint, args.rows, args.tolerance, args.seed, args.data)
    print(f"alignment {res['status']}: {res['recomputed_rows']} rows recomputed, max |diff| {res['max_abs_diff']}")
    for p in res["problems"]:
        print(f"  - {p}")
    return 0 if res["status"] == "passed" else 1
