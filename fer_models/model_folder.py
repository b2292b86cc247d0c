"""Loading a model folder (model.onnx + model_card.json + calibration.json [+ classes.json]).

Everything is cross-checked before the app swaps a model in: class lists, input
size and channels against the ONNX graph, normalisation against the channel
count, calibration vectors against the classes, and a test run whose outputs
must be finite probabilities. A bad folder raises an ArtifactError and the
caller keeps its previous model. ``load_app_model`` adds the app's own check
(FER7 in canonical order) that the window and the headless replay share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fer_models.calibration import Calibration, apply_calibration, load_calibration
from fer_models.classes import FER7, check_same_classes, read_classes_json
from fer_models.errors import ArtifactError, ClassListMismatch
from fer_models.face_crop import CropSpec
from fer_models.files import sha256_file
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
    model_id = card.model_id or f"{folder.name}-{sha256_file(onnx_path)[:8]}"
    model = FerModel(folder, card, calibration, clf, model_id)
    check_model_outputs(model)
    return model


def probe_inputs(card: ModelCard) -> list[np.ndarray]:
    """The load-time test inputs, one (1, C, S, S) tensor each: a zero tensor and faces that are black,
    white, mid-grey and deterministic noise, normalised as the card says (a model that overflows only
    on a real face, not on zeros, is caught too)."""
    shape = (1, card.channels, card.input_size, card.input_size)
    mean = np.asarray(card.mean, np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(card.std, np.float32).reshape(1, -1, 1, 1)
    noise = np.random.default_rng(0).random(shape, dtype=np.float32)
    pixels = [np.zeros(shape, np.float32), np.ones(shape, np.float32), np.full(shape, 0.5, np.float32), noise]
    return [np.zeros(shape, np.float32)] + [((p - mean) / std).astype(np.float32) for p in pixels]


def check_model_outputs(model: FerModel) -> None:
    """The load-time test run: logits of the right shape and finite, calibrated probabilities finite and
    summing to one, on every ``probe_inputs`` tensor.

    ``load_model_folder`` runs it, so the window, ``fer-demo --replay`` and every other caller refuse the
    same models: one whose outputs are NaN or infinite would otherwise predict the first class for every
    face. Raises ArtifactError naming model.onnx (bad logits) or calibration.json (bad probabilities).
    """
    k = len(model.classes)
    onnx_path = model.classifier.path
    names = ("a zero tensor", "a black face", "a white face", "a mid-grey face", "a noise image")
    for what, x in zip(names, probe_inputs(model.card)):
        logits = model.logits(x)
        if logits.shape != (1, k):
            raise ArtifactError(onnx_path, f"model returned logits of shape {logits.shape}, expected (1, {k})")
        if not np.all(np.isfinite(logits)):
            raise ArtifactError(onnx_path, f"the load-time test run on {what} gave logits that are not finite "
                                           f"(NaN or infinite): {np.round(logits[0], 4).tolist()}; such a model "
                                           "would predict the first class for every face")
        with np.errstate(all="ignore"):  # the overflow is reported below, as an error naming the file
            probs = apply_calibration(logits, model.calibration)
        total = float(probs.sum()) if np.all(np.isfinite(probs)) else float("nan")
        if not (np.all(np.isfinite(probs)) and abs(total - 1.0) <= 1e-3 and np.all(probs >= 0)):
            raise ArtifactError(model.folder / "calibration.json",
                                f"the load-time test run on {what} gave calibrated probabilities that are not "
                                f"finite or do not sum to one (sum {total}) from finite logits "
                                f"{np.round(logits[0], 4).tolist()}")


def check_app_classes(model: FerModel) -> None:
    """Refuse a model whose classes are not FER7 in canonical order (names compared without case).

    The app's session logs (prob_<class> columns), label keys and transition-fair scoring all use the
    canonical FER7 order: a consistently reordered folder would silently relabel every prediction, and an
    extra class would crash scoring after the whole session was logged. The window and ``fer-demo
    --replay`` call this before the first frame. The error names classes.json (model_card.json when the
    folder has none).
    """
    where = model.folder / "classes.json"
    if not where.is_file():
        where = model.folder / "model_card.json"
    try:
        check_same_classes(FER7, model.classes, where, "classes")
    except ClassListMismatch as exc:
        raise ClassListMismatch(where, f"{exc.problem}: the app needs the FER7 classes in canonical order, "
                                       "which its session logs, label keys and scoring use") from None


def load_app_model(folder: str | Path, providers: str | Sequence[str] | None = None,
                   intra_op_threads: int | None = None) -> FerModel:
    """``load_model_folder`` plus ``check_app_classes``: what every app entry point loads a model with."""
    model = load_model_folder(folder, providers, intra_op_threads)
    check_app_classes(model)
    return model
