"""The window: a second model's track under the first, rater B's track and toggle, the lag box."""

from __future__ import annotations

import json

from PySide6.QtWidgets import QFileDialog

from fer_models.scoring_cli import score_file
from fer_models.session_log import read_actions, read_csv_table, read_label_intervals


def test_second_model_runs_in_the_worker_and_shows_its_track(qtbot, make_window, other_model_dir, slideshow,
                                                              monkeypatch):
    win = make_window()
    assert not win.remove_second_action.isEnabled()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(other_model_dir))
    win.open_second_action.trigger()  # Model menu → Open second model…
    c = win.controller
    assert c.second_model is not None and c.second_model.model_id == "linear-1"
    assert win.timeline.second_name == "linear-1" and win.remove_second_action.isEnabled()
    assert "Second model: linear-1" in win.model_panel.second.text()
    c.set_speed(2.0)
    c.start_video(slideshow["video"], labels=slideshow["labels"])
    qtbot.waitUntil(lambda: c.session is not None and c.session.recorder.n_frames >= 8, timeout=20000)
    # results of both models came through the processing thread; the window painted them on its own thread
    qtbot.waitUntil(lambda: win.second_display.text().startswith("Model B (linear-1): ")
                    and not win.second_display.text().endswith("—"), timeout=10000)
    points = list(c.session.timeline)
    assert points and all(p.pred_b is not None for p in points)
    session = c.session
    folder = session.folder
    c.stop()
    cols = ("frame_index", "time_sec", "manual_label", "face_x", "face_y", "face_w", "det_score")
    b_rows = read_csv_table(folder / "model_b" / "per_frame.csv", cols)
    a_rows = read_csv_table(folder / "per_frame.csv", cols)
    for col in cols:  # the same frames and the same detections (one per frame, in the worker)
        assert b_rows[col] == a_rows[col], col
    assert b_rows["prob_Happy"] != a_rows["prob_Happy"]  # but each model's own probabilities
    comp = json.loads((folder / "comparison.json").read_text())
    assert comp["b"]["score"] == score_file(folder / "model_b" / "per_frame.csv")
    win.remove_second_action.trigger()
    assert c.second_model is None and win.timeline.second_name == "" and not win.second_display.isVisible()
    assert c.pipeline.extra_models == []


def test_rater_toggle_labels_rater_b_and_both_tracks_are_shown(qtbot, make_window, slideshow, tmp_path):
    win = make_window()
    c = win.controller
    c.start_video(slideshow["video"], play=False)
    qtbot.waitUntil(lambda: c.session is not None and c.session.recorder.n_frames == 1, timeout=10000)
    assert win.video_bar.isVisible() and win.video_bar_b.isVisible()
    assert win.video_bar.active and not win.video_bar_b.active

    def shown(frame):
        last = c.session.last_item
        return c.video_frame == frame and last is not None and last.captured.video_frame == frame

    def step():
        target = c.video_frame + 1
        qtbot.keyClick(win, ".")
        qtbot.waitUntil(lambda: shown(target), timeout=5000)

    qtbot.keyClick(win, "r")  # rater B
    assert c.rater == "B" and win.rater_box.currentData() == "B"
    assert win.video_bar_b.active and not win.video_bar.active and win.video_view.manual_title == "Rater B"
    qtbot.keyClick(win, "6")  # B: Surprise from frame 0
    step()
    step()
    qtbot.keyClick(win, "0")
    win.rater_box.setCurrentIndex(0)  # the combo switches back to A
    assert c.rater == "A" and win.video_view.manual_title == "Manual"
    qtbot.keyClick(win, "4")  # A: Happy on frame 2
    t = lambda f: f * 1000.0 / slideshow["fps"]  # noqa: E731
    assert [c.track_b.label_at(t(f)) for f in range(3)] == ["Surprise", "Surprise", ""]
    assert [c.track.label_at(t(f)) for f in range(3)] == ["", "", "Happy"]
    assert [r.label for r in win.video_bar_b._intervals()] == ["Surprise"]  # the B strip draws B's track
    folder = c.session.folder
    c.stop()
    assert read_label_intervals(folder / "video_labels_b.csv") == c.track_b.intervals
    assert (folder / "agreement.json").is_file()


def test_the_lag_box_sets_the_scoring_lag_and_persists(qtbot, make_window, slideshow, tmp_path):
    win = make_window()
    c = win.controller
    win.score_panel.lag.setValue(250)
    assert c.lag_ms == 250.0
    c.set_speed(4.0)
    c.start_video(slideshow["video"], labels=slideshow["labels"])
    ended = []
    c.runner.ended.connect(lambda: ended.append(True))
    qtbot.waitUntil(lambda: bool(ended), timeout=30000)
    folder = c.session.folder
    final = c.stop()
    assert final["lag_ms"] == 250 and json.loads((folder / "score.json").read_text()) == final
    assert {k: v for k, v in final.items() if k != "lag_ms"} == score_file(folder / "per_frame.csv", lag_ms=250)
    assert win.score_panel.last == final
    summary = read_csv_table(folder.parent / "demo_results_summary.csv", ["lag_ms"])
    assert summary["lag_ms"] == ["250.0"]
    assert ("lag_ms", "250.0") in [(k, v) for _, k, v in read_actions(folder / "actions.csv")]
    win.save_config()
    assert json.loads(win.config_path.read_text())["lag_ms"] == 250.0
