"""Video file sources of the window (app/sources.py): frames in order, and a file without frames refused."""

from __future__ import annotations

import pytest

from app.sources import SourceSpec, VideoFileSource, open_source
from fer_models.errors import ArtifactError
from tests.factories import write_frames_video


def test_a_video_file_gives_every_frame_in_order_and_seeks_back(tmp_path):
    src = VideoFileSource(write_frames_video(tmp_path / "v.avi", 6))
    assert src.frame_count == 6 and src.position == 0
    levels = []
    while (frame := src.read()) is not None:
        levels.append(int(frame.mean().round()))
    assert len(levels) == 6 and src.position == 6
    assert all(abs(got - 20 * i) <= 3 for i, got in enumerate(levels)), levels
    src.seek(0)
    assert abs(int(src.read().mean().round()) - 0) <= 3 and src.position == 1
    src.release()


def test_a_video_without_frames_is_refused_when_opened(tmp_path):
    empty = write_frames_video(tmp_path / "empty.avi", 0)
    with pytest.raises(ArtifactError, match="no frame") as info:
        open_source(SourceSpec("video", path=empty))
    assert str(info.value).startswith(str(empty))


def test_the_window_says_so_for_a_video_without_frames(qtbot, make_window, tmp_path):
    win = make_window()
    win.controller.start_video(write_frames_video(tmp_path / "empty.avi", 0))
    qtbot.waitUntil(lambda: win.banner.level == "error", timeout=10000)
    c = win.controller
    assert "no frame" in win.banner.text() and c.session is None and c.runner is None
    assert not (c.sessions_root.exists() and any(c.sessions_root.iterdir()))  # no empty session folder
