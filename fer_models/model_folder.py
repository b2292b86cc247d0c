"""Loading a model folder (model.onnx + model_card.json + calibration.json [+ classes.json]).

Everything is cross-checked before the app swaps a model in: class lists, input
size and channels against the ONNX graph, normalisation against the channel
count, calibration vectors against the classes. A bad folder raises an
ArtifactError and the caller keeps its previous model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fer_models.calibration import Calibration, apply_calibration, load_calibration
from fer_models.classes import check_same_classes, read_classes_json
from fer_models.errors import ArtifactError
from fer_models.face_crop import CropSpec
from fer_models.model_card import ModelCard, load_model_card
from fer_models.onnx_runtime import OnnxClassifier


@dataclass
class FerModel:
    folder: Path
    card: ModelCard
    calibration: Calibration
    classifier: OnnxClassifier
    model_id: str

    @property
    def classes(self) -> list[str]:
        return self.card.classes

    @property
    def provider(self) -> str:
        return self.classifier.provider

    def crop_spec(self, **overrides) -> CropSpec:
        return CropSpec.from_card(self.card, **overrides)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.classifier.run(batch)

    def probs(self, batch: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, K) in the card's class order."""
        return apply_calibration(self.classifier.run(batch), self.calibration).astype(np.float32)


def _dim_ok(dim, expected: int) -> bool:
    return not isinstance(dim, int) or dim == expected


def load_model_folder(folder: str | Path, providers: str | Sequence[str] | None = None,
                      intra_op_threads: int | None = None) -> FerModel:
    """Load and cross-check a model folder; raise ArtifactError naming the offending file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ArtifactError(folder, "model folder not found")
    card = load_model_card(folder / "model_card.json")
    if (folder / "classes.json").exists():
        check_same_classes(card.classes, read_classes_json(folder / "classes.json"), folder / "classes.json",
                           "classes.json and model_card.json classes")
    cal_path = folder / "calibration.json"
    calibration = load_calibration(cal_path, card.classes)
    onnx_path = folder / "model.onnx"
    clf = OnnxClassifier(onnx_path, providers, intra_op_threads)
    shape = clf.input_shape
    if len(shape) != 4 or not _dim_ok(shape[1], card.channels) or not _dim_ok(shape[2], card.input_size) \
            or not _dim_ok(shape[3], card.input_size):
        raise ArtifactError(onnx_path, f"input shape {shape} does not match the card "
                                       f"(N, {card.channels}, {card.input_size}, {card.input_size})")
    out = clf.output_shape
    if len(out) != 2 or not _dim_ok(out[1], len(card.classes)):
        raise ArtifactError(onnx_path, f"output shape {out} does not match the card's {len(card.classes)} classes")
    model_id = card.model_id or f"{folder.name}-{_short_hash(onnx_path)}"
    model = FerModel(folder, card, calibration, clf, model_id)
    probe = model.logits(np.zeros((1, card.channels, card.input_size, card.input_size), np.float32))
    if probe.shape != (1, len(card.classes)):
        raise ArtifactError(onnx_path, f"model returned logits of shape {probe.shape}, "
                                       f"expected (1, {len(card.classes)})")
    return model


def _short_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:8]
