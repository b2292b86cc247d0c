"""Model handling: the card is shown, a broken or mismatched folder is refused and the old model stays."""

from __future__ import annotations

import json
import shutil

import resources
from tests.factories import make_model_folder


def test_card_is_shown(make_window, model_dir):
    win = make_window()
    text = win.model_panel.card.toPlainText()
    assert "linear-0" in text and "64×64" in text and "Calibration T" in text and "1.500" in text
    assert "Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral" in text
    assert win.start_camera_btn.isEnabled() and win.open_video_btn.isEnabled()


def test_broken_model_folder_is_refused_and_the_old_one_stays(make_window, model_dir, other_model_dir, tmp_path):
    win = make_window()
    old = win.controller.model
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    card = json.loads((broken / "model_card.json").read_text())
    card["input_size"] = 48  # the ONNX graph takes 64 px
    (broken / "model_card.json").write_text(json.dumps(card))
    assert win.controller.load_model(broken) is False
    assert win.controller.model is old and win.controller.pipeline.model is old
    assert "refused" in win.banner.text() and "input shape" in win.banner.text() and "stays loaded" in win.banner.text()
    assert win.controller.load_model(tmp_path / "does-not-exist") is False
    assert win.controller.pipeline.model is old
    reordered = make_model_folder(tmp_path / "reordered", classes=["Happy", "Angry", "Disgust", "Fear", "Sad",
                                                                   "Surprise", "Neutral"])
    assert win.controller.load_model(reordered) is False and "FER7" in win.banner.text()
    assert win.controller.pipeline.model is old
    assert win.controller.load_model(other_model_dir) is True
    assert win.controller.pipeline.model.model_id == "linear-1" and "linear-1" in win.model_panel.card.toPlainText()


def test_missing_default_model_says_so_and_offers_to_open_one(make_window, monkeypatch, tmp_path):
    monkeypatch.setattr(resources, "default_model_dir", lambda: tmp_path / "no-default")
    win = make_window(model_dir=None)
    assert win.controller.model is None and win.controller.pipeline is None
    assert "bundled default model is missing" in win.banner.text()
    assert "Open a model folder" in win.banner.text()
    assert not win.start_camera_btn.isEnabled() and not win.open_video_btn.isEnabled()
    assert win.model_panel.open_btn.isEnabled()


def test_provider_choice_reloads_the_model(make_window):
    win = make_window()
    win.model_panel.provider.setCurrentText("CPUExecutionProvider")
    assert win.controller.model.provider == "CPUExecutionProvider" and win.controller.provider == "CPUExecutionProvider"
