"""fer-demo --self-test: every step is checked, and a broken install exits non-zero naming the step."""

from __future__ import annotations

import json

from app.__main__ import main
from app.self_test import run_self_test
from tests.factories import make_model_folder


def test_self_test_passes_on_a_working_install(tmp_path, capsys):
    folder = make_model_folder(tmp_path / "m", input_size=48)
    report = run_self_test(folder, qt=True)
    assert report["ok"], report["steps"]
    assert [s["step"] for s in report["steps"]] == ["load model", "load detector", "read test image",
                                                    "detect and classify", "start Qt"]
    p = report["prediction"]
    assert p["label"] in ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
    assert {"detect", "crop", "infer"} <= set(p["timings_ms"]) and p["face_box"][2] >= 96
    assert "CPUExecutionProvider" in report["available_providers"] and report["provider"]
    assert main(["--self-test", "--model", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "self-test passed" in out and "detect and classify" in out


def test_self_test_fails_and_names_the_broken_step(tmp_path, capsys):
    folder = make_model_folder(tmp_path / "m", input_size=48)
    card = json.loads((folder / "model_card.json").read_text())
    card["classes"] = card["classes"][::-1]
    (folder / "model_card.json").write_text(json.dumps(card))
    assert main(["--self-test", "--model", str(folder)]) == 1
    out = capsys.readouterr().out
    assert "FAIL load model" in out and "self-test FAILED" in out
