"""Opt-in clip saving: the only code in the app that writes pixels to disk.

It exists only after the user agreed in the consent dialog of the current
session (the window asks every session and logs the answer in actions.csv). It
writes the frames the model saw, without overlays, as MJPG AVI files in the
session's clips/ folder.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


class ClipWriter:
    def __init__(self, folder: Path, fps: float):
        self.folder = Path(folder) / "clips"
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self.path: Path | None = None
        self.frames = 0

    def _open(self, size: tuple[int, int]) -> None:
        self.close()
        self.folder.mkdir(parents=True, exist_ok=True)
        n = len(list(self.folder.glob("clip_*.avi"))) + 1
        self.path = self.folder / f"clip_{n:03d}.avi"
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"MJPG"), self.fps, size)
        if not self._writer.isOpened():
            self._writer = None
            raise OSError(f"cannot write a video clip at {self.path}")
        self._size = size

    def write(self, frame_bgr: np.ndarray) -> None:
        if frame_bgr is None or frame_bgr.size == 0:
            return
        size = (frame_bgr.shape[1], frame_bgr.shape[0])
        if self._writer is None or size != self._size:
            self._open(size)
        assert self._writer is not None
        self._writer.write(frame_bgr if frame_bgr.ndim == 3 else cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
