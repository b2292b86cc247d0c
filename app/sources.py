"""Frame sources without Qt: a webcam or a video file behind one small interface.

The capture worker drives these from its own thread. Cameras raise CameraError
when they cannot be opened; files raise ArtifactError, so the window can show
the reason instead of crashing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Protocol

import cv2
import numpy as np

from fer_models.errors import ArtifactError, CameraError

RESOLUTIONS: tuple[tuple[int, int], ...] = ((640, 480), (1280, 720), (1920, 1080), (320, 240))


@dataclass(frozen=True)
class SourceSpec:
    """What the user asked to open."""

    kind: Literal["camera", "video"]
    camera_index: int = 0
    width: int | None = 640
    height: int | None = 480
    path: Path | None = None

    def describe(self) -> str:
        if self.kind == "camera":
            size = f" {self.width}x{self.height}" if self.width and self.height else ""
            return f"camera:{self.camera_index}{size}"
        return f"video:{self.path}"


class FrameSource(Protocol):
    """What the capture worker needs from any source."""

    kind: str
    fps: float

    def read(self) -> np.ndarray | None: ...

    def release(self) -> None: ...


class CameraSource:
    """A webcam through OpenCV. ``read`` returns None when the camera delivers nothing."""

    kind = "camera"

    def __init__(self, index: int, width: int | None = None, height: int | None = None):
        self.index = int(index)
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"No camera at index {self.index}: it does not exist, is in use by another "
                              "program, or access was denied.")
        if width and height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # a deep driver queue would add latency
        self._cap = cap
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and 0 < fps < 1000 else 30.0
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))

    def read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        return frame if ok and frame is not None and frame.size else None

    def release(self) -> None:
        self._cap.release()


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, float]:
    """An opened video and its frame rate (30 when the container declares none or nonsense)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "video file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ArtifactError(path, "OpenCV cannot open this video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
    if not fps or fps != fps or fps > 1000:
        fps = 30.0
    return cap, float(fps)


class VideoFileSource:
    """A video file with frame-accurate positions: ``read`` returns the frame at ``position``."""

    kind = "video"

    def __init__(self, path: str | Path):

        self.path = Path(path)
        self._cap, self.fps = open_video(self.path)
        count = self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(count) if count and math.isfinite(count) and count > 0 else 0  # 0: unknown
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.position = 0  # index of the frame the next ``read`` returns
        # The first frame is read now, so a file OpenCV opens but that holds no frame (an empty or cut
        # container) is refused here, before a session exists; ``read`` hands it out first.
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            declared = f"{self.frame_count} frames" if self.frame_count else "none"
            raise ArtifactError(self.path, f"no frame could be read from this video (the container declares "
                                           f"{declared}); the file is empty, truncated or in a codec OpenCV "
                                           "cannot decode")
        self._first: np.ndarray | None = first

    @property
    def frame_ms(self) -> float:
        return 1000.0 / self.fps

    def frame_time_ms(self, index: int) -> float:
        """Video time of a frame: index / fps, the convention of the headless replay."""
        return index * 1000.0 / self.fps

    @property
    def duration_ms(self) -> float:
        return self.frame_count * self.frame_ms

    def read(self) -> np.ndarray | None:
        if self._first is not None:  # the frame read when the file was opened
            frame, self._first = self._first, None
            self.position = 1
            return frame
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        self.position += 1
        return frame

    def seek(self, index: int) -> None:
        index = max(0, int(index))
        if self.frame_count:
            index = min(index, self.frame_count - 1)
        if index != self.position:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, index)
            self.position = index
            self._first = None

    def release(self) -> None:
        self._cap.release()


SourceOpener = Callable[[SourceSpec], FrameSource]


def open_source(spec: SourceSpec) -> FrameSource:
    """Open a camera or a file; raises CameraError / ArtifactError with a message for the user."""
    if spec.kind == "camera":
        return CameraSource(spec.camera_index, spec.width, spec.height)
    if spec.path is None:
        raise ArtifactError(None, "no video file given")
    return VideoFileSource(spec.path)


class MonotonicVideoClock:
    """Session time for a file: the video's own clock, kept monotonic across backward seeks.

    Playing forward, session time equals video time (as in the headless replay),
    so label timing and the scoring thresholds mean video milliseconds. A jump
    backwards continues the session one frame after its last time instead of
    going back, because per_frame.csv times must never decrease.
    """

    def __init__(self, frame_sec: float):
        self.frame_sec = frame_sec
        self._offset = 0.0
        self._last: float | None = None

    def time_for(self, video_sec: float) -> float:
        t = video_sec + self._offset
        if self._last is not None and t <= self._last:
            self._offset = self._last + self.frame_sec - video_sec
            t = self._last + self.frame_sec
        self._last = t
        return t


class WallClock:
    """Session time for a camera: seconds since the session started."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def now(self) -> float:
        return time.perf_counter() - self.t0
