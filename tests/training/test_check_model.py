"""fer-train check-model scores the model folder itself (ONNX, card crop spec, calibration) on a split."""

from __future__ import annotations

import numpy as np
import pytest

from fer_models.calibration import classification_metrics
from fer_models.classes import FER7
from fer_models.errors import FerError
from fer_models.face_crop import prepare_face
from fer_models.model_folder import load_model_folder
from tests.factories import make_model_folder
from training.check_model import check_model, floor_checks
from training.cli import main
from training.data import get_store


def test_metrics_match_the_folder_run_image_by_image(mini_index, tmp_path, capsys):
    folder = make_model_folder(tmp_path / "m", input_size=48, temperature=2.0, seed=3)
    res = check_model(folder, mini_index.path, split="test", batch_size=5)
    model = load_model_folder(folder, providers="cpu")
    rows = mini_index.positions("test")
    faces = [get_store(mini_index).get(int(r)) for r in rows]
    probs = np.concatenate([model.probs(prepare_face(f, model.crop_spec())[None]) for f in faces])
    expected = classification_metrics(probs.astype(np.float64), mini_index.labels[rows])
    assert res["n"] == len(rows) == 14
    for k in ("accuracy", "macro_f1", "nll", "ece"):
        assert res["after"][k] == pytest.approx(expected[k], abs=1e-5)
    assert res["after"]["nll"] != pytest.approx(res["before"]["nll"])  # T = 2 was applied after, not before
    assert main(["check-model", str(folder), "--index", str(mini_index.path), "--split", "val"]) == 0
    assert "on val (n=14, T=2)" in capsys.readouterr().out


def test_a_folder_with_other_classes_is_refused(mini_index, tmp_path):
    folder = make_model_folder(tmp_path / "m", input_size=48, classes=list(reversed(FER7)))
    with pytest.raises(FerError, match="classes.json: classes are in a different order"):
        check_model(folder, mini_index.path)


def test_floors_turn_the_score_into_a_go_no_go(mini_index, tmp_path, capsys):
    """Issue 10's bar for the default (accuracy, macro-F1, ECE after calibration): exit 1 when one is missed."""
    folder = make_model_folder(tmp_path / "m", input_size=48, temperature=2.0, seed=3)
    after = check_model(folder, mini_index.path, split="val")["after"]
    base = ["check-model", str(folder), "--index", str(mini_index.path), "--split", "val"]
    assert main(base + ["--min-accuracy", str(after["accuracy"]), "--max-ece", str(after["ece"] + 1e-9)]) == 0
    out = capsys.readouterr().out
    assert out.count(": GO") == 2 and "floor: accuracy" in out and "floor: ece" in out
    assert main(base + ["--min-accuracy", "0.0", "--min-macro-f1", str(after["macro_f1"] + 0.01)]) == 1
    out = capsys.readouterr().out
    assert "floor: accuracy" in out and f"floor: macro_f1 {after['macro_f1']:.4f} >= " in out and "NO-GO" in out
    assert main(base + ["--max-ece", str(max(after["ece"] - 0.01, 0.0))]) == 1
    # no floor given: a score, never a failure
    assert floor_checks({"after": after}) == []
