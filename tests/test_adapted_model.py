"""The bundled CK+-adapted model (issue 15): a valid app folder that keeps its measured level on CK+
subjects it never saw, and stays close to the default on FER2013 faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_models.classes import FER7
from fer_models.face_crop import prepare_face
from fer_models.model_folder import load_app_model
from resources import default_model_dir, resource_path
from tests.factories import fer_images


@pytest.fixture(scope="module")
def models():
    folder = resource_path("models", "ckplus-adapted")
    if not (folder / "model.onnx").is_file():
        pytest.fail(f"no bundled adapted model at {folder}")
    return load_app_model(folder), load_app_model(default_model_dir())


@pytest.fixture(scope="module")
def ckplus_eval(shared_dir):
    """The evaluation subjects of the recorded CK+ split (fer-train index-ckplus, default salt)."""
    from training.ckplus_index import build_ckplus_index

    index, _ = build_ckplus_index(shared_dir / "data" / "ckplus48")
    pos = index.positions("test")
    root = shared_dir / "data" / "ckplus48"
    images = [cv2.imread(str(root / index.sample_ids[p]), cv2.IMREAD_GRAYSCALE) for p in pos]
    return images, index.labels[pos]


def _accuracy(model, images, labels) -> float:
    spec = model.crop_spec()
    x = np.stack([prepare_face(img, spec) for img in images])
    return float(np.mean(model.probs(x).argmax(1) == labels))


def test_card_says_what_it_is(models):
    adapted, default = models
    assert adapted.classes == list(FER7) and adapted.card.backbone == default.card.backbone
    assert adapted.card.extra["training"]["command"] == "adapt"
    assert adapted.crop_spec() == default.crop_spec()  # the same live framing: only the weights differ
    assert adapted.calibration.split == "val" and adapted.calibration.temperature > 0


def test_it_keeps_its_level_on_ckplus_eval_subjects(models, ckplus_eval):
    adapted, default = models
    images, labels = ckplus_eval
    a, d = _accuracy(adapted, images, labels), _accuracy(default, images, labels)
    # 363 faces of 42 subjects that no model saw: measured 0.672, against 0.474 for the student it was
    # adapted from (the no-distillation default of the time; docs/results.md). The KD student that has
    # been the default since 2026-12-01 (fourth period) scores 0.658 here without adaptation, so the
    # comparison with today's default is not asserted: the gain was measured against the source.
    assert len(labels) == 363 and a > 0.60, (a, d)


def test_it_stays_close_to_the_default_on_fer2013(models, fer2013_dir):
    adapted, default = models
    items = fer_images(fer2013_dir, "PrivateTest", per_class=20)
    images = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p, _ in items]
    labels = np.array([k for _, k in items])
    a, d = _accuracy(adapted, images, labels), _accuracy(default, images, labels)
    assert a > 0.45 and a > d - 0.05, (a, d)
