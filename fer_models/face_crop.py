"""The one face-crop function shared by training and the live app.

Live frames go through ``crop_face`` (eye alignment, square crop with margin,
then ``prepare_face``); dataset images that are already face crops (FER2013) go
through ``prepare_face`` alone. Both end in the same CLAHE, resize, colour and
normalisation steps, so what the network sees live matches what it saw in
training, as the model card describes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

CLAHE_CLIP = 2.0
CLAHE_TILES = (8, 8)
DEFAULT_MARGIN = 0.30
# Faces are cropped at native resolution up to this multiple of the model input, then
# resized with area interpolation: cheaper than a full-frame warp and free of aliasing.
WORK_SCALE = 2


@dataclass(frozen=True)
class CropSpec:
    """How a model wants its faces: taken from model_card.json."""

    input_size: int = 64
    channels: int = 1
    color: str = "gray"
    mean: tuple[float, ...] = (0.5,)
    std: tuple[float, ...] = (0.5,)
    clahe: bool = True
    align_eyes: bool = True
    crop_margin: float = DEFAULT_MARGIN

    @classmethod
    def from_card(cls, card, **overrides) -> "CropSpec":
        """Build from a ModelCard; ``overrides`` (app hygiene settings) win over the card."""
        values = dict(input_size=card.input_size, channels=card.channels, color=card.color,
                      mean=tuple(card.mean), std=tuple(card.std), clahe=card.clahe,
                      align_eyes=card.align_eyes, crop_margin=card.crop_margin)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


_clahe_cache: dict[tuple[float, tuple[int, int]], cv2.CLAHE] = {}


def _clahe() -> "cv2.CLAHE":
    key = (CLAHE_CLIP, CLAHE_TILES)
    if key not in _clahe_cache:
        _clahe_cache[key] = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=CLAHE_TILES)
    return _clahe_cache[key]


def eye_angle_deg(landmarks: np.ndarray) -> float:
    """Angle of the line from the image-left eye to the image-right eye (YuNet points 0 and 1)."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    (x0, y0), (x1, y1) = lm[0], lm[1]
    return math.degrees(math.atan2(y1 - y0, x1 - x0))


def crop_transform(box: Sequence[float], landmarks: np.ndarray | None, margin: float, align_eyes: bool,
                   out_side: int) -> tuple[np.ndarray, float]:
    """2x3 affine matrix taking frame pixels to an ``out_side`` square crop, and the crop side in frame px.

    The square is centred on the box centre with side max(w, h) * (1 + 2 * margin),
    rotated by the eye angle when ``align_eyes`` so the eyes come out level.
    """
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2.0, y + h / 2.0
    side = max(w, h) * (1.0 + 2.0 * margin)
    angle = eye_angle_deg(landmarks) if (align_eyes and landmarks is not None) else 0.0
    scale = out_side / side
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += out_side / 2.0 - cx
    m[1, 2] += out_side / 2.0 - cy
    return m, side


def align_and_crop(frame: np.ndarray, box: Sequence[float], landmarks: np.ndarray | None = None,
                   margin: float = DEFAULT_MARGIN, align_eyes: bool = True, max_side: int | None = None) -> np.ndarray:
    """Eye-aligned square crop of a face at (up to ``max_side``) native resolution; edges replicate."""
    _, side = crop_transform(box, landmarks, margin, False, 1)
    out_side = max(8, int(round(side)))
    if max_side is not None:
        out_side = min(out_side, int(max_side))
    m, _ = crop_transform(box, landmarks, margin, align_eyes, out_side)
    return cv2.warpAffine(frame, m, (out_side, out_side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _resize(img: np.ndarray, s: int) -> np.ndarray:
    if img.shape[0] == s and img.shape[1] == s:
        return img
    interp = cv2.INTER_AREA if img.shape[0] > s else cv2.INTER_LINEAR
    return cv2.resize(img, (s, s), interpolation=interp)


def prepare_face(face_img: np.ndarray, spec: CropSpec) -> np.ndarray:
    """CLAHE, resize, colour mode and normalisation of a face crop -> float32 (C, S, S).

    ``face_img`` is grayscale (H, W) or BGR (H, W, 3) uint8; the tensor is
    (pixel / 255 - mean) / std, as model_card.json defines it.
    """
    img = np.asarray(face_img)
    if img.dtype != np.uint8:
        raise ValueError(f"face image must be uint8, got {img.dtype}")
    s = spec.input_size
    if spec.color == "gray" and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    elif spec.color == "rgb" and img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if spec.clahe:
        if img.ndim == 2:
            img = _clahe().apply(img)
        else:
            lab = cv2.cvtColor(img, cv2.COLOR_BGR2LAB)
            lab[..., 0] = _clahe().apply(np.ascontiguousarray(lab[..., 0]))
            img = cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)
    if spec.color == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    img = _resize(img, s)
    x = img.astype(np.float32) * (1.0 / 255.0)
    x = x[None] if x.ndim == 2 else np.transpose(x, (2, 0, 1))
    if spec.color == "gray" and spec.channels == 3:
        x = np.repeat(x, 3, axis=0)
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(-1, 1, 1)
    return np.ascontiguousarray((x - mean) / std, dtype=np.float32)


def crop_face(frame: np.ndarray, box: Sequence[float], landmarks: np.ndarray | None, spec: CropSpec) -> np.ndarray:
    """Live path: align, square-crop with margin, then ``prepare_face``. Deterministic."""
    return crop_face_and_image(frame, box, landmarks, spec, keep_image=False)[0]


def face_image(face_img: np.ndarray, spec: CropSpec) -> np.ndarray:
    """The face as a data-set image: the card's colour mode at its input size, uint8, *without* CLAHE.

    Saved session crops become training data (``fer-train mine``), and the training pipeline
    applies the card's CLAHE itself, as it does to FER2013's raw faces; a crop saved after CLAHE
    would get it twice. Grey (S, S) for a ``gray`` card, RGB (S, S, 3) for an ``rgb`` one.
    """
    img = np.asarray(face_img)
    if img.dtype != np.uint8:
        raise ValueError(f"face image must be uint8, got {img.dtype}")
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY if spec.color == "gray" else cv2.COLOR_BGR2RGB)
    elif spec.color == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return np.ascontiguousarray(_resize(img, spec.input_size))


def crop_face_and_image(frame: np.ndarray, box: Sequence[float], landmarks: np.ndarray | None, spec: CropSpec,
                        keep_image: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``crop_face``'s tensor and, with ``keep_image``, the same aligned crop as ``face_image`` (what the app
    saves with consent), from one alignment so that both show exactly the same face."""
    crop = align_and_crop(frame, box, landmarks, spec.crop_margin, spec.align_eyes,
                          max_side=WORK_SCALE * spec.input_size)
    return prepare_face(crop, spec), (face_image(crop, spec) if keep_image else None)
