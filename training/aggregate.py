"""``fer-train aggregate``: multi-seed results -> results_summary_students.csv.

One row per run, then per configuration the mean, sample std and a bootstrap
95% interval of test accuracy and macro-F1. The interval resamples test images
(pooled over the configuration's seeds), so it reflects both seed spread and
test-set size. A paired bootstrap compares two configurations on the same
resampled test images, which is fairer than comparing two independent intervals.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.calibration import macro_f1
from fer_models.errors import ArtifactError
from fer_models.files import atomic_write_text, read_json_object

SUMMARY_COLUMNS = ("row_type", "config", "run", "seed", "n_runs", "test_accuracy", "test_macro_f1",
                   "test_accuracy_std", "test_macro_f1_std", "test_accuracy_ci_low", "test_accuracy_ci_high",
                   "test_macro_f1_ci_low", "test_macro_f1_ci_high", "note")


def run_config_name(run_dir: Path) -> str:
    """The configuration a run belongs to: args.json 'config' if set, else the folder name without _s<seed>."""
    args = read_json_object(run_dir / "args.json", missing_ok=True)
    if args.get("config"):
        return str(args["config"])
    name = run_dir.name
    return name.rsplit("_s", 1)[0] if "_s" in name else name


# What makes two runs seeds of one configuration: everything that shapes the model but the seed.
# (Threads, --resume, progress bars and output paths legitimately differ.) Keys a run's args.json
# lacks (runs from before a flag existed) read as None.
RECIPE_KEYS = ("backbone", "distill", "alpha", "beta", "temperature", "dkd_warmup_epochs", "ce_weight",
               "teacher_arrays_sha256", "teacher_weights_effective", "optimizer", "negl_sha256", "epochs",
               "input_size", "in_chans", "stem_stride_effective", "last_stride", "lr", "weight_decay", "warmup_epochs",
               "label_smoothing", "random_erasing", "effective_batch", "index_fingerprint")


def run_recipe(run_dir: Path) -> dict[str, Any]:
    """The recipe fields of a run's args.json (RECIPE_KEYS)."""
    args = read_json_object(run_dir / "args.json", missing_ok=True)
    return {k: args.get(k) for k in RECIPE_KEYS}


def check_same_recipe(run_dirs: Sequence[Path], configs: Sequence[str]) -> None:
    """Refuse a configuration whose runs differ in more than the seed: pooling them would report a
    mixture (say an NL run filed under the plain KD configuration) as the mean of one recipe."""
    first: dict[str, tuple[Path, dict[str, Any]]] = {}
    for d, c in zip(run_dirs, configs):
        recipe = run_recipe(Path(d))
        if c not in first:
            first[c] = (Path(d), recipe)
            continue
        ref_dir, ref = first[c]
        diff = [k for k in RECIPE_KEYS if recipe[k] != ref[k]]
        if diff:
            shown = ", ".join(f"{k}: {ref[k]!r} vs {recipe[k]!r}" for k in diff[:4])
            raise ArtifactError(Path(d), f"filed under configuration {c!r} with {ref_dir}, but its recipe "
                                         f"differs ({shown}); give it its own --config-name")


def load_run(run_dir: Path) -> dict[str, Any]:
    """Test predictions and labels of one run (from logits_test.npz)."""
    from training.evaluate import load_split_logits

    data = load_split_logits(run_dir, "test")
    pred = np.asarray(data["logits"]).argmax(1)
    labels = np.asarray(data["labels"])
    seed = read_json_object(run_dir / "seed.json", missing_ok=True).get("seed")
    return {"run": run_dir.name, "config": run_config_name(run_dir), "seed": seed,
            "pred": pred, "labels": labels, "positions": np.asarray(data["positions"]),
            "accuracy": float(np.mean(pred == labels)), "macro_f1": macro_f1(pred, labels)}


def bootstrap_ci(preds: Sequence[np.ndarray], labels: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile interval of the seed-mean accuracy and macro-F1 over resampled test images."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    acc, f1 = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        acc.append(np.mean([np.mean(p[idx] == labels[idx]) for p in preds]))
        f1.append(np.mean([macro_f1(p[idx], labels[idx]) for p in preds]))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {"accuracy": (float(np.percentile(acc, lo)), float(np.percentile(acc, hi))),
            "macro_f1": (float(np.percentile(f1, lo)), float(np.percentile(f1, hi)))}


def resample_indices(rng: np.random.Generator, n: int, groups: np.ndarray | None = None) -> np.ndarray:
    """One bootstrap resample of ``n`` rows: rows drawn with replacement, or, with ``groups`` (a group id
    per row), whole groups drawn with replacement and all their rows taken (a cluster bootstrap).

    Why groups: the frames of one label segment of a session are nearly the same picture, so
    resampling frames as if independent gives intervals far too narrow; the segment is the unit
    (as in fer_models.comparison's paired segment bootstrap).
    """
    if groups is None:
        return rng.integers(0, n, n)
    groups = np.asarray(groups)
    ids, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(ids))]
    return np.concatenate([members[g] for g in rng.integers(0, len(ids), len(ids))])


