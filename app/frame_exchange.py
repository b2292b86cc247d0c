"""Hand-over points between the capture thread, the processing thread and the GUI.

Latency must never build up: the capture side overwrites the one-frame slot, so
the processor always takes the newest frame and every frame it never saw is
counted as dropped. Results go the other way through a mailbox that the GUI
drains in one go (every result is logged, only the newest is painted), and the
GUI is woken once per batch rather than once per frame.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from fer_models.pipeline import FrameResult


@dataclass
class CapturedFrame:
    """One frame as the capture thread delivered it. ``image`` is never drawn on."""

    image: np.ndarray  # BGR, what the model sees
    seq: int  # capture sequence number within the run; per_frame.csv's frame_index
    t_sec: float  # session time, monotonic (video clock for files, wall clock for cameras)
    video_frame: int | None = None  # position in the file (None for cameras)
    video_ms: float | None = None  # video time of that position
    captured_at: float = field(default_factory=time.perf_counter)


@dataclass
class ProcessedFrame:
    captured: CapturedFrame
    result: FrameResult  # the session model's
    processed_at: float = field(default_factory=time.perf_counter)
    extra: list[FrameResult] = field(default_factory=list)  # further models on the same frame and face

    @property
    def latency_ms(self) -> float:
        """Capture to end of processing."""
        return (self.processed_at - self.captured.captured_at) * 1e3


class LatestFrameSlot:
    """A one-frame mailbox: ``put`` replaces a frame nobody took yet (counted in ``dropped``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: CapturedFrame | None = None
        self._closed = False
        self.captured = 0
        self.dropped = 0

    def put(self, frame: CapturedFrame) -> None:
        with self._cond:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.captured += 1
            self._cond.notify_all()

    def take(self, timeout: float | None = None) -> CapturedFrame | None:
        """The newest frame, waiting up to ``timeout`` seconds; None on timeout or after ``close``."""
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            return frame

    def close(self) -> None:
        """Wake a waiting ``take``; later takes return at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class ResultMailbox:
    """Processed frames waiting for the GUI thread.

    ``push`` returns True only when the consumer has to be woken (the box was
    empty), so a slow GUI receives one notification per batch. Images of all but
    the newest waiting result are released unless ``keep_images`` (clip saving)
    asks for every frame, which bounds memory when the GUI stalls.
    """

    def __init__(self, keep_images: bool = False, max_items: int = 2000) -> None:
        self._lock = threading.Lock()
        self._items: deque[ProcessedFrame] = deque()
        self.keep_images = keep_images
        self.max_items = max_items
        self.overflow = 0

    def push(self, item: ProcessedFrame) -> bool:
        with self._lock:
            wake = not self._items
            if self._items and not self.keep_images:
                prev = self._items[-1]
                prev.captured = CapturedFrame(np.empty((0, 0, 3), np.uint8), prev.captured.seq, prev.captured.t_sec,
                                              prev.captured.video_frame, prev.captured.video_ms,
                                              prev.captured.captured_at)
            self._items.append(item)
            while len(self._items) > self.max_items:
                self._items.popleft()
                self.overflow += 1
            return wake

    def drain(self) -> list[ProcessedFrame]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            return items
