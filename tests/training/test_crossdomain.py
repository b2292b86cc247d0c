"""fer-train check-ckplus: CK+ scored through the app's loader, six shared classes, contempt left out."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from fer_models.classes import FER7
from fer_models.errors import ArtifactError
from fer_models.face_crop import prepare_face
from fer_models.model_folder import load_model_folder
from tests.factories import make_model_folder
from training.cli import main
from training.crossdomain import CKPLUS_TO_FER7, check_ckplus, load_ckplus


@pytest.fixture(scope="module")
def ck_subset(tmp_path_factory, shared_dir):
    """Three images of every CK+ class folder (contempt included, to be left out)."""
    src = shared_dir / "data" / "ckplus48"
    dst = tmp_path_factory.mktemp("ck") / "ckplus48"
    for cls_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        (dst / cls_dir.name).mkdir(parents=True)
        for f in sorted(cls_dir.glob("*.png"))[:3]:
            shutil.copyfile(f, dst / cls_dir.name / f.name)
    return dst


def test_six_classes_mapped_and_contempt_left_out(ck_subset):
    images, y, names = load_ckplus(ck_subset)
    assert len(images) == 18 and not any(n.startswith("contempt/") for n in names)
    assert sorted({FER7[k] for k in y}) == sorted(CKPLUS_TO_FER7.values())
    assert all(img.shape == (48, 48) for img in images)


def test_metrics_match_the_folder_image_by_image(ck_subset, tmp_path, capsys):
    folder = make_model_folder(tmp_path / "m", input_size=48, seed=4)
    res = check_ckplus(folder, ck_subset, batch_size=5)
    model = load_model_folder(folder, providers="cpu")
    images, y, _ = load_ckplus(ck_subset)
    p = np.concatenate([model.probs(prepare_face(i, model.crop_spec())[None]) for i in images])
    assert res["n"] == 18 and res["accuracy"] == pytest.approx(float(np.mean(p.argmax(1) == y)))
    shared = [FER7.index(c) for c in CKPLUS_TO_FER7.values()]
    six = np.array(shared)[p[:, shared].argmax(1)]
    assert res["accuracy_6way"] == pytest.approx(float(np.mean(six == y)))
    assert res["accuracy_6way"] >= res["accuracy"]  # dropping Neutral can only help
    assert main(["check-ckplus", str(folder), "--data", str(ck_subset)]) == 0
    assert "on CK+ (n=18, six classes, contempt left out)" in capsys.readouterr().out


def test_unknown_class_folder_is_named(ck_subset, tmp_path):
    bad = tmp_path / "ck"
    shutil.copytree(ck_subset, bad)
    (bad / "neutral_ish").mkdir()
    with pytest.raises(ArtifactError, match="neutral_ish.*unknown CK\\+ class folder"):
        load_ckplus(bad)