def paired_bootstrap(preds_a: Sequence[np.ndarray], preds_b: Sequence[np.ndarray], labels: np.ndarray,
                     n_boot: int = 1000, seed: int = 0, groups: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy difference A - B (seed means) on the same resampled images: mean, 95% interval, P(A <= B).

    ``groups``: resample whole groups of rows (``resample_indices``), e.g. the label segments of a session."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    ca = np.mean([p == labels for p in preds_a], axis=0)
    cb = np.mean([p == labels for p in preds_b], axis=0)
    diffs = np.array([np.mean(ca[idx] - cb[idx]) for idx in (resample_indices(rng, n, groups)
                                                             for _ in range(n_boot))])
    return {"diff_mean": float(np.mean(ca - cb)), "ci_low": float(np.percentile(diffs, 2.5)),
            "ci_high": float(np.percentile(diffs, 97.5)), "p_a_not_better": float(np.mean(diffs <= 0))}


def aggregate(run_dirs: Sequence[Path], out_csv: Path, n_boot: int = 1000,
              compare: tuple[str, str] | Sequence[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Rows per run, per configuration and per compared pair; written to ``out_csv`` and returned.

    ``compare`` is one (A, B) pair or a list of them; ``result["paired"]`` holds the first pair's
    comparison and ``result["paired_all"]`` every pair's, keyed ``"A - B"``.
    """
    runs = [load_run(Path(d)) for d in run_dirs]
    if not runs:
        raise ArtifactError(None, "no runs to aggregate")
    check_same_recipe([Path(d) for d in run_dirs], [r["config"] for r in runs])
    ref = runs[0]
    for r in runs[1:]:
        if not np.array_equal(r["positions"], ref["positions"]) or not np.array_equal(r["labels"], ref["labels"]):
            raise ArtifactError(Path(run_dirs[runs.index(r)]), f"test rows differ from {ref['run']}'s: runs "
                                                               "evaluated on different test sets cannot be pooled")
    labels = ref["labels"]
    rows: list[dict[str, Any]] = []
    for r in runs:
        rows.append({"row_type": "run", "config": r["config"], "run": r["run"], "seed": r["seed"], "n_runs": 1,
                     "test_accuracy": r["accuracy"], "test_macro_f1": r["macro_f1"]})
    configs: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        configs.setdefault(r["config"], []).append(r)
    result: dict[str, Any] = {"configs": {}}
    for name, members in configs.items():
        acc = np.array([m["accuracy"] for m in members])
        f1 = np.array([m["macro_f1"] for m in members])
        ci = bootstrap_ci([m["pred"] for m in members], labels, n_boot)
        row = {"row_type": "config", "config": name, "n_runs": len(members),
               "seed": " ".join(str(m["seed"]) for m in members),
               "test_accuracy": float(acc.mean()), "test_macro_f1": float(f1.mean()),
               "test_accuracy_std": float(acc.std(ddof=1)) if len(acc) > 1 else None,
               "test_macro_f1_std": float(f1.std(ddof=1)) if len(f1) > 1 else None,
               "test_accuracy_ci_low": ci["accuracy"][0], "test_accuracy_ci_high": ci["accuracy"][1],
               "test_macro_f1_ci_low": ci["macro_f1"][0], "test_macro_f1_ci_high": ci["macro_f1"][1],
               "note": f"bootstrap {n_boot} resamples of {len(labels)} test images"}
        rows.append(row)
        result["configs"][name] = row
    pairs = [tuple(compare)] if compare and isinstance(compare[0], str) else [tuple(p) for p in compare or []]
    result["paired_all"] = {}
    for a, b in pairs:
        for c in (a, b):
            if c not in configs:
                raise ArtifactError(None, f"configuration {c!r} not among {sorted(configs)}")
        pb = paired_bootstrap([m["pred"] for m in configs[a]], [m["pred"] for m in configs[b]], labels, n_boot)
        rows.append({"row_type": "paired", "config": f"{a} - {b}", "test_accuracy": pb["diff_mean"],
                     "test_accuracy_ci_low": pb["ci_low"], "test_accuracy_ci_high": pb["ci_high"],
                     "note": f"paired bootstrap; P(diff <= 0) = {pb['p_a_not_better']:.4f}"})
        result.setdefault("paired", pb)
        result["paired_all"][f"{a} - {b}"] = pb
    buf = io.StringIO()
    w = csv.DictWriter(buf, SUMMARY_COLUMNS)
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SUMMARY_COLUMNS})
    atomic_write_text(out_csv, buf.getvalue())
    result["rows"] = rows
    return result


def add_parser(sub: Any) -> None:
    p = sub.add_parser("aggregate", help="multi-seed mean/std/bootstrap CI -> results_summary_students.csv")
    p.add_argument("run_dirs", type=Path, nargs="+", help="evaluated runs (logits_test.npz inside)")
    p.add_argument("--out", type=Path, default=Path("results_summary_students.csv"))
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--compare", nargs=2, action="append", metavar=("CONFIG_A", "CONFIG_B"),
                   help="paired bootstrap A - B (repeat for more pairs)")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    res = aggregate(args.run_dirs, args.out, args.bootstrap, [tuple(p) for p in args.compare or []])
    for name, row in res["configs"].items():
        std = row["test_accuracy_std"]
        print(f"{name}: n={row['n_runs']} test acc {row['test_accuracy']:.4f}"
              f"{'' if std is None else f' +- {std:.4f}'} (95% CI {row['test_accuracy_ci_low']:.4f}-"
              f"{row['test_accuracy_ci_high']:.4f}), macro-F1 {row['test_macro_f1']:.4f}")
    for pair, pb in res["paired_all"].items():
        print(f"paired {pair}: {pb['diff_mean']:+.4f} (95% {pb['ci_low']:+.4f} to {pb['ci_high']:+.4f}), "
              f"P(A not better) {pb['p_a_not_better']:.2f}")
    print(f"-> {args.out}")
    return 0
