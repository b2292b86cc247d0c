"""Temperature calibration of a run's logits: fitted on val, reported on val and test.

Two failures of the earlier scripts are designed out here: the temperature is
always fitted on the val split (never on the split it is reported on), and a
choice that lands on the edge of the grid is flagged, because that is a clamp,
not a fit. The maths (sweep, lexicographic rule, per-class fit, metrics) is
``fer_models.calibration``, the same code the app applies calibration with.

Works on any folder holding ``logits_val.npz`` and ``logits_test.npz``: teacher
runs, student runs and ensembles (whose "logits" are log fused probabilities).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.calibration import (DEFAULT_GRID, SELECTION_RULE, Calibration, apply_calibration,
                                    classification_metrics, fit_per_class_temperature, nll_from_logits,
                                    on_grid_edge, reliability_bins, reliability_report, save_calibration,
                                    save_reliability_metrics, select_from_sweep, softmax, temperature_sweep)
from fer_models.errors import ArtifactError

from training.evaluate import load_split_logits

FIT_SPLIT = "val"
REPORT_SPLIT = "test"


def metrics_at(logits: np.ndarray, labels: np.ndarray, calibration: Calibration | None) -> dict[str, float]:
    """NLL (exact, in log space), ECE, Brier, macro-F1 and accuracy of calibrated probabilities."""
    z = np.asarray(logits, dtype=np.float64)
    if calibration is None:
        probs, zt = softmax(z), z
    else:
        probs = apply_calibration(z, calibration)
        zt = z + (np.asarray(calibration.logit_bias) if calibration.logit_bias is not None else 0.0)
        zt = zt / calibration.effective_temperature()
    m = classification_metrics(probs, labels)
    m["nll"] = nll_from_logits(zt, labels)
    return m


def fit_calibration(val_logits: np.ndarray, val_labels: np.ndarray, classes: Sequence[str],
                    grid: Sequence[float] = DEFAULT_GRID, per_class: bool = False) -> tuple[Calibration, list[dict]]:
    """Global T by the lexicographic rule on val (and optionally a per-class vector); returns it and the sweep."""
    sweep = temperature_sweep(val_logits, val_labels, grid)
    t = select_from_sweep(sweep)
    edge = on_grid_edge(t, grid)
    if edge:
        print(f"warning: chosen temperature {t} sits on the edge of the grid [{min(grid)}, {max(grid)}]: "
              "this is a clamp, not a fit; widen the grid or check the logits", file=sys.stderr)
    pc = fit_per_class_temperature(val_logits, val_labels, t, grid) if per_class else None
    cal = Calibration(temperature=float(t), per_class_temperature=pc, classes=list(classes), grid=[float(g) for g in grid],
                      split=FIT_SPLIT, selection_rule=SELECTION_RULE,
                      extra={"on_grid_edge": edge, "per_class_fit": "coordinate descent on val NLL from the global T"
                             if per_class else None})
    return cal, sweep


def plot_reliability(bins_before: list[dict], bins_after: list[dict], path: str | Path, title: str,
                     label_after: str) -> Path:
    """Reliability diagram: accuracy per confidence bin before and after calibration, with bin counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), dpi=110, sharey=True)
    for ax, bins, name in ((axes[0], bins_before, "before (T=1)"), (axes[1], bins_after, label_after)):
        lo = np.array([b["lower"] for b in bins])
        width = bins[0]["upper"] - bins[0]["lower"]
        acc = np.array([b["accuracy"] if b["accuracy"] is not None else 0.0 for b in bins])
        conf = np.array([b["confidence"] if b["confidence"] is not None else np.nan for b in bins])
        counts = np.array([b["count"] for b in bins])
        ax.bar(lo, acc, width=width, align="edge", edgecolor="black", color="#4c72b0", label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
        ax.plot(lo + width / 2, conf, "o", color="#dd8452", ms=4, label="mean confidence")
        for x, c in zip(lo, counts):
            if c:
                ax.text(x + width / 2, 0.02, str(int(c)), ha="center", va="bottom", fontsize=6, rotation=90)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top-1)")
        ax.set_title(name)
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def calibrate_run(run_dir: str | Path, per_class: bool = False, grid: Sequence[float] = DEFAULT_GRID) -> Calibration:
    """Fit T on the run's val logits, write calibration.json, reliability_metrics.json and the diagrams."""
    run_dir = Path(run_dir)
    val = load_split_logits(run_dir, FIT_SPLIT)
    test = None
    if (run_dir / f"logits_{REPORT_SPLIT}.npz").is_file():
        test = load_split_logits(run_dir, REPORT_SPLIT)
        if test["fingerprint"] != val["fingerprint"]:
            raise ArtifactError(test["path"], "val and test logits come from different indexes")
    else:
        print(f"warning: {run_dir / 'logits_test.npz'} missing: only val metrics reported", file=sys.stderr)
    classes = val["classes"]
    cal, sweep = fit_calibration(val["logits"], val["labels"], classes, grid, per_class)
    splits = {FIT_SPLIT: val, **({REPORT_SPLIT: test} if test else {})}
    cal.metrics_before = {s: metrics_at(d["logits"], d["labels"], None) for s, d in splits.items()}
    cal.metrics_after = {s: metrics_at(d["logits"], d["labels"], cal) for s, d in splits.items()}
    cal.extra.update({"index_fingerprint": val["fingerprint"], "n_fit": int(len(val["labels"])),
                      "metrics_note": "metrics_before/after hold one entry per split; T is fitted on val only"})
    save_calibration(run_dir / "calibration.json", cal)

    report = reliability_report(val["logits"], val["labels"], grid, cal.temperature, FIT_SPLIT, classes)
    report["selection_rule"] = SELECTION_RULE
    report["on_grid_edge"] = cal.extra["on_grid_edge"]
    label_after = f"after (T={cal.temperature:g}{', per-class' if per_class else ''})"
    for s, d in splits.items():
        before = reliability_bins(softmax(d["logits"]), d["labels"])
        after = reliability_bins(apply_calibration(d["logits"], cal), d["labels"])
        report[f"bins_{s}_before"], report[f"bins_{s}_after"] = before, after
        plot_reliability(before, after, run_dir / f"reliability_{s}.png",
                         f"{run_dir.name} {s}: ECE {cal.metrics_before[s]['ece']:.3f} -> "
                         f"{cal.metrics_after[s]['ece']:.3f}", label_after)
    if per_class:
        report["per_class_temperature"] = cal.per_class_temperature
    save_reliability_metrics(run_dir / "reliability_metrics.json", report)

    print(f"calibration of {run_dir}: T={cal.temperature:g} (fitted on val, n={len(val['labels'])})"
          + (f", per-class {np.round(cal.per_class_temperature, 3).tolist()}" if per_class else "")
          + (" [ON GRID EDGE]" if cal.extra["on_grid_edge"] else ""))
    for s in splits:
        b, a = cal.metrics_before[s], cal.metrics_after[s]
        print(f"  {s:5s} before: acc {b['accuracy']:.4f} f1 {b['macro_f1']:.4f} nll {b['nll']:.4f} "
              f"ece {b['ece']:.4f} brier {b['brier']:.4f}")
        print(f"  {s:5s} after : acc {a['accuracy']:.4f} f1 {a['macro_f1']:.4f} nll {a['nll']:.4f} "
              f"ece {a['ece']:.4f} brier {a['brier']:.4f}")
    return cal


def add_parser(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="fit the temperature on val logits; report val and test before/after")
    p.add_argument("run_dir", help="teacher, student or ensemble folder with logits_val.npz (and logits_test.npz)")
    p.add_argument("--per-class", action="store_true", help="also fit a per-class temperature vector")
    p.add_argument("--grid", type=float, nargs="+", default=None,
                   help="temperatures to search (default: 0.25..10, fer_models.calibration.DEFAULT_GRID)")
    p.set_defaults(func=lambda a: (calibrate_run(a.run_dir, a.per_class, a.grid or DEFAULT_GRID), 0)[1])
