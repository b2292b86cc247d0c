"""Webcam-style degradations of a uint8 face, each with a probability and a range (all off by default).

Why: FER2013 faces are clean, centred web images; the app's faces come from a laptop
camera: under- or over-exposed, through the camera's tone curve, smeared when the head
moves, noisy in low light, small in the frame (so up-scaled from few pixels) and
JPEG/MJPEG-compressed on the way. Each of these is one operation here:

==============  ===================================================  ======================
op              what it does                                         ``range`` is
==============  ===================================================  ======================
``exposure``    multiply the grey levels by a gain                   the gain
``motion_blur`` a straight line kernel at a random angle             its length, fraction of the side
``noise``       additive Gaussian sensor noise                       its sigma, grey levels
``gamma``       tone curve 255 (x / 255) ** g                        g
``downscale``   shrink (area) and enlarge back (bilinear)            the size factor
``jpeg``        re-encode as JPEG                                    the quality (1-100)
==============  ===================================================  ======================

They run in that order, the order of a camera: light on the sensor, motion during the
exposure, sensor noise, the ISP's tone curve, a small face in a big frame, the encoder.

Every op's randomness comes from its own generator seeded by ``(seed, epoch, row, STREAM,
op number)``: the existing augmentation's stream (``training.data.augment_image``) is never
touched, so turning these on leaves the geometric and photometric view of a row as it was,
and changing one op's settings does not change what the others draw. With every
probability 0 (the default) nothing is drawn and the image is returned unchanged.

The settings live in a JSON file (``training/configs/augment/webcam_aug.json``)::

    {"exposure": {"prob": 0.3, "range": [0.6, 1.5]}, "jpeg": {"prob": 0.3, "range": [15, 50]}, ...}

Ops left out of the file stay off; unknown keys are refused, naming the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from fer_models.errors import ArtifactError
from fer_models.files import read_json

OPS: tuple[str, ...] = ("exposure", "motion_blur", "noise", "gamma", "downscale", "jpeg")
STREAM = 0x57EBCA  # the fourth seed word of the webcam generators ("webcam"): apart from augment_image's stream
# (lowest, highest) value a range may take, per op
BOUNDS: dict[str, tuple[float, float]] = {
    "exposure": (0.05, 10.0), "motion_blur": (0.0, 1.0), "noise": (0.0, 128.0), "gamma": (0.1, 10.0),
    "downscale": (0.05, 1.0), "jpeg": (1.0, 100.0),
}


@dataclass(frozen=True)
class WebcamOp:
    """One degradation: applied with probability ``prob``, its parameter uniform in ``range``."""

    prob: float = 0.0
    range: tuple[float, float] = (1.0, 1.0)


def _default_ranges() -> dict[str, tuple[float, float]]:
    # the ranges that training/configs/augment/webcam_aug.json uses; with prob 0 they do nothing
    return {"exposure": (0.6, 1.5), "motion_blur": (0.03, 0.08), "noise": (2.0, 10.0), "gamma": (0.7, 1.5),
            "downscale": (0.35, 0.75), "jpeg": (15.0, 50.0)}


@dataclass(frozen=True)
class WebcamAugConfig:
    """Probabilities and ranges of the webcam-style ops; the default does nothing."""

    exposure: WebcamOp = field(default_factory=lambda: WebcamOp(0.0, _default_ranges()["exposure"]))
    motion_blur: WebcamOp = field(default_factory=lambda: WebcamOp(0.0, _default_ranges()["motion_blur"]))
    noise: WebcamOp = field(default_factory=lambda: WebcamOp(0.0, _default_ranges()["noise"]))
    gamma: WebcamOp = field(default_factory=lambda: WebcamOp(0.0, _default_ranges()["gamma"]))
    downscale: WebcamOp = field(default_factory=lambda: WebcamOp(0.0, _default_ranges()["downscale"]))
    jpeg: WebcamOp = field(default_factory=lambda: WebcamOp(0.0, _default_ranges()["jpeg"]))
    source: str = ""  # the file it was read from (recorded, not compared)

    @property
    def active(self) -> bool:
        """True when at least one op can fire."""
        return any(getattr(self, op).prob > 0 for op in OPS)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what args.json records and ``from_dict`` reads back)."""
        return {op: {"prob": getattr(self, op).prob, "range": list(getattr(self, op).range)} for op in OPS}

    @classmethod
    def from_dict(cls, data: Any, where: str | Path | None = None) -> "WebcamAugConfig":
        """Validated config from its JSON form; bad values are refused naming ``where`` and the op."""
        if not isinstance(data, dict):
            raise ArtifactError(where, "webcam augmentation config must be a JSON object of ops")
        allowed = set(OPS) | {"description", "source"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ArtifactError(where, f"unknown keys {unknown}; the ops are {list(OPS)}")
        ops: dict[str, WebcamOp] = {}
        for op in OPS:
            if op not in data:
                continue
            spec = data[op]
            if not isinstance(spec, dict) or set(spec) - {"prob", "range"}:
                raise ArtifactError(where, f"{op}: expected {{\"prob\": P, \"range\": [LOW, HIGH]}}, got {spec!r}")
            try:
                prob = float(spec.get("prob", 0.0))
                rng = spec.get("range", _default_ranges()[op])
                lo, hi = (float(v) for v in rng)
            except (TypeError, ValueError):
                raise ArtifactError(where, f"{op}: prob must be a number and range two numbers, got {spec!r}") from None
            if not (0.0 <= prob <= 1.0) or not math.isfinite(prob):
                raise ArtifactError(where, f"{op}: prob must lie in [0, 1], got {prob}")
            blo, bhi = BOUNDS[op]
            if not (blo <= lo <= hi <= bhi):
                raise ArtifactError(where, f"{op}: range must satisfy {blo} <= low <= high <= {bhi}, got [{lo}, {hi}]")
            if op == "motion_blur" and lo <= 0 and prob > 0:
                raise ArtifactError(where, "motion_blur: the blur length must be positive")
            ops[op] = WebcamOp(prob, (lo, hi))
        return cls(**ops, source=str(where or ""))

    @classmethod
    def from_json(cls, path: str | Path) -> "WebcamAugConfig":
        """Read a config file such as training/configs/augment/webcam_aug.json."""
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(path, "webcam augmentation config not found")
        return cls.from_dict(read_json(path), where=path)


# ----------------------------------------------------------------------------- the ops

def motion_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """A normalised line kernel of about ``length_px`` pixels at ``angle_deg`` (odd side, at least 3)."""
    k = max(3, int(round(length_px)) | 1)
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0
    m = cv2.getRotationMatrix2D((k / 2.0 - 0.5, k / 2.0 - 0.5), float(angle_deg), 1.0)
    kernel = cv2.warpAffine(kernel, m, (k, k), flags=cv2.INTER_LINEAR)
    s = float(kernel.sum())
    return kernel / s if s > 0 else np.full((k, k), 1.0 / (k * k), np.float32)


def _apply(op: str, f: np.ndarray, value: float, rng: np.random.Generator) -> np.ndarray:
    """One op on a float32 image in grey levels (0..255, not yet clipped)."""
    h, w = f.shape[:2]
    if op == "exposure":
        return f * np.float32(value)
    if op == "gamma":
        return (255.0 * np.power(np.clip(f, 0.0, 255.0) / 255.0, value)).astype(np.float32)
    if op == "motion_blur":
        kernel = motion_kernel(value * max(h, w), rng.uniform(0.0, 180.0))
        return cv2.filter2D(f, -1, kernel, borderType=cv2.BORDER_REPLICATE)
    if op == "noise":
        return f + rng.normal(0.0, value, f.shape).astype(np.float32)
    u8 = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    if op == "downscale":
        sw, sh = max(4, int(round(w * value))), max(4, int(round(h * value)))
        small = cv2.resize(u8, (sw, sh), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    if op == "jpeg":
        ok, buf = cv2.imencode(".jpg", u8, [int(cv2.IMWRITE_JPEG_QUALITY), int(round(value))])
        if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
            return f
        return cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32)
    raise ValueError(f"unknown webcam op {op!r}")


def op_generator(key: Sequence[int], op: str) -> np.random.Generator:
    """The generator of one op for one (seed, epoch, row) key: independent of every other stream."""
    return np.random.default_rng((*[int(k) for k in key], STREAM, OPS.index(op)))


def apply_webcam(img: np.ndarray, cfg: WebcamAugConfig, key: Sequence[int]) -> np.ndarray:
    """The webcam-degraded view of a uint8 face (gray or BGR) for ``key`` = (seed, epoch, row).

    Returns ``img`` itself (the same object) when no op fires, so an inactive config costs nothing.
    """
    if not cfg.active:
        return img
    f: np.ndarray | None = None
    for op in OPS:
        spec: WebcamOp = getattr(cfg, op)
        if spec.prob <= 0:
            continue
        rng = op_generator(key, op)
        if rng.random() >= spec.prob:
            continue
        value = float(rng.uniform(*spec.range))
        if f is None:
            f = np.asarray(img, dtype=np.float32)
        f = _apply(op, f, value, rng)
    if f is None:
        return img
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def describe(cfg: WebcamAugConfig) -> str:
    """One line naming the active ops, for run logs."""
    parts = [f"{op} p={getattr(cfg, op).prob:g} {list(getattr(cfg, op).range)}" for op in OPS
             if getattr(cfg, op).prob > 0]
    return ", ".join(parts) if parts else "off"


__all__ = ["OPS", "WebcamAugConfig", "WebcamOp", "apply_webcam", "describe", "motion_kernel", "op_generator"]
