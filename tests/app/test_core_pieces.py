"""The Qt-free parts of the app: key map, tuning clamps, frame hand-over, video label track, config."""

from __future__ import annotations

import numpy as np
import pytest

from app.app_config import AppConfig
from app.frame_exchange import CapturedFrame, LatestFrameSlot, ProcessedFrame, ResultMailbox
from app.hotkeys import KeyAction, action_for_text, tuning_change
from app.live_stats import EmotionShare
from app.sources import MonotonicVideoClock
from app.video_labels import VideoLabelTrack
from fer_models.classes import FER7
from fer_models.pipeline import FrameResult, PipelineSettings
from fer_models.session_log import label_at, read_label_intervals


def test_key_map_keeps_the_earlier_demo_keys():
    assert [action_for_text(str(i + 1)) for i in range(7)] == [KeyAction("label", c) for c in FER7]
    assert action_for_text("0") == action_for_text("c") == KeyAction("label", "")
    assert action_for_text("[") == KeyAction("tune", ("alpha", -0.05))
    assert action_for_text("]") == KeyAction("tune", ("alpha", 0.05))
    assert action_for_text("-") == KeyAction("tune", ("delta", -0.02))
    assert action_for_text("=") == KeyAction("tune", ("delta", 0.02))
    assert action_for_text("v") == KeyAction("tune", ("window", -2))
    assert action_for_text("b") == KeyAction("tune", ("window", 2))
    assert action_for_text("n") == KeyAction("tune", ("min_count", -1))
    assert action_for_text("m") == KeyAction("tune", ("min_count", 1))
    assert action_for_text("o") == KeyAction("toggle_overlay")
    assert action_for_text("Q") == KeyAction("quit")
    assert action_for_text("x") is None and action_for_text("") is None


def test_tuning_steps_clamp_and_min_count_never_exceeds_window():
    s = PipelineSettings()
    assert tuning_change(s, "alpha", 0.05) == {"alpha": 0.75}
    assert tuning_change(PipelineSettings(alpha=0.0), "alpha", -0.05) == {}
    assert tuning_change(s, "delta", -0.02) == {"delta": 0.06}
    assert tuning_change(PipelineSettings(window=9, min_count=9), "min_count", 1) == {}
    assert tuning_change(PipelineSettings(window=9, min_count=9), "window", -2) == {"window": 7, "min_count": 7}
    assert tuning_change(PipelineSettings(window=1, min_count=1), "window", -2) == {}


def test_slot_keeps_only_the_newest_frame_and_counts_drops():
    slot = LatestFrameSlot()
    img = np.zeros((4, 4, 3), np.uint8)
    for i in range(5):
        slot.put(CapturedFrame(img, i, i / 30))
    got = slot.take(timeout=0)
    assert got is not None and got.seq == 4
    assert slot.dropped == 4 and slot.captured == 5
    assert slot.take(timeout=0.01) is None
    slot.close()
    assert slot.take(timeout=5) is None  # a closed slot never blocks


def test_mailbox_wakes_once_per_batch_and_keeps_every_result():
    box = ResultMailbox()
    res = FrameResult(None, None, None, None, None, {})
    img = np.ones((4, 4, 3), np.uint8)
    wakes = [box.push(ProcessedFrame(CapturedFrame(img, i, i / 30.0), res)) for i in range(3)]
    assert wakes == [True, False, False]
    items = box.drain()
    assert [it.captured.seq for it in items] == [0, 1, 2]
    assert items[-1].captured.image.size and not items[0].captured.image.size  # only the newest keeps pixels
    assert box.push(ProcessedFrame(CapturedFrame(img, 3, 0.1), res)) is True


def test_video_clock_is_video_time_and_never_goes_back():
    clock = MonotonicVideoClock(0.1)
    assert [clock.time_for(t) for t in (0.0, 0.1, 0.2)] == [0.0, 0.1, 0.2]
    assert clock.time_for(0.0) == pytest.approx(0.3)  # seek back: continue one frame later
    assert clock.time_for(0.1) == pytest.approx(0.4)


def test_emotion_share_splits_session_time_by_predicted_class():
    share = EmotionShare(FER7)
    for i, lab in enumerate(["Happy"] * 10 + ["Sad"] * 10 + [None] * 5):
        share.add(i * 0.1, lab)
    s = share.shares(include_unstable=False)
    assert s["Happy"] == pytest.approx(0.5) and s["Sad"] == pytest.approx(0.5)
    assert share.shares()[""] == pytest.approx(0.4 / 2.4)


