"""Per-split evaluation: accuracy, macro-F1, per-class F1, confusion matrix, and the logits themselves.

The logits are written next to the metrics (``logits_<split>.npz``, rows in index
order with their index positions and the index fingerprint) because calibration,
ensembles and later analyses all start from them; recomputing them would need the
model and the data again. Metrics use ``fer_models.calibration`` so that a number
here means what the same number means in the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.calibration import classification_metrics, per_class_f1, softmax
from fer_models.classes import check_same_classes, read_classes_json
from fer_models.errors import ArtifactError
from fer_models.files import write_json

from training.artifacts import load_npz, save_npz

EVAL_SPLITS = ("val", "test")
# Test-time augmentation of a *teacher*: "flip" averages the logits of each face and of its mirror
# image. Chosen on val (docs/decisions.md): +0.4 / +0.25 points of val accuracy and lower val NLL for the
# VGG-style and ResNet18 teachers. The students the app runs are scored without it (one pass per frame).
TTA_MODES = ("none", "flip")


def check_tta(tta: str) -> str:
    """``tta`` if it is one of ``TTA_MODES``: a typo must not silently score without augmentation."""
    if tta not in TTA_MODES:
        raise ValueError(f"test-time augmentation must be one of {TTA_MODES}, got {tta!r}")
    return tta


def predict_logits(model: Any, dataset: Any, batch_size: int = 256, device: Any = "cpu",
                   autocast: Any = None, workers: int = 0, progress: bool = False,
                   channels_last: bool = False, tta: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """Logits (float32, dataset order) and index positions of every item of a ``FERDataset``.

    ``tta="flip"``: the mean of the logits of each face and of its horizontal mirror (``TTA_MODES``).
    """
    import contextlib

    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    it: Any = loader
    if progress:
        from tqdm import tqdm
        it = tqdm(loader, desc="predict", unit="batch", mininterval=5.0, leave=False)
    model.eval()
    outs, poss = [], []
    ctx = autocast if autocast is not None else contextlib.nullcontext
    flip = check_tta(tta) == "flip"
    with torch.inference_mode():
        for x, _, pos in it:
            x = x.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with ctx():
                z = model(x).float()
                if flip:
                    z = (z + model(torch.flip(x, dims=[3])).float()) / 2
            outs.append(z.cpu().numpy())
            poss.append(pos.numpy())
    return np.concatenate(outs).astype(np.float32), np.concatenate(poss).astype(np.int64)


def conv_backbone(backbone: str) -> bool:
    """True for convolutional backbones (channels-last helps them; ViTs gain nothing)."""
    from training.models import backbone_family

    return backbone_family(backbone) != "vit"


def split_metrics(logits: np.ndarray, labels: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class F1, NLL/ECE/Brier at T=1 and the confusion matrix of one split."""
    from sklearn.metrics import confusion_matrix

    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    probs = softmax(z)
    pred = probs.argmax(axis=1)
    m = classification_metrics(probs, y)
    return {
        "n": int(len(y)),
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "per_class_f1": dict(zip(classes, per_class_f1(pred, y, len(classes)))),
        "nll": m["nll"],
        "ece": m["ece"],
        "brier": m["brier"],
        "confusion_matrix": confusion_matrix(y, pred, labels=list(range(len(classes)))).tolist(),
    }


def plot_confusion(cm: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path, title: str) -> Path:
    """Confusion matrix PNG: counts, with rows normalised to recall for the colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm_arr = np.asarray(cm, dtype=np.float64)
    rows = cm_arr.sum(axis=1, keepdims=True)
    norm = np.divide(cm_arr, rows, out=np.zeros_like(cm_arr), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=110)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{int(cm_arr[i, j])}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="row share (recall)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_split_report(run_dir: str | Path, split: str, logits: np.ndarray, positions: np.ndarray,
                       index: Any, classes: Sequence[str], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write metrics_<split>.json, confusion_<split>.json/.png and logits_<split>.npz; return the metrics."""
    run_dir = Path(run_dir)
    order = np.argsort(positions, kind="stable")
    logits, positions = np.asarray(logits)[order], np.asarray(positions)[order]
    labels = index.labels[positions]
    metrics = split_metrics(logits, labels, classes)
    cm = metrics.pop("confusion_matrix")
    metrics = {"split": split, **metrics, "index_name": index.name, "index_fingerprint": index.fingerprint,
               "full_split": bool(len(positions) == len(index.positions(split))), **(extra or {})}
    write_json(run_dir / f"metrics_{split}.json", metrics)
    write_json(run_dir / f"confusion_{split}.json", {"split": split, "classes": list(classes),
                                                      "rows": "true class", "columns": "predicted class",
                                                      "matrix": cm})
    plot_confusion(cm, classes, run_dir / f"confusion_{split}.png",
                   f"{split}: acc {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    save_npz(run_dir / f"logits_{split}.npz", logits=logits.astype(np.float32), labels=labels.astype(np.int64),
             positions=positions.astype(np.int64),
             sample_id=np.array([index.sample_ids[p] for p in positions]),
             index_fingerprint=np.array(index.fingerprint), classes=np.array(list(classes)))
    return metrics


