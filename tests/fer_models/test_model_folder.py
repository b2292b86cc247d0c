from __future__ import annotations

import json

import numpy as np
import pytest

from fer_models.calibration import softmax
from fer_models.errors import ArtifactError, ClassListMismatch
from fer_models.model_folder import load_model_folder
from fer_models.onnx_runtime import OnnxClassifier, choose_providers
from tests.factories import make_linear_onnx, make_model_folder


def test_provider_fallback_reports_the_chosen_one(tmp_path):
    assert choose_providers("cuda")[-1] == "CPUExecutionProvider"  # CUDA asked, CPU is the fallback here
    assert choose_providers("auto")[-1] == "CPUExecutionProvider"
    clf = OnnxClassifier(make_linear_onnx(tmp_path / "m.onnx"), providers="cuda")
    assert clf.provider in choose_providers("cuda")


def test_single_and_batched_inference_fp32_and_fp16_agree(tmp_path):
    rng = np.random.default_rng(0)
    w, b = rng.normal(0, 0.05, (4096, 7)), rng.normal(0, 0.1, 7)
    f32 = OnnxClassifier(make_linear_onnx(tmp_path / "a.onnx", weights=w, bias=b))
    f16 = OnnxClassifier(make_linear_onnx(tmp_path / "b.onnx", fp16=True, weights=w, bias=b))
    assert (f32.precision, f16.precision) == ("fp32", "fp16")
    x = rng.normal(0, 1, (5, 1, 64, 64)).astype(np.float32)
    batch = f32.run(x)
    assert batch.shape == (5, 7) and batch.dtype == np.float32
    assert np.allclose(f32.run(x[2]), batch[2], atol=1e-5)  # single face (C, S, S)
    assert np.allclose(batch, x.reshape(5, -1) @ w + b, atol=1e-3)
    assert np.abs(softmax(f16.run(x)) - softmax(batch)).max() < 0.02


def test_load_model_folder_applies_calibration(tmp_path):
    folder = make_model_folder(tmp_path / "m", temperature=2.0)
    model = load_model_folder(folder)
    x = np.zeros((2, 1, 64, 64), np.float32)
    assert np.allclose(model.probs(x), softmax(model.logits(x) / 2.0), atol=1e-6)
    assert model.provider == "CPUExecutionProvider" and model.model_id == "linear-0"


@pytest.mark.parametrize("breakage, message", [
    ("size", "input shape"),
    ("classes_json", "different order"),
    ("classes_card", "output shape"),
    ("no_onnx", "ONNX model file not found"),
    ("bad_onnx", "onnxruntime cannot load"),
    ("calibration", "thresholds must be a list of 7"),
    ("norm", "mean must list one number per channel"),
])
def test_mismatched_folders_are_refused_with_the_file_named(tmp_path, breakage, message):
    folder = make_model_folder(tmp_path / "m")
    card = json.loads((folder / "model_card.json").read_text())
    if breakage == "size":
        card["input_size"] = 48
    elif breakage == "classes_json":
        cl = json.loads((folder / "classes.json").read_text())
        cl["classes"] = cl["classes"][::-1]
        (folder / "classes.json").write_text(json.dumps(cl))
    elif breakage == "classes_card":
        card["classes"] = card["classes"][:6]
        (folder / "classes.json").unlink()
        (folder / "calibration.json").write_text('{"temperature": 1.0}')
    elif breakage == "no_onnx":
        (folder / "model.onnx").unlink()
    elif breakage == "bad_onnx":
        (folder / "model.onnx").write_bytes(b"garbage")
    elif breakage == "calibration":
        (folder / "calibration.json").write_text('{"temperature": 1.0, "thresholds": [0.1]}')
    elif breakage == "norm":
        card["mean"] = [0.5, 0.5, 0.5]
    (folder / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ArtifactError, match=message) as info:
        load_model_folder(folder)
    assert str(folder) in str(info.value)


def test_missing_folder(tmp_path):
    with pytest.raises(ArtifactError, match="model folder not found"):
        load_model_folder(tmp_path / "nope")


# ----------------------------------------------------------------------------- the load-time test run

@pytest.mark.parametrize("breakage, culprit, message", [
    ("nan_bias", "model.onnx", "not finite"),  # NaN for every input
    ("huge_weights", "model.onnx", "not finite"),  # finite on a zero tensor, infinite on a real face
    ("tiny_temperature", "calibration.json", "calibrated probabilities"),  # finite logits, NaN after calibration
])
def test_models_whose_outputs_are_not_finite_probabilities_are_refused(tmp_path, breakage, culprit, message):
    folder = make_model_folder(tmp_path / "m")
    if breakage == "nan_bias":
        make_linear_onnx(folder / "model.onnx", bias=np.full(7, np.nan))
    elif breakage == "huge_weights":
        make_linear_onnx(folder / "model.onnx", weights=np.full((64 * 64, 7), 1e38))
    else:
        cal = json.loads((folder / "calibration.json").read_text())
        cal["temperature"] = 1e-310
        (folder / "calibration.json").write_text(json.dumps(cal))
    with pytest.raises(ArtifactError, match=message) as info:
        load_model_folder(folder)
    assert str(info.value).startswith(str(folder / culprit))


def test_the_output_check_is_one_function_that_accepts_a_good_model(tmp_path):
    from fer_models.model_folder import check_model_outputs

    model = load_model_folder(make_model_folder(tmp_path / "m"))
    check_model_outputs(model)  # a good model passes; load_model_folder already ran it
    make_linear_onnx(tmp_path / "m" / "model.onnx", bias=np.full(7, np.inf))
    model.classifier = OnnxClassifier(tmp_path / "m" / "model.onnx")
    with pytest.raises(ArtifactError, match="not finite"):
        check_model_outputs(model)


@pytest.mark.parametrize("classes, message", [
    (["Happy", "Angry", "Disgust", "Fear", "Sad", "Surprise", "Neutral"], "different order"),
    (["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral", "Contempt"], "differ"),
    (["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise"], "differ"),
], ids=["reordered", "eight", "six"])
def test_app_models_must_have_the_fer7_classes_in_canonical_order(tmp_path, classes, message):
    from fer_models.model_folder import check_app_classes, load_app_model

    folder = make_model_folder(tmp_path / "m", classes=classes)
    model = load_model_folder(folder)  # a consistent folder is a valid model folder (training may use it)...
    with pytest.raises(ClassListMismatch, match=message) as info:  # ...but not one the app can log or score
        check_app_classes(model)
    assert str(info.value).startswith(str(folder / "classes.json")) and "FER7" in str(info.value)
    with pytest.raises(ClassListMismatch, match="FER7"):
        load_app_model(folder)
    (folder / "classes.json").unlink()
    with pytest.raises(ClassListMismatch) as info:
        load_app_model(folder)
    assert str(info.value).startswith(str(folder / "model_card.json"))

