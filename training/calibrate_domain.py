"""``fer-train calibrate-domain RUN --index IDX``: per-class temperatures, then per-class thresholds, on a new domain.

``fer-train calibrate`` fits one temperature on FER2013 val. On another domain the model's
confidence is off by class (CK+'s posed disgust is easy, its fear is not), so this command
fits, on the **fit split of the domain's index only** (``--fit-split``, default ``val``: for a
CK+ index the adapt part's val subjects, for an adapted run its mix val):

1. a global temperature by the lexicographic rule (``fer_models.calibration``);
2. a per-class temperature vector by coordinate descent on NLL from it;
3. per-class thresholds on the probabilities of those temperatures (thresholds compare
   calibrated probabilities, so they come after the temperatures), by
   ``fer_models.calibration.THRESHOLD_SELECTION`` under ``THRESHOLD_RULE``: the argmax class c
   is shown only when p_c >= threshold_c, otherwise no label. That is the rule the app
   applies live (``fer_models.pipeline``, to the smoothed probabilities), so a threshold
   fitted here means the same there.

A class with no row in the fit split (CK+ has no Neutral) is not fitted: it keeps the global
temperature and threshold 0 (listed in calibration.json ``unfitted_classes``).

It then reports the fit split and the others asked for (``--report-splits``, default val
and test) before (T=1) and after (the global T; the per-class T; the per-class T plus thresholds,
with coverage), and writes ``OUT/calibration.json`` (DESIGN.md §4 keys: ``temperature``,
``per_class_temperature``, ``thresholds``, the grid, the split, the selection rule, metrics
before and after) and ``OUT/reliability_metrics.json``. OUT defaults to
``RUN/domain_<index>-<fp8>``; the run's own calibration.json is replaced only with
``--install`` (the previous one is kept as ``calibration_global.json``), since that is the
file ``fer-train export`` ships to the app.

Logits: the run's ``logits_<split>.npz`` when they were computed on this very index (an
adapted run evaluated on its mix), else the checkpoint is run on the index and the split
reports (metrics, confusion, logits) are written into OUT, never over the run's own.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.calibration import (DEFAULT_GRID, SELECTION_RULE, THRESHOLD_GRID, THRESHOLD_RULE,
                                    THRESHOLD_SELECTION, Calibration, abstaining_metrics,
                                    fit_per_class_calibration, per_class_f1, predict_calibrated, reliability_report,
                                    save_calibration, save_reliability_metrics)
from fer_models.errors import ArtifactError

from training.calibrate import metrics_at
from training.evaluate import load_split_logits

DEFAULT_MIN_COVERAGE = 0.9


def split_logits(run: Path, index: Any, splits: Sequence[str], out: Path, checkpoint: str = "best.pt",
                 device: str = "auto", batch_size: int = 256) -> dict[str, dict[str, Any]]:
    """Logits and labels per split: the run's own files when they match ``index``, else computed into ``out``."""
    from training.data import FERDataset, checkpoint_crop_spec
    from training.evaluate import load_for_inference, predict_logits, write_split_report

    got: dict[str, dict[str, Any]] = {}
    todo = []
    for split in splits:
        if (run / f"logits_{split}.npz").is_file():
            d = load_split_logits(run, split)
            if d["fingerprint"] == index.fingerprint and len(d["labels"]) == len(index.positions(split)):
                got[split] = d
                continue
        todo.append(split)
    if todo:
        model, ck, ckpt_path, dev, channels_last = load_for_inference(run, checkpoint, index.classes, device)
        spec = checkpoint_crop_spec(ck, ckpt_path)
        out.mkdir(parents=True, exist_ok=True)
        for split in todo:
            ds = FERDataset(index, spec, split=split)
            z, pos = predict_logits(model, ds, batch_size, dev, channels_last=channels_last)
            write_split_report(out, split, z, pos, index, index.classes,
                               {"checkpoint": str(ckpt_path), "epoch": ck.get("epoch")})
            got[split] = load_split_logits(out, split)
    return got