def load_split_logits(run_dir: str | Path, split: str) -> dict[str, Any]:
    """Read logits_<split>.npz of a run (teacher, student or ensemble), checked against its classes.json."""
    run_dir = Path(run_dir)
    path = run_dir / f"logits_{split}.npz"
    if not path.is_file():
        raise ArtifactError(path, f"no {split} logits; run `fer-train evaluate {run_dir} --index ...` first")
    data = load_npz(path, ("logits", "labels", "positions", "index_fingerprint", "classes"))
    classes = [str(c) for c in data["classes"]]
    if (run_dir / "classes.json").is_file():
        check_same_classes(read_classes_json(run_dir), classes, path, "classes of the logits")
    z = data["logits"]
    if z.ndim != 2 or z.shape[1] != len(classes) or len(z) != len(data["labels"]):
        raise ArtifactError(path, f"logits shape {z.shape} does not fit {len(data['labels'])} rows x {len(classes)} classes")
    return {"logits": z.astype(np.float64), "labels": data["labels"].astype(np.int64),
            "positions": data["positions"], "fingerprint": str(data["index_fingerprint"]), "classes": classes,
            "path": path}


# ----------------------------------------------------------------------------- CLI

def load_for_inference(run_dir: Path, checkpoint: str | Path, classes: Sequence[str], device: str = "auto"
                       ) -> tuple[Any, dict[str, Any], Path, Any, bool]:
    """A run's checkpoint rebuilt on the chosen device (channels-last for conv nets), classes checked.

    Returns (model, checkpoint dict, checkpoint path, device, channels_last).
    """
    import torch

    from training.models import model_from_checkpoint
    from training.runtime import pick_device

    ckpt_path = Path(checkpoint) if Path(checkpoint).is_absolute() else Path(run_dir) / checkpoint
    model, ck = model_from_checkpoint(ckpt_path, classes=classes)
    dev = pick_device(device)
    model.to(dev)
    channels_last = conv_backbone(ck["backbone"])
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model, ck, ckpt_path, dev, channels_last


def evaluate_checkpoint(run_dir: str | Path, index_dir: str | Path, checkpoint: str = "best.pt",
                        splits: Sequence[str] = EVAL_SPLITS, batch_size: int = 256, device: str = "auto",
                        data_root: str | Path | None = None, max_samples: int | None = None,
                        progress: bool = True, tta: str = "none") -> dict[str, dict[str, Any]]:
    """Evaluate a run's checkpoint on whole splits of an index and write the split reports.

    The metrics record ``tta``; a teacher's soft labels must be made with the same (the teachers gate checks).
    """
    from training.data import FERDataset, checkpoint_crop_spec, stratified_subset
    from training.index import load_index

    run_dir = Path(run_dir)
    index = load_index(index_dir)
    model, ck, ckpt_path, dev, channels_last = load_for_inference(run_dir, checkpoint, index.classes, device)
    spec = checkpoint_crop_spec(ck, ckpt_path)
    out = {}
    for split in splits:
        pos = index.positions(split)
        if max_samples:
            pos = stratified_subset(pos, index.labels[pos], max_samples, seed=0)
        ds = FERDataset(index, spec, positions=pos, root=data_root)
        logits, positions = predict_logits(model, ds, batch_size, dev, progress=progress,
                                           channels_last=channels_last, tta=tta)
        out[split] = write_split_report(run_dir, split, logits, positions, index, index.classes,
                                        {"checkpoint": ckpt_path.name, "epoch": ck.get("epoch"), "tta": tta})
        print(f"{split}{' (flip TTA)' if tta == 'flip' else ''}: n={out[split]['n']} acc={out[split]['accuracy']:.4f} "
              f"macro_f1={out[split]['macro_f1']:.4f} nll={out[split]['nll']:.4f} ece={out[split]['ece']:.4f}")
    return out


def add_parser(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="metrics, confusion matrices and logits of a run on val/test")
    p.add_argument("run_dir")
    p.add_argument("--index", required=True, help="index folder")
    p.add_argument("--checkpoint", default="best.pt", help="checkpoint file in the run dir (or an absolute path)")
    p.add_argument("--splits", nargs="+", default=list(EVAL_SPLITS), choices=["train", "val", "test"])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--data", default=None, help="data root if it moved since the index was built")
    p.add_argument("--tta", default="none", choices=TTA_MODES,
                   help="test-time augmentation: flip = mean logits of the face and its mirror (teachers)")
    p.set_defaults(func=_run_cli)


def _run_cli(args: Any) -> int:
    evaluate_checkpoint(args.run_dir, args.index, args.checkpoint, args.splits, args.batch_size, args.device,
                        args.data, tta=args.tta)
    return 0
