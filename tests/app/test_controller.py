"""SessionController driven directly: no window, no QApplication, no threads (tests/app/fakes.SyncRunner)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from fer_models.scoring import DEFAULT_SCORING
from fer_models.scoring_cli import score_file
from fer_models.session_log import label_at, read_actions, read_csv_table, read_events, read_per_frame
from app.sources import open_source
from tests.app.conftest import FakeCamera
from tests.conftest import REPO
from tests.app.fakes import SyncRunner
from tests.factories import make_model_folder


def _runner() -> SyncRunner:
    return SyncRunner.instances[-1]


def test_the_controller_module_imports_no_qt():
    code = ("import sys, app.controller; bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken'))]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_a_bad_model_folder_is_refused_and_the_old_one_stays(make_controller, model_dir, other_model_dir, tmp_path):
    c = make_controller(load=False)
    assert not c.load_model(tmp_path / "does-not-exist")
    assert c.model is None and c.pipeline is None
    assert c.seen["model_changed"][-1][0] is None and c.seen["model_changed"][-1][1].startswith("Refused")
    assert c.load_model(model_dir)
    old = c.model
    assert c.pipeline.model is old and c.seen["model_changed"][-1] == (old, "")
    assert c.seen["message"][-1] == ("info", f"Model linear-0 loaded ({old.provider}).")
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    card = json.loads((broken / "model_card.json").read_text())
    card["input_size"] = 48  # the ONNX graph takes 64 px
    (broken / "model_card.json").write_text(json.dumps(card))
    assert not c.load_model(broken)
    level, text = c.seen["message"][-1]
    assert level == "error" and "input shape" in text and "linear-0) stays loaded" in text
    reordered = make_model_folder(tmp_path / "reordered", classes=["Happy", "Angry", "Disgust", "Fear", "Sad",
                                                                   "Surprise", "Neutral"])
    assert not c.load_model(reordered) and "FER7" in c.seen["message"][-1][1]
    assert c.model is old and c.pipeline.model is old
    assert c.load_model(other_model_dir) and c.pipeline.model.model_id == "linear-1" and c.model.model_id == "linear-1"


def test_a_missing_default_model_is_reported(make_controller, monkeypatch, tmp_path):
    import resources

    monkeypatch.setattr(resources, "default_model_dir", lambda: tmp_path / "no-default")
    c = make_controller(load=False)
    assert not c.open_initial_model(None, last_used=str(tmp_path / "gone"))
    assert c.seen["model_changed"] == [(None, "The bundled default model is missing.")]
    assert c.seen["message"][-1][0] == "warning" and "Open a model folder" in c.seen["message"][-1][1]
    assert not c.start_camera(0) and c.runner is None  # no model: nothing starts
    assert c.seen["message"][-1] == ("error", "Load a model folder first.")


def test_settings_changes_are_clamped_in_one_place(make_controller, plain_video):
    c = make_controller()
    assert c.apply_settings({"window": 5})
    assert (c.settings.window, c.settings.min_count) == (5, 5)  # the default min count 8 follows the window
    assert c.pipeline.settings == c.settings
    assert not c.tune("min_count", +1)  # already at the window: no change
    assert c.apply_settings({"min_count": 40}) and c.settings.min_count == 5
    assert c.apply_settings({"window_ms": 600.0, "min_count": 20})  # a window in ms does not bound it
    assert c.settings.min_count == 20
    assert c.apply_settings({"window_ms": None}) and (c.settings.window, c.settings.min_count) == (5, 5)
    assert c.tune("window", -2) and (c.settings.window, c.settings.min_count) == (3, 3)
    before, changed = c.settings, c.seen["changed"]
    assert not c.apply_settings({"alpha": 1.5})
    assert c.settings is before and c.pipeline.settings == before
    assert c.seen["message"][-1][0] == "warning" and "Setting refused" in c.seen["message"][-1][1]
    assert c.seen["changed"] == changed + 1  # a view is told to show the values still in force
    # in a session every accepted change is logged
    c.start_video(plain_video)
    folder = c.session.folder
    _runner().pump(2)
    c.tune("window", -2)  # the min count follows the window down: both are logged
    c.tune("window", +2)  # and stays where it was on the way up
    c.stop()
    sets = [(k, v) for _, k, v in read_actions(folder / "actions.csv") if k.startswith("set_")]
    assert sets == [("set_window", "1"), ("set_min_count", "1"), ("set_window", "3")]


def test_labels_reach_per_frame_and_events(make_controller, plain_video):
    c = make_controller()
    c.set_video_label_mode(False)  # the file labelled like a live camera: held labels
    c.set_label("Fear")  # held before the session: it applies from the first frame
    assert c.start_video(plain_video)
    r, rec = _runner(), c.session.recorder
    assert c.session.label_mode == "live" and rec.manual_label == "Fear"
    r.pump(3)
    c.set_label("Happy")
    r.pump(5)
    c.set_label("Sad", source="click")
    assert c.shown_label == "Sad"
    r.pump(5)
    c.set_label("")
    r.pump(3)
    assert rec.n_frames == 16 and c.seen["frames"] == 16
    folder = c.session.folder
    final = c.stop()
    assert c.session is None and c.runner is None and c.last_session.folder == folder
    assert c.seen["session_ended"] == [final]
    manual = read_per_frame(folder / "per_frame.csv")["manual_label"]
    assert manual == ["Fear"] * 3 + ["Happy"] * 5 + ["Sad"] * 5 + [""] * 3
    events = read_events(folder / "events.csv")
    assert [(e.label, e.source, e.start_frame, e.end_frame) for e in events] == [
        ("Fear", "hotkey", 0, 2), ("Happy", "hotkey", 3, 7), ("Sad", "click", 8, 12)]
    labels = [v for _, k, v in read_actions(folder / "actions.csv") if k == "manual_label"]
    assert labels == ["Fear", "Happy", "Sad", "(none)"]


def test_a_labelled_video_session_from_start_to_stop_and_score(make_controller, slideshow):
    c = make_controller()
    started = []
    c.session_started.connect(started.append)
    assert c.start_video(slideshow["video"], labels=slideshow["labels"])
    assert started == [c.session] and c.session.label_mode == "video" and c.running
    n = _runner().play_to_end()
    assert n == slideshow["frames"] and not c.playing
    assert c.seen["message"][-1][1].startswith("End of the video")
    live = c.session.recorder.score_live()
    folder = c.session.folder
    final = c.stop()
    assert not c.running and c.seen["session_ended"] == [final]
    per_frame = folder / "per_frame.csv"
    rows = read_per_frame(per_frame)
    times = [float(t) for t in rows["time_sec"]]
    assert len(times) == slideshow["frames"]  # no thread, no dropped frame
    assert rows["manual_label"] == [label_at(slideshow["intervals"], t * 1000.0) for t in times]
    assert final == live == score_file(per_frame)
    assert final["n_segments"] == 3 and final["n_scored_frames"] > 0
    assert json.loads((folder / "score.json").read_text()) == final
    assert [e.label for e in read_events(folder / "events.csv")] == ["Happy", "Sad", "Surprise"]
    summary = read_csv_table(folder.parent / "demo_results_summary.csv", ["session", "min_hold_ms", "exclusion_ms",
                                                                          "lock_ms"])
    assert summary["session"] == [folder.name]
    assert [float(summary[k][0]) for k in ("min_hold_ms", "exclusion_ms", "lock_ms")] == [
        DEFAULT_SCORING.min_hold_ms, DEFAULT_SCORING.exclusion_ms, DEFAULT_SCORING.lock_ms]
    kinds = [k for _, k, _ in read_actions(folder / "actions.csv")]
    assert kinds[:4] == ["session_start", "source", "model", "provider"]
    assert "labels_loaded" in kinds and kinds[-1] == "session_end"
    assert (folder / "video_labels.csv").is_file()
    assert "Accuracy" in c.seen["message"][-1][1] and c.seen["message"][-1][0] == "info"


def test_playback_seek_and_step_in_video_label_mode(make_controller, plain_video, tmp_path):
    c = make_controller()
    assert c.start_video(plain_video, play=False)
    r = _runner()
    assert c.video_frame == 0 and c.session.recorder.n_frames == 1 and not c.playing
    ms = lambda f: f * 100.0  # noqa: E731 - 10 fps
    c.set_label("Happy")  # paints frame 0 and every frame stepped to after it
    for _ in range(4):
        c.step(1)
    assert c.video_frame == 4 and c.label_under_playhead == "Happy" and c.track.held == "Happy"
    c.step(1)
    c.set_label("")  # frame 5 gets no label
    c.seek(20)
    assert c.video_frame == 20 and c.video_ms == ms(20)
    c.step(3)  # a forward step of 3 skips 2 frames
    assert c.video_frame == 23
    c.step(-2)
    assert c.video_frame == 21
    c.set_label("Sad")
    c.seek(10)  # a seek ends the painting
    assert c.track.held == "" and c.shown_label == ""
    c.toggle_play()
    assert c.playing
    r.pump(3)
    assert c.video_frame == 13
    c.toggle_play()
    assert not c.playing and r.pump(3) == 0  # paused: nothing plays
    c.set_speed(2.0)
    assert r.speed == 2.0 and c.speed == 2.0
    expected = ["Happy"] * 5 + [""] * 16 + ["Sad"] + [""] * 18
    assert [c.track.label_at(ms(f)) for f in range(40)] == expected
    out = tmp_path / "labels.csv"
    assert c.save_labels(out)
    folder = c.session.folder
    c.stop()
    rows = read_per_frame(folder / "per_frame.csv")
    times = [float(t) for t in rows["time_sec"]]
    assert times == sorted(times) and len(times) == 13  # backward jumps keep the session clock monotonic
    # each row carries the label its video time had when it was logged (frame 0 came before the key)
    assert rows["manual_label"][:6] == [""] + ["Happy"] * 5
    assert (folder / "video_labels.csv").read_text() == out.read_text()
    kinds = [k for _, k, _ in read_actions(folder / "actions.csv")]
    assert kinds.count("video_label") == 3 and kinds.count("step") == 7 and kinds.count("seek") == 2
    assert "play" in kinds and "pause" in kinds and "speed" in kinds


def test_clip_saving_needs_consent_every_session(make_controller, plain_video):
    answers = []

    def consent(folder: Path) -> bool:
        answers.append(folder)
        return len(answers) >= 2  # decline the first time, accept the second

    c = make_controller(ask_consent=consent)
    assert not c.set_clips(True)  # no session yet: nothing to ask about
    c.start_video(plain_video)
    first = c.session.folder
    assert not c.set_clips(True) and c.session.clips is None
    assert c.set_clips(True) and c.session.clips is not None
    _runner().pump(5)
    assert not c.set_clips(False) and c.session.clips is None
    c.stop()
    consent_rows = [v for _, k, v in read_actions(first / "actions.csv") if k == "clip_consent"]
    assert consent_rows == ["declined", "granted"] and answers == [first, first]
    assert len(list((first / "clips").glob("clip_*.avi"))) == 1
    c.start_video(plain_video)
    assert c.set_clips(True) and len(answers) == 3 and answers[-1] == c.session.folder  # asked again


def test_sources_that_fail_leave_no_session_or_keep_its_logs(make_controller, tmp_path):
    bad = tmp_path / "not_a_video.avi"
    bad.write_bytes(b"this is not a video")
    c = make_controller(source_opener=lambda spec: FakeCamera(frames=4) if spec.kind == "camera"
                        else open_source(spec))
    failed = []
    c.source_failed.connect(failed.append)
    assert c.start_video(bad)
    assert c.runner is None and c.session is None and failed and "cannot open this video" in failed[0]
    assert not (tmp_path / "sessions").exists()  # no empty session folder
    assert c.start_camera(0)
    folder = c.session.folder
    c.set_label("Fear")
    assert _runner().pump(10) == 4  # the camera stops after 4 frames
    assert c.session is None and c.runner is None
    level, text = c.seen["message"][-1]
    assert level == "error" and "stopped delivering frames" in text and str(folder) in text
    kinds = [k for _, k, _ in read_actions(folder / "actions.csv")]
    assert "source_lost" in kinds and kinds[-1] == "session_end" and (folder / "score.json").is_file()


def test_events_of_a_stopped_runner_are_ignored(make_controller, plain_video):
    c = make_controller()
    c.start_video(plain_video)
    old = _runner()
    old.pump(2)
    c.stop()
    c.start_video(plain_video, play=False)
    session = c.session
    old.events.opened({"kind": "video", "fps": 10.0, "width": 1, "height": 1, "frame_count": 0, "t0": 0.0})
    old.events.failed("late failure")
    old.events.position(30, 3000.0, 3.0)
    assert c.session is session and c.running and c.video_frame == 0
    c.stop()
    old.events.results_ready()
    assert c.session is None and c.last_session is session
