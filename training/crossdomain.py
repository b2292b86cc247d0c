"""``fer-train check-ckplus``: a model folder scored on CK+, a second, lab-posed domain.

Why: FER2013 accuracy says little about faces from another camera, light and population.
CK+ (``../shared/data/ckplus48/<class>/S<subject>_<seq>_<frame>.png``, 48x48 grey face
crops) shares six classes with FER7 (anger, disgust, fear, happy, sadness, surprise); its
contempt is left out and it has no neutral. The model folder is scored the way the app runs
it (``fer_models`` loader, its crop spec, its calibration) on every image of the six classes.

Two accuracies, because the model can answer Neutral, which CK+ never is: ``accuracy``
takes the argmax over all seven classes (what the app would show; a Neutral answer is
wrong), ``accuracy_6way`` the argmax over the six shared classes only (the usual CK+
protocol for FER7 models). Macro-F1 is over the six classes. Per-subject figures are not
computed: with 118 subjects and about 8 images each they would be noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fer_models.classes import FER7
from fer_models.errors import ArtifactError
from fer_models.face_crop import prepare_face
from fer_models.model_folder import load_app_model

# CK+ folder name -> FER7 class
CKPLUS_TO_FER7 = {"anger": "Angry", "disgust": "Disgust", "fear": "Fear", "happy": "Happy",
                  "sadness": "Sad", "surprise": "Surprise"}
LEFT_OUT = ("contempt",)


def load_ckplus(root: str | Path) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """Grey images, FER7 labels and file names of the six shared classes; unknown folders refused."""
    root = Path(root)
    if not root.is_dir():
        raise ArtifactError(root, "CK+ folder not found (expected <class>/<image> below it)")
    images, labels, names = [], [], []
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        key = cls_dir.name.lower()
        if key in LEFT_OUT:
            continue
        if key not in CKPLUS_TO_FER7:
            raise ArtifactError(cls_dir, f"unknown CK+ class folder; expected {sorted(CKPLUS_TO_FER7)} or "
                                         f"{list(LEFT_OUT)}")
        k = FER7.index(CKPLUS_TO_FER7[key])
        for f in sorted(cls_dir.iterdir()):
            if f.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
                continue
            img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if img is None:
                raise ArtifactError(f, "cannot be decoded as an image")
            images.append(img)
            labels.append(k)
            names.append(f"{cls_dir.name}/{f.name}")
    if not images:
        raise ArtifactError(root, "no images of the six shared classes found")
    return images, np.asarray(labels, dtype=np.int64), names


def check_ckplus(model_dir: str | Path, data: str | Path, batch_size: int = 256,
                 threads: int | None = None) -> dict[str, Any]:
    """Accuracy (7-way and 6-way argmax), macro-F1 over the six classes and per-class recall on CK+."""
    from sklearn.metrics import f1_score

    model = load_app_model(model_dir, providers="cpu", intra_op_threads=threads)
    images, y, _ = load_ckplus(data)
    spec = model.crop_spec()
    probs = []
    for start in range(0, len(images), batch_size):
        x = np.stack([prepare_face(img, spec) for img in images[start:start + batch_size]])
        probs.append(model.probs(x))
    p = np.concatenate(probs).astype(np.float64)
    shared = sorted({FER7.index(c) for c in CKPLUS_TO_FER7.values()})
    pred7 = p.argmax(1)
    masked = np.full_like(p, -np.inf)
    masked[:, shared] = p[:, shared]
    pred6 = masked.argmax(1)
    recall = {FER7[k]: float(np.mean(pred7[y == k] == k)) for k in shared if np.any(y == k)}
    return {"model_id": model.model_id, "n": int(len(y)),
            "counts": {FER7[k]: int(np.sum(y == k)) for k in shared},
            "accuracy": float(np.mean(pred7 == y)), "accuracy_6way": float(np.mean(pred6 == y)),
            "macro_f1_6": float(f1_score(y, pred7, labels=shared, average="macro", zero_division=0)),
            "predicted_neutral": float(np.mean(pred7 == FER7.index("Neutral"))),
            "recall": recall}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("check-ckplus", help="score a model folder on CK+ (six shared classes, contempt left out)")
    p.add_argument("model_dir")
    p.add_argument("--data", default="../shared/data/ckplus48", help="CK+ folder with one folder per class")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    r = check_ckplus(args.model_dir, args.data, threads=args.threads)
    print(f"{r['model_id']} on CK+ (n={r['n']}, six classes, contempt left out)")
    print(f"  accuracy {r['accuracy']:.4f} (7-way argmax; {r['predicted_neutral']:.1%} answered Neutral), "
          f"6-way {r['accuracy_6way']:.4f}, macro-F1 (6 classes) {r['macro_f1_6']:.4f}")
    print("  recall: " + ", ".join(f"{c} {v:.2f}" for c, v in r["recall"].items()))
    return 0