def _report(z: np.ndarray, y: np.ndarray, cal: Calibration, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of one split under one calibration: NLL/ECE/Brier/F1/accuracy, and with thresholds too."""
    m = metrics_at(z, y, cal)
    probs, pred = predict_calibrated(z, cal)
    if cal.thresholds is not None:
        a = abstaining_metrics(pred, y)
        m.update({"thresholded_accuracy": a["accuracy"], "thresholded_macro_f1": a["macro_f1"],
                  "coverage": a["coverage"]})
    m["macro_f1_present_classes"] = abstaining_metrics(probs.argmax(1), y)["macro_f1"]
    m["per_class_f1"] = dict(zip(classes, per_class_f1(pred, y, len(classes))))
    m["n"] = int(len(y))
    return m


def calibrate_domain(run_dir: str | Path, index_dir: str | Path, out_dir: str | Path | None = None,
                     fit_split: str = "val", report_splits: Sequence[str] | None = None,
                     min_coverage: float = DEFAULT_MIN_COVERAGE, thresholds: bool = True,
                     grid: Sequence[float] = DEFAULT_GRID, threshold_grid: Sequence[float] = THRESHOLD_GRID,
                     install: bool = False, checkpoint: str = "best.pt", device: str = "auto") -> Calibration:
    """Fit global T, per-class T and per-class thresholds on ``fit_split``; write OUT/calibration.json."""
    from training.index import SPLITS, load_index

    run = Path(run_dir)
    if not run.is_dir():
        raise ArtifactError(run, "run folder not found")
    index = load_index(index_dir)
    if fit_split not in SPLITS or not len(index.positions(fit_split)):
        raise ArtifactError(index.path, f"no rows in the fit split {fit_split!r}; pick one with --fit-split")
    if report_splits is None:
        report_splits = [s for s in ("val", "test") if s != fit_split and len(index.positions(s))]
    out = Path(out_dir) if out_dir is not None else run / f"domain_{index.short_name}"
    data = split_logits(run, index, [fit_split, *[s for s in report_splits if s != fit_split]], out, checkpoint,
                        device)
    fit = data[fit_split]
    z, y = fit["logits"], fit["labels"]
    classes = index.classes
    f = fit_per_class_calibration(z, y, grid, threshold_grid, min_coverage, thresholds)
    global_cal = Calibration(temperature=f["temperature"], classes=list(classes))
    per_class_cal = Calibration(temperature=f["temperature"], per_class_temperature=f["per_class_temperature"],
                                classes=list(classes))
    cal = Calibration(
        temperature=f["temperature"], per_class_temperature=f["per_class_temperature"], thresholds=f["thresholds"],
        classes=list(classes), grid=[float(g) for g in grid], split=f"{index.name}:{fit_split}",
        selection_rule=(f"{SELECTION_RULE}; then per-class temperatures by coordinate descent on NLL from it"
                        + (f"; then thresholds: {THRESHOLD_SELECTION}" if thresholds else "")),
        extra={"threshold_rule": THRESHOLD_RULE if thresholds else None, "min_coverage": min_coverage,
               "threshold_grid": [float(g) for g in threshold_grid] if thresholds else None,
               "index_name": index.name, "index_fingerprint": index.fingerprint, "fit_split": fit_split,
               "n_fit": int(len(y)), "fitted_classes": [classes[k] for k in f["fitted_classes"]],
               "unfitted_classes": [classes[k] for k in f["unfitted_classes"]],
               "unfitted_rule": "no row in the fit split: global temperature, threshold 0",
               "per_class_on_grid_edge": [classes[k] for k in f["edge_classes"]],
               "source_run": str(run.resolve()), "logits_from": {s: str(d["path"]) for s, d in data.items()},
               "metrics_note": "metrics_before: T=1; metrics_after: the global T (global), the per-class T "
                               "(per_class_temperature) and with thresholds (calibrated); one entry per split"})
    cal.metrics_before = {s: _report(d["logits"], d["labels"], Calibration(temperature=1.0), classes)
                          for s, d in data.items()}
    cal.metrics_after = {s: {"global": _report(d["logits"], d["labels"], global_cal, classes),
                             "per_class_temperature": _report(d["logits"], d["labels"], per_class_cal, classes),
                             "calibrated": _report(d["logits"], d["labels"], cal, classes)}
                         for s, d in data.items()}
    out.mkdir(parents=True, exist_ok=True)
    save_calibration(out / "calibration.json", cal)
    report = reliability_report(z, y, grid, f["temperature"], fit_split, classes)
    report.update({"selection_rule": cal.selection_rule, "per_class_temperature": f["per_class_temperature"],
                   "thresholds": f["thresholds"]})
    save_reliability_metrics(out / "reliability_metrics.json", report)
    if install:
        if (run / "calibration.json").is_file() and not (run / "calibration_global.json").is_file():
            shutil.copyfile(run / "calibration.json", run / "calibration_global.json")
        save_calibration(run / "calibration.json", cal)
    if f["edge_classes"]:
        print(f"warning: per-class temperatures of {[classes[k] for k in f['edge_classes']]} sit on the grid edge "
              "(a clamp, not a fit)", file=sys.stderr)
    return cal


# ----------------------------------------------------------------------------- CLI

def add_parser(sub: Any) -> None:
    p = sub.add_parser("calibrate-domain", help="per-class temperatures, then per-class thresholds, on a new domain",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a student, adapted or teacher run folder (best.pt)")
    p.add_argument("--index", required=True, help="the domain's index (CK+, mined, or an adapted run's OUT/mix)")
    p.add_argument("--fit-split", default="val", choices=("train", "val", "test"),
                   help="the only split the calibration is fitted on (default val)")
    p.add_argument("--report-splits", nargs="+", default=None, choices=("train", "val", "test"),
                   help="splits reported before/after besides the fit split (default: val and test)")
    p.add_argument("--min-coverage", type=float, default=DEFAULT_MIN_COVERAGE,
                   help="thresholds may withhold a label on at most 1 - this share of the fit rows")
    p.add_argument("--no-thresholds", action="store_true", help="fit the temperatures only")
    p.add_argument("--out", default=None, help="folder for calibration.json (default RUN/domain_<index>-<fp8>)")
    p.add_argument("--install", action="store_true",
                   help="also write it as RUN/calibration.json (the old one kept as calibration_global.json)")
    p.add_argument("--checkpoint", default="best.pt")
    p.add_argument("--device", default="auto")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    cal = calibrate_domain(args.run_dir, args.index, args.out, args.fit_split, args.report_splits, args.min_coverage,
                           not args.no_thresholds, install=args.install, checkpoint=args.checkpoint,
                           device=args.device)
    ex = cal.extra
    print(f"calibrate-domain {args.run_dir} on {ex['index_name']}:{ex['fit_split']} (n={ex['n_fit']}): "
          f"T={cal.temperature:g}, per-class {np.round(cal.per_class_temperature, 3).tolist()}"
          + (f", thresholds {np.round(cal.thresholds, 3).tolist()}" if cal.thresholds else "")
          + (f"; not fitted: {ex['unfitted_classes']}" if ex["unfitted_classes"] else ""))
    for split, before in cal.metrics_before.items():
        after = cal.metrics_after[split]["calibrated"]
        line = (f"  {split:5s} acc {before['accuracy']:.4f} -> {after['accuracy']:.4f}, nll {before['nll']:.4f} -> "
                f"{after['nll']:.4f}, ece {before['ece']:.4f} -> {after['ece']:.4f}")
        if "coverage" in after:
            line += (f"; with thresholds acc {after['thresholded_accuracy']:.4f}, macro-F1 "
                     f"{after['thresholded_macro_f1']:.4f}, coverage {after['coverage']:.3f}")
        print(line)
    return 0


__all__ = ["calibrate_domain", "split_logits"]
