"""Train/serve parity of the face framing (DESIGN.md §6).

FER2013 images are already face crops. To frame a live face the same way, the
app must crop with the margin that reproduces FER2013's framing. We measure it:
upscale dataset images onto a plain canvas, run the live detector, and compare
its box with the pasted image. With side = box * (1 + 2 * margin), the margin
that reproduces an image of side S around a box of side B is (S / B - 1) / 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from fer_models.detector import FaceDetector


def place_on_canvas(face_gray: np.ndarray, canvas_wh: tuple[int, int] = (640, 480), face_px: int = 240,
                    center: tuple[int, int] | None = None, bg: int = 90) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Upscale a face crop onto a BGR canvas; returns the canvas and the pasted square (x, y, w, h)."""
    w, h = canvas_wh
    canvas = np.full((h, w, 3), bg, np.uint8)
    big = cv2.resize(face_gray, (face_px, face_px), interpolation=cv2.INTER_CUBIC)
    if big.ndim == 2:
        big = cv2.cvtColor(big, cv2.COLOR_GRAY2BGR)
    cx, cy = center or (w // 2, h // 2)
    x0, y0 = cx - face_px // 2, cy - face_px // 2
    canvas[y0:y0 + face_px, x0:x0 + face_px] = big
    return canvas, (x0, y0, face_px, face_px)


@dataclass
class FramingMeasurement:
    n_images: int
    n_detected: int
    margin_median: float
    margin_p10: float
    margin_p90: float
    center_dx_median: float  # box centre minus image centre, in image sides
    center_dy_median: float

    @property
    def detection_rate(self) -> float:
        return self.n_detected / self.n_images if self.n_images else 0.0

    def to_dict(self) -> dict:
        return {**self.__dict__, "detection_rate": self.detection_rate}


def measure_framing_margin(image_paths: Iterable[str | Path], detector: FaceDetector | None = None,
                           face_px: int = 240) -> FramingMeasurement:
    """The crop margin (this project's definition) that reproduces the images' own framing."""
    detector = detector or FaceDetector()
    margins, dxs, dys = [], [], []
    n = 0
    for path in image_paths:
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if img is None:
            continue
        n += 1
        canvas, (x0, y0, s, _) = place_on_canvas(img, face_px=face_px)
        face = detector.detect_largest(canvas)
        if face is None:
            continue
        x, y, w, h = face.box
        margins.append((s / max(w, h) - 1.0) / 2.0)
        dxs.append((x + w / 2 - (x0 + s / 2)) / s)
        dys.append((y + h / 2 - (y0 + s / 2)) / s)
    if not margins:
        raise ValueError("no face was detected in any image; cannot measure the framing")
    m = np.asarray(margins)
    return FramingMeasurement(n, len(m), float(np.median(m)), float(np.percentile(m, 10)),
                              float(np.percentile(m, 90)), float(np.median(dxs)), float(np.median(dys)))
