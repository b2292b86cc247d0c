"""Accuracy and calibration of a model *folder* (the ONNX the app loads) on a whole split.

The parity check of ``fer-train export`` compares ONNX with torch on 64 faces; this scores the
shipped artifact itself, through ``fer_models`` (the app's loader, its crop spec, its
calibration), on every image of a split, so a figure quoted for the bundled
model is a figure of the file in ``resources/`` and not of the checkpoint it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fer_models.calibration import apply_calibration, classification_metrics, softmax
from fer_models.classes import check_same_classes
from fer_models.model_folder import load_model_folder


def check_model(model_dir: str | Path, index_dir: str | Path, split: str = "test", batch_size: int = 256,
                data_root: str | Path | None = None, threads: int | None = None) -> dict[str, Any]:
    """Metrics of a model folder on one split of an index: uncalibrated (T=1) and with its calibration."""
    from training.data import FERDataset
    from training.index import load_index

    index = load_index(index_dir)
    model = load_model_folder(model_dir, providers="cpu", intra_op_threads=threads)
    check_same_classes(index.classes, model.classes, where=Path(model_dir) / "classes.json")
    ds = FERDataset(index, model.crop_spec(), split=split, root=data_root)
    logits = []
    for start in range(0, len(ds), batch_size):
        x = np.stack([ds[i][0].numpy() for i in range(start, min(start + batch_size, len(ds)))])
        logits.append(model.logits(x))
    z = np.concatenate(logits).astype(np.float64)
    after = apply_calibration(z, model.calibration)  # what FerModel.probs returns, without a second ONNX run
    return {"model_id": model.model_id, "split": split, "n": len(ds),
            "before": classification_metrics(softmax(z), ds.labels),
            "after": classification_metrics(after, ds.labels), "temperature": model.calibration.temperature}


def floor_checks(result: dict[str, Any], min_accuracy: float | None = None, min_macro_f1: float | None = None,
                 max_ece: float | None = None) -> list[tuple[str, float, str, float, bool]]:
    """(metric, value, comparison, bound, passed) for each floor given, on the calibrated figures."""
    after = result["after"]
    checks = []
    for metric, bound, op in (("accuracy", min_accuracy, ">="), ("macro_f1", min_macro_f1, ">="),
                              ("ece", max_ece, "<=")):
        if bound is None:
            continue
        value = float(after[metric])
        checks.append((metric, value, op, float(bound), value >= bound if op == ">=" else value <= bound))
    return checks


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check-model", help="score a model folder (the ONNX the app loads) on a whole split")
    p.add_argument("model_dir")
    p.add_argument("--index", required=True, help="index folder")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--data", default=None, help="data root if it moved since the index was built")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.add_argument("--min-accuracy", type=float, default=None, help="exit 1 if calibrated accuracy is below this")
    p.add_argument("--min-macro-f1", type=float, default=None, help="exit 1 if macro-F1 is below this")
    p.add_argument("--max-ece", type=float, default=None, help="exit 1 if the calibrated ECE is above this")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    r = check_model(args.model_dir, args.index, args.split, args.batch_size, args.data, args.threads)
    print(f"{r['model_id']} on {r['split']} (n={r['n']}, T={r['temperature']:g})")
    for stage in ("before", "after"):
        m = r[stage]
        print(f"  {stage:6s} calibration: acc {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f} nll {m['nll']:.4f} "
              f"ece {m['ece']:.4f} brier {m['brier']:.4f}")
    checks = floor_checks(r, args.min_accuracy, args.min_macro_f1, args.max_ece)
    for metric, value, op, bound, ok in checks:
        print(f"  floor: {metric} {value:.4f} {op} {bound:g}: {'GO' if ok else 'NO-GO'}")
    return 0 if all(c[-1] for c in checks) else 1