def test_track_labels_are_frame_accurate_and_survive_a_save(tmp_path):
    fps = 30.0
    t = lambda f: f * 1000.0 / fps  # noqa: E731
    track = VideoLabelTrack(1000.0 / fps)
    track.moved_to(t(5))
    track.press("Happy", t(5))
    for f in range(6, 11):
        track.moved_to(t(f))
    track.press("Sad", t(10))  # Happy covers frames 5-9, Sad starts at the frame on screen
    track.moved_to(t(11))
    track.press("", t(12))  # ends Sad after frame 11
    track.moved_to(t(13))
    expected = {f: "" for f in range(20)}
    expected.update({f: "Happy" for f in range(5, 10)})
    expected.update({10: "Sad", 11: "Sad"})
    assert {f: track.label_at(t(f)) for f in range(20)} == expected
    path = track.save(tmp_path / "labels.csv")
    loaded = read_label_intervals(path)
    assert {f: label_at(loaded, t(f)) for f in range(20)} == expected  # 3-decimal file, same frames
    again = VideoLabelTrack(1000.0 / fps)
    again.load(path)
    assert {f: again.label_at(t(f)) for f in range(20)} == expected


def test_track_relabel_overwrites_and_a_seek_ends_the_painting():
    t = lambda f: f * 100.0  # noqa: E731
    track = VideoLabelTrack(100.0)
    track.set_range(t(0), t(10), "Happy")
    track.moved_to(t(3))
    track.press("Fear", t(3))
    track.moved_to(t(4))
    track.moved_to(t(8))  # a jump: painting stops at frame 4
    assert track.held == ""
    assert [track.label_at(t(f)) for f in range(10)] == ["Happy"] * 3 + ["Fear"] * 2 + ["Happy"] * 5
    assert track.delete_at(t(3)).label == "Fear"
    assert [track.label_at(t(f)) for f in range(10)] == ["Happy"] * 3 + [""] * 2 + ["Happy"] * 5
    track.reach(t(7))  # logging an older frame never moves the cursor back
    track.press("Sad", t(8))
    track.reach(t(9))
    assert track.label_at(t(9)) == "Sad"


def test_config_round_trip_and_broken_files_fall_back(tmp_path):
    path = tmp_path / "cfg.json"
    cfg = AppConfig(model_dir="/x", pipeline=PipelineSettings(alpha=0.5).to_dict(), speed=2.0)
    cfg.save(path)
    back = AppConfig.load(path)
    assert back.model_dir == "/x" and back.speed == 2.0 and back.pipeline_settings().alpha == 0.5
    path.write_text("{not json")
    assert AppConfig.load(path) == AppConfig()
    path.write_text('{"pipeline": {"window": 3, "min_count": 9}, "speed": "fast"}')
    broken = AppConfig.load(path)
    assert broken.pipeline_settings() == PipelineSettings() and broken.speed == 1.0


def test_live_score_equals_the_file_score_even_where_the_log_rounds_time(tmp_path, model_dir):
    """per_frame.csv keeps time_sec to the microsecond even past 1000 s; the live score equals the file's."""
    from app.session import SessionRecorder
    from fer_models.model_folder import load_model_folder
    from fer_models.scoring_cli import score_file

    model = load_model_folder(model_dir)
    rec = SessionRecorder(tmp_path / "s", model, PipelineSettings(), "test")
    probs = np.full(7, 1 / 7, np.float32)
    for i in range(400):
        t = 1234.5 + i / 29.97  # past 1000 s: six significant digits would keep only 10 ms
        manual = ("Happy", "Sad", "")[(i // 60) % 3]
        rec.set_manual_label(manual, t)
        pred = (manual or "Fear") if i % 60 >= 10 else "Fear"  # locks 10 frames into each segment
        rec.log_frame(i, t, FrameResult(None, probs, probs, None, pred, {}))
    live = rec.score_live()
    assert live == rec.score() == score_file(tmp_path / "s" / "per_frame.csv")
    assert live["n_segments"] >= 4 and live["lock_rate"] == 1.0
    assert live["time_to_lock_ms_median"] == pytest.approx(10 / 29.97 * 1000, abs=0.01)  # 10 frames, exactly


def test_one_app_name_names_every_user_folder():
    import app.app_config as app_config
    import app.session as session
    import fer_models.detector as detector

    assert session.APP_NAME is app_config.APP_NAME  # imported, not defined again
    assert app_config.default_config_path().parent.name == app_config.APP_NAME
    assert session.user_data_dir().name == app_config.APP_NAME
    # fer_models cannot import app (it is the lower layer): its detector cache keeps the same name
    assert detector.APP_NAME == app_config.APP_NAME
