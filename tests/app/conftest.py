"""Fixtures for the window tests: small model folders, a slideshow video with known labels, and a
window factory that joins every worker thread at teardown."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.controller import SessionController
from fer_models.pipeline import PipelineSettings
from fer_models.session_log import LabelInterval, write_label_intervals
from tests.app.fakes import SyncRunner
from tests.factories import fer_images, make_model_folder, write_frames_video, write_slideshow

SLIDESHOW_FPS = 15.0
SLIDESHOW_SECONDS_EACH = 1.2
SLIDESHOW_CLASSES = ("Happy", "Sad", "Surprise")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("models") / "linear-a", seed=0)


@pytest.fixture(scope="session")
def other_model_dir(tmp_path_factory) -> Path:
    return make_model_folder(tmp_path_factory.mktemp("models") / "linear-b", seed=1, temperature=2.0)


@pytest.fixture(scope="session")
def slideshow(tmp_path_factory, fer2013_dir) -> dict:
    """An MJPG video of FER2013 faces, one class per segment, and its start_ms,end_ms,label file."""
    folder = tmp_path_factory.mktemp("video")
    by_class = {}
    for path, k in fer_images(fer2013_dir, per_class=1):
        by_class[k] = path
    from fer_models.classes import FER7

    faces = [cv2.imread(str(by_class[FER7.index(c)]), cv2.IMREAD_GRAYSCALE) for c in SLIDESHOW_CLASSES]
    video = folder / "slideshow.avi"
    n = write_slideshow(video, faces, SLIDESHOW_SECONDS_EACH, fps=SLIDESHOW_FPS)
    seg_ms = SLIDESHOW_SECONDS_EACH * 1000.0
    intervals = [LabelInterval(i * seg_ms, (i + 1) * seg_ms, c) for i, c in enumerate(SLIDESHOW_CLASSES)]
    labels = write_label_intervals(folder / "labels.csv", intervals)
    return {"video": video, "labels": labels, "frames": n, "fps": SLIDESHOW_FPS, "intervals": intervals}


class FakeCamera:
    """A camera that delivers ``frames`` synthetic frames at its frame rate, then nothing (unplugged)."""

    kind = "camera"
    fps = 30.0
    width, height = 640, 480

    def __init__(self, frames: int):
        self.left = frames
        self.released = False

    def read(self):
        time.sleep(1.0 / self.fps)  # a real camera blocks until its next frame
        if self.left <= 0:
            return None
        self.left -= 1
        frame = np.full((480, 640, 3), 90, np.uint8)
        cv2.circle(frame, (320, 240), 60 + self.left % 5, (200, 200, 200), -1)
        return frame

    def release(self) -> None:
        self.released = True


@pytest.fixture
def make_window(qtbot, tmp_path, model_dir, monkeypatch):
    """Build MainWindows with their own config and sessions folders; at teardown close them and check
    that every capture/processing thread they started has been joined."""
    import app.main_window as mw

    runners = []

    class RecordingRunner(mw.SourceRunner):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            runners.append(self)

    monkeypatch.setattr(mw, "SourceRunner", RecordingRunner)
    windows = []

    def factory(**kwargs):
        kwargs.setdefault("model_dir", model_dir)
        kwargs.setdefault("config_path", tmp_path / "config.json")
        kwargs.setdefault("sessions_root", tmp_path / "sessions")
        win = mw.MainWindow(**kwargs)
        qtbot.addWidget(win)
        win.show()
        windows.append(win)
        return win

    factory.runners = runners  # type: ignore[attr-defined]
    yield factory
    for win in windows:
        win.close()
    for r in runners:
        assert not r.is_alive(), "a worker thread outlived its window"


@pytest.fixture
def make_controller(tmp_path, model_dir):
    """Controllers with a synchronous runner; ``c.seen`` records what the hooks reported."""
    SyncRunner.instances.clear()

    def factory(load: bool = True, **kwargs) -> SessionController:
        kwargs.setdefault("sessions_root", tmp_path / "sessions")
        kwargs.setdefault("runner_factory", SyncRunner)
        c = SessionController(kwargs.pop("settings", PipelineSettings()), **kwargs)
        c.seen = {"message": [], "model_changed": [], "session_ended": [], "frames": 0, "changed": 0}
        c.message.connect(lambda text, level: c.seen["message"].append((level, text)))
        c.model_changed.connect(lambda model, problem: c.seen["model_changed"].append((model, problem)))
        c.session_ended.connect(lambda session, final: c.seen["session_ended"].append(final))
        c.frame.connect(lambda item: c.seen.__setitem__("frames", c.seen["frames"] + 1))
        c.changed.connect(lambda: c.seen.__setitem__("changed", c.seen["changed"] + 1))
        if load:
            assert c.load_model(model_dir, quiet=True)
        return c

    yield factory
    for r in SyncRunner.instances:
        r.stop()


@pytest.fixture(scope="session")
def plain_video(tmp_path_factory) -> Path:
    """40 faceless frames at 10 fps: fast to process, enough rows for label runs."""
    return write_frames_video(tmp_path_factory.mktemp("plain") / "plain.avi", 40, fps=10.0)
