"""Hotkeys and sliders reach FramePipeline.update_settings and actions.csv; settings persist."""

from __future__ import annotations

from PySide6.QtCore import Qt

from fer_models.session_log import read_actions


def _start_paused_session(qtbot, win, slideshow):
    win.controller.start_video(slideshow["video"], play=False)
    qtbot.waitUntil(lambda: win.controller.session is not None and win.controller.session.recorder.n_frames >= 1, timeout=10000)
    return win.controller.session


def test_tuning_hotkeys_change_the_pipeline_and_are_logged(qtbot, make_window, slideshow):
    win = make_window()
    session = _start_paused_session(qtbot, win, slideshow)
    for key in "]]=bm[-vn":
        qtbot.keyClick(win, key)
    s = win.controller.pipeline.settings
    assert (s.alpha, s.delta, s.window, s.min_count) == (0.75, 0.08, 15, 8)  # each key undone by its pair
    qtbot.keyClick(win, "]")
    qtbot.keyClick(win, "=")
    qtbot.keyClick(win, "b")
    qtbot.keyClick(win, "m")
    s = win.controller.pipeline.settings
    assert (s.alpha, s.delta, s.window, s.min_count) == (0.8, 0.1, 17, 9)
    assert (win.tuning.alpha.value(), win.tuning.window.value(), win.tuning.min_count.value()) == (0.8, 17, 9)
    folder = session.folder
    win.controller.stop()
    kinds = [(k, v) for _, k, v in read_actions(folder / "actions.csv") if k.startswith("set_")]
    assert kinds[:2] == [("set_alpha", "0.75"), ("set_alpha", "0.8")]
    assert ("set_delta", "0.1") in kinds and ("set_window", "17") in kinds and ("set_min_count", "9") in kinds


def test_min_count_never_exceeds_the_window(qtbot, make_window):
    win = make_window()
    win.tuning.window.slider.setValue(win.tuning.window.slider.value() - 10)  # window 15 -> 5
    s = win.controller.pipeline.settings
    assert s.window == 5 and s.min_count == 5
    for _ in range(3):
        qtbot.keyClick(win, "m")
    assert win.controller.pipeline.settings.min_count == 5
    for _ in range(3):
        qtbot.keyClick(win, "v")
    assert (win.controller.pipeline.settings.window, win.controller.pipeline.settings.min_count) == (1, 1)
    win.tuning.min_count.slider.setValue(40)  # the slider is pulled back to the window
    assert win.controller.pipeline.settings.min_count == 1 and win.tuning.min_count.value() == 1


def test_sliders_and_detector_controls_change_the_pipeline(qtbot, make_window):
    win = make_window()
    t = win.tuning
    t.alpha.slider.setValue(40)
    t.delta.slider.setValue(15)
    t.window_ms.setValue(600)
    t.min_face.setValue(120)
    t.score_threshold.setValue(0.45)
    t.align_eyes.setCurrentText("off")
    t.clahe.setCurrentText("on")
    t.margin_override.setChecked(True)
    t.crop_margin.setValue(0.5)
    s = win.controller.pipeline.settings
    assert (s.alpha, s.delta, s.window_ms, s.min_face, s.score_threshold) == (0.4, 0.15, 600.0, 120, 0.45)
    assert (s.align_eyes, s.clahe, s.crop_margin) == (False, True, 0.5)
    t.margin_override.setChecked(False)
    t.align_eyes.setCurrentText("model card")
    assert win.controller.pipeline.settings.crop_margin is None and win.controller.pipeline.settings.align_eyes is None


def test_overlay_key_toggles_and_settings_persist_between_runs(qtbot, make_window, tmp_path):
    win = make_window()
    assert win.video_view.overlay is True
    qtbot.keyClick(win, "o")
    assert win.video_view.overlay is False
    win.tuning.alpha.slider.setValue(55)
    qtbot.keyClick(win, "q")  # quit closes the window and saves the settings
    assert not win.isVisible()
    again = make_window()
    assert again.controller.pipeline.settings.alpha == 0.55 and again.tuning.alpha.value() == 0.55
    assert again.video_view.overlay is False


def test_keys_typed_into_a_number_box_are_not_hotkeys(qtbot, make_window):
    win = make_window()
    box = win.tuning.min_face
    box.setFocus()
    box.selectAll()
    qtbot.keyClicks(box, "150")
    box.editingFinished.emit()
    assert win.controller.pipeline.settings.min_face == 150
    assert win.controller.held_label == ""  # "1" and "5" went into the box, not to the label keys
    qtbot.keyClick(win.video_view, Qt.Key.Key_4)
    assert win.controller.held_label == "Happy"
