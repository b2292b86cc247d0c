"""ONNX export (FP32/FP16) with its parity check on real faces, and the latency benchmark."""

from __future__ import annotations

import cv2
import pytest

from fer_models.calibration import Calibration, save_calibration
from fer_models.classes import FER7
from fer_models.errors import ArtifactError
from fer_models.model_folder import load_model_folder
from tests.factories import fer_images
from training import export as export_mod
from training.bench import bench
from training.data import crop_spec_to_dict, make_crop_spec
from training.models import checkpoint_payload, create_model, save_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    model = create_model("mobilenetv3_large_100", 7, 1, 48)
    payload = checkpoint_payload(model, backbone="mobilenetv3_large_100", classes=FER7, input_size=48, in_chans=1,
                                 stem_stride=None, crop_spec=crop_spec_to_dict(make_crop_spec(48)))
    save_checkpoint(run / "best.pt", payload)
    save_calibration(run / "calibration.json", Calibration(temperature=1.3, classes=list(FER7)))
    return run


@pytest.fixture(scope="module")
def faces(fer2013_dir):
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p, _ in fer_images(fer2013_dir, "PublicTest", per_class=3)]


def test_export_writes_loadable_fp32_and_fp16_folders(run_dir, faces, tmp_path):
    report = export_mod.export_run(run_dir, tmp_path / "export", fp16=True, crop_margin=-0.03, images=faces,
                                   model_id="unit")
    for precision in ("fp32", "fp16"):
        model = load_model_folder(tmp_path / "export" / precision)
        assert model.card.precision == precision and model.card.crop_margin == pytest.approx(-0.03)
        assert model.card.backbone == "mobilenetv3_large_100" and model.calibration.temperature == 1.3
        assert model.model_id == f"unit-{precision}"
        assert model.card.extra["parity_images"] == len(faces)
    assert report["folders"]["fp32"]["parity_max_abs_prob_diff"] <= 1e-4
    assert report["folders"]["fp16"]["parity_max_abs_prob_diff"] <= 2e-2
    assert report["folders"]["fp16"]["size_bytes"] < 0.6 * report["folders"]["fp32"]["size_bytes"]


def test_model_card_says_how_the_model_was_trained():
    dkd = {"command": "student", "config": "ft6-dkd-ens3", "distill": "dkd", "alpha": 0.5, "beta": 4.0,
           "temperature": 2.0, "teacher": ["runs/ensemble_cpu3"], "epochs": 6, "seed": 42, "threads": 1}
    out = export_mod.training_summary(dkd, {"epoch": 5})
    assert out["distill"] == "dkd" and out["beta"] == 4.0 and out["teacher"] == ["runs/ensemble_cpu3"]
    assert out["epoch_of_checkpoint"] == 5 and "threads" not in out
    base = export_mod.training_summary({**dkd, "distill": "none", "config": "ft6-none-ens3"}, {"epoch": 4})
    assert base["distill"] == "none" and not {"teacher", "alpha", "beta", "temperature"} & set(base)


def test_parity_failure_is_refused(run_dir, faces, tmp_path, monkeypatch):
    monkeypatch.setitem(export_mod.PARITY_TOLERANCE, "fp16", 0.0)
    with pytest.raises(ArtifactError, match="ONNX and torch disagree"):
        export_mod.export_run(run_dir, tmp_path / "export", fp16=True, crop_margin=0.0, images=faces)


def test_bench_writes_latency_rows(run_dir, faces, tmp_path):
    export_mod.export_run(run_dir, tmp_path / "export", fp16=True, crop_margin=0.0, images=faces[:4])
    csv = tmp_path / "latency.csv"
    rows = bench([tmp_path / "export" / "fp32", tmp_path / "export" / "fp16"], batches=(1, 8), runs=10, out_csv=csv)
    assert {(r["precision"], r["batch"]) for r in rows} == {("fp32", 1), ("fp32", 8), ("fp16", 1), ("fp16", 8)}
    assert all(r["median_ms"] > 0 and r["p90_ms"] >= r["median_ms"] for r in rows)
    lines = csv.read_text().splitlines()
    assert lines[0].startswith("model,precision,provider,batch,median_ms,p90_ms") and len(lines) == 5
    # the short provider name the CLI help shows ("cpu") is accepted, as everywhere else
    alias = bench([tmp_path / "export" / "fp32"], batches=(1,), providers=["cpu"], runs=5, out_csv=csv)
    assert [r["provider"] for r in alias] == ["CPUExecutionProvider"]
