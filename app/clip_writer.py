"""Opt-in clip saving: the only code in the app that writes pixels to disk.

It exists only after the user agreed in the consent dialog of the current
session (the window asks every session and logs the answer in actions.csv). It
writes the frames the model saw, without overlays, as MJPG AVI files in the
session's clips/ folder, and (``CropWriter``) the face crops the model saw, as
the model card prepared them, in the session's crops/ folder.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_models.errors import ArtifactWriteError
from fer_models.files import atomic_write_bytes
from fer_models.session_log import CsvLogWriter

CROPS_DIR = "crops"
CROPS_INDEX = "crops.csv"
CROPS_COLUMNS = ("frame_index", "time_sec", "file")


def crop_file_name(frame_index: int) -> str:
    """``{frame_index:07d}.png``: the frame_index of the per_frame.csv row the crop belongs to."""
    return f"{int(frame_index):07d}.png"


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


class CropWriter:
    """The face crop the session's model saw, one PNG per processed frame with a face, plus an index.

    Contract (``fer-train mine`` reads it): ``<session>/crops/{frame_index:07d}.png`` is the uint8 image
    at the model's input size after eye alignment and square crop, before CLAHE and the mean/std
    normalisation (``fer_models.face_crop.face_image``: training applies the card's CLAHE itself): grey
    (one channel) for a ``gray`` card, RGB for an ``rgb`` one. ``crops/crops.csv`` has the header ``frame_index,time_sec,file``,
    ``frame_index`` and ``time_sec`` as in per_frame.csv and ``file`` the PNG's name relative to the
    crops folder. Each PNG is written atomically before its row, and each row is flushed as it is
    written, so every row names a complete file; saving again later in the same session appends.
    """

    def __init__(self, session_folder: Path):
        self.folder = Path(session_folder) / CROPS_DIR
        self.index: CsvLogWriter | None = None  # opened with the first crop, as clips are
        self.frames = 0

    def write(self, frame_index: int, time_sec: float, crop: np.ndarray) -> Path:
        img = np.asarray(crop)
        if img.dtype != np.uint8 or img.ndim not in (2, 3):
            raise ValueError(f"a crop must be a uint8 grey or RGB image, got {img.dtype} {img.shape}")
        name = crop_file_name(frame_index)
        path = self.folder / name
        ok, data = cv2.imencode(".png", img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ArtifactWriteError(path, "OpenCV cannot encode the crop as PNG")
        if self.index is None:
            self.index = CsvLogWriter(self.folder / CROPS_INDEX, CROPS_COLUMNS)  # appends to an earlier run
        atomic_write_bytes(path, data.tobytes())
        self.index.write([int(frame_index), float(time_sec), name])
        self.frames += 1
        return path

    def close(self) -> None:
        if self.index is not None:
            self.index.close()
