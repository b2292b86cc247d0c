"""Whole sessions through the window: logs, labels, scores equal to fer-score, camera failures, privacy."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from PySide6.QtCore import Qt

from app.sources import SourceSpec, open_source
from fer_models.scoring_cli import main as fer_score_main, score_file
from fer_models.session_log import label_at, read_actions, read_csv_table, read_events, read_per_frame
from tests.app.conftest import FakeCamera


def _fer_score_json(per_frame: Path) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert fer_score_main([str(per_frame), "--json"]) == 0
    return json.loads(out.getvalue())


def _files_with_pixels(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() not in (".csv", ".json")]


def test_labelled_video_session_logs_and_scores_like_fer_score(qtbot, make_window, slideshow):
    win = make_window()
    win.controller.set_speed(2.0)
    win.controller.start_video(slideshow["video"], labels=slideshow["labels"])
    ended = []
    win.controller.runner.ended.connect(lambda: ended.append(True))
    # the live panel scores while the video plays (throttled to about once a second)
    qtbot.waitUntil(lambda: (win.score_panel.last or {}).get("n_segments", 0) >= 1, timeout=20000)
    assert win.score_panel.title().startswith("Score (live")
    qtbot.waitUntil(lambda: bool(ended), timeout=20000)
    final = win.controller.stop()
    session = win.controller.last_session
    folder = session.folder
    per_frame = folder / "per_frame.csv"

    # every row carries the label of its own video time (session time = video time here)
    rows = read_per_frame(per_frame)
    intervals = slideshow["intervals"]
    times = [float(t) for t in rows["time_sec"]]
    assert len(times) >= 0.3 * slideshow["frames"]  # speed 2 on a busy machine may drop frames
    assert rows["manual_label"] == [label_at(intervals, t * 1000.0) for t in times]
    assert times == sorted(times)
    # one event per known segment, in order, inside its segment
    events = read_events(folder / "events.csv")
    assert [e.label for e in events] == [r.label for r in intervals]
    for e, r in zip(events, intervals):
        assert r.start_ms / 1000 <= e.start_time_sec < r.start_ms / 1000 + 0.35
        assert r.end_ms / 1000 - 0.35 < e.end_time_sec < r.end_ms / 1000
        assert e.source == "video-labels"
    kinds = [k for _, k, _ in read_actions(folder / "actions.csv")]
    assert kinds[:4] == ["session_start", "source", "model", "provider"]
    assert "labels_file" not in kinds and "labels_loaded" in kinds and kinds[-1] == "session_end"
    assert (folder / "model_card.json").is_file() and (folder / "settings.json").is_file()
    assert (folder / "video_labels.csv").is_file()

    # live score (in memory), final score (file), fer-score (CLI and function): the same numbers
    live = session.recorder.score_live()
    assert final == live == score_file(per_frame) == _fer_score_json(per_frame)
    assert final["n_segments"] == 3 and final["n_scored_frames"] > 0
    assert win.score_panel.last == final
    summary = read_csv_table(folder.parent / "demo_results_summary.csv", ["session", "model_id", "alpha"])
    assert summary["session"][-1] == folder.name and summary["model_id"][-1] == "linear-0"
    assert _files_with_pixels(folder) == []  # no clip saving: not one image on disk


def test_hotkeys_and_label_bar_write_rows_events_and_actions(qtbot, make_window, slideshow):
    win = make_window()
    win.playback.label_mode.setChecked(False)  # treat the file like a live camera: held labels
    win.controller.start_video(slideshow["video"])
    qtbot.waitUntil(lambda: win.controller.session is not None and win.controller.session.recorder.n_frames >= 3, timeout=10000)
    rec = win.controller.session.recorder

    def press_and_wait(key=None, click=None):
        n = rec.n_frames
        if key is not None:
            qtbot.keyClick(win, key)
        else:
            qtbot.mouseClick(win.label_bar.buttons[click], Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: rec.n_frames >= n + 3, timeout=10000)

    press_and_wait("4")
    assert win.video_view._manual == "Happy" and win.label_bar.current() == "Happy"
    press_and_wait("5")
    press_and_wait(click="Neutral")
    press_and_wait("c")
    folder = win.controller.session.folder
    win.controller.stop()
    manual = read_per_frame(folder / "per_frame.csv")["manual_label"]
    runs = [m for i, m in enumerate(manual) if i == 0 or manual[i - 1] != m]
    assert runs == ["", "Happy", "Sad", "Neutral", ""]
    events = read_events(folder / "events.csv")
    assert [(e.label, e.source) for e in events] == [("Happy", "hotkey"), ("Sad", "hotkey"), ("Neutral", "click")]
    for e in events:
        assert e.end_frame >= e.start_frame + 2
    labels = [v for _, k, v in read_actions(folder / "actions.csv") if k == "manual_label"]
    assert labels == ["Happy", "Sad", "Neutral", "(none)"]


def test_video_label_mode_is_frame_accurate_with_steps(qtbot, make_window, slideshow, tmp_path):
    win = make_window()
    win.controller.start_video(slideshow["video"], play=False)
    qtbot.waitUntil(lambda: win.controller.session is not None and win.controller.session.recorder.n_frames == 1, timeout=10000)
    assert win.controller.session.label_mode == "video" and win.controller.video_frame == 0

    def shown(frame):  # the frame was captured, processed and logged (as a user stepping sees each frame)
        last = win.controller.session.last_item
        return win.controller.video_frame == frame and last is not None and last.captured.video_frame == frame

    def step(n=1):
        target = win.controller.video_frame + n
        qtbot.keyClick(win, "." if n > 0 else ",")
        qtbot.waitUntil(lambda: shown(target), timeout=5000)

    qtbot.keyClick(win, "4")  # Happy from frame 0
    for _ in range(5):
        step()
    qtbot.keyClick(win, "0")  # frame 5 has no label
    step()
    step()
    qtbot.keyClick(win, "5")  # Sad from frame 7
    step()
    step()  # ... through frame 9
    step(-1)  # a step back ends the painting
    win.controller.seek(20)
    qtbot.waitUntil(lambda: shown(20), timeout=5000)
    assert win.controller.session.recorder.n_frames == 12
    out = tmp_path / "my_labels.csv"
    assert win.controller.save_labels(out)
    fps = slideshow["fps"]
    t = lambda f: f * 1000.0 / fps  # noqa: E731
    expected = ["Happy"] * 5 + [""] * 2 + ["Sad"] * 3 + [""] * 10
    assert [win.controller.track.label_at(t(f)) for f in range(20)] == expected
    from fer_models.session_log import read_label_intervals

    saved = read_label_intervals(out)
    assert [label_at(saved, t(f)) for f in range(20)] == expected
    # the frames logged after each press carry the label of their own video time
    folder = win.controller.session.folder
    win.controller.stop()
    rows = read_per_frame(folder / "per_frame.csv")
    assert rows["manual_label"][1:5] == ["Happy"] * 4
    assert (folder / "video_labels.csv").read_text() == out.read_text()
    kinds = [k for _, k, _ in read_actions(folder / "actions.csv")]
    assert kinds.count("video_label") == 3 and "step" in kinds and "seek" in kinds


def test_missing_camera_gives_a_message_not_a_crash(qtbot, make_window):
    win = make_window()
    win.controller.start_camera(99)
    qtbot.waitUntil(lambda: "No camera at index 99" in win.banner.text(), timeout=10000)
    assert win.banner.level == "error"
    assert win.controller.runner is None and win.controller.session is None
    assert not (win.controller.sessions_root.exists() and any(win.controller.sessions_root.iterdir()))  # no empty session folder
    assert win.start_camera_btn.isEnabled()


def test_unreadable_video_gives_a_message(qtbot, make_window, tmp_path):
    win = make_window()
    bad = tmp_path / "not_a_video.avi"
    bad.write_bytes(b"this is not a video")
    win.controller.start_video(bad)
    qtbot.waitUntil(lambda: win.banner.level == "error", timeout=10000)
    assert "cannot open this video" in win.banner.text() and win.controller.session is None and win.controller.runner is None


def test_camera_lost_mid_session_keeps_the_logs(qtbot, make_window, monkeypatch):
    import app.capture_worker

    monkeypatch.setattr(app.capture_worker, "CAMERA_LOST_AFTER_S", 0.3)
    cams = []

    def opener(spec: SourceSpec):
        if spec.kind == "camera":
            cams.append(FakeCamera(frames=25))
            return cams[-1]
        return open_source(spec)

    win = make_window(source_opener=opener)
    win.controller.start_camera(0)
    qtbot.waitUntil(lambda: win.controller.session is not None and win.controller.session.recorder.n_frames >= 3, timeout=10000)
    win.controller.set_label("Fear")
    folder = win.controller.session.folder
    qtbot.waitUntil(lambda: "stopped delivering frames" in win.banner.text(), timeout=10000)
    assert win.controller.session is None and win.controller.runner is None and cams[0].released
    assert str(folder) in win.banner.text()
    rows = read_per_frame(folder / "per_frame.csv")
    assert 3 <= len(rows["frame_index"]) <= 25
    kinds = [k for _, k, _ in read_actions(folder / "actions.csv")]
    assert "source_lost" in kinds and kinds[-1] == "session_end"
    assert (folder / "score.json").is_file()
    summary = read_csv_table(folder.parent / "demo_results_summary.csv", ["session"])
    assert summary["session"] == [folder.name]


def test_clip_saving_needs_consent_every_session(qtbot, make_window, slideshow):
    answers = []

    def consent(parent, folder):
        answers.append(folder)
        return len(answers) >= 2  # decline the first time, accept the second

    win = make_window(ask_consent=consent)
    win.controller.start_video(slideshow["video"])
    qtbot.waitUntil(lambda: win.controller.session is not None and win.controller.session.recorder.n_frames >= 2, timeout=10000)
    first = win.controller.session.folder
    win.clips_box.setChecked(True)
    assert not win.clips_box.isChecked() and win.controller.session.clips is None
    win.clips_box.setChecked(True)
    assert win.clips_box.isChecked() and win.controller.session.clips is not None
    n = win.controller.session.recorder.n_frames
    qtbot.waitUntil(lambda: win.controller.session.recorder.n_frames >= n + 5, timeout=10000)
    win.controller.stop()
    assert not win.clips_box.isChecked()
    consent_rows = [v for _, k, v in read_actions(first / "actions.csv") if k == "clip_consent"]
    assert consent_rows == ["declined", "granted"]
    clips = list((first / "clips").glob("clip_*.avi"))
    assert len(clips) == 1 and clips[0].stat().st_size > 0
    # the face crops the model saw, named by the frame_index of their per_frame.csv rows (threads and all)
    crops = read_csv_table(first / "crops" / "crops.csv", ["frame_index", "time_sec", "file"])
    logged = set(read_per_frame(first / "per_frame.csv")["frame_index"])
    assert len(crops["file"]) >= 1 and set(crops["frame_index"]) <= logged
    assert all((first / "crops" / f).is_file() and f == f"{int(i):07d}.png"
               for i, f in zip(crops["frame_index"], crops["file"]))
    # a new session asks again
    win.controller.start_video(slideshow["video"], play=False)
    qtbot.waitUntil(lambda: win.controller.session is not None and win.controller.session.recorder.n_frames >= 1, timeout=10000)
    win.clips_box.setChecked(True)
    assert len(answers) == 3
    win.clips_box.setChecked(False)
    second = win.controller.session.folder
    win.controller.stop()
    assert not (second / "clips").exists()  # paused: clip saving was on but no frame came, so no file
    assert not (second / "crops").exists()
