"""YuNet face detection through OpenCV's FaceDetectorYN (OpenCV 4.10+ and 5.x).

The model file is resolved in a fixed order so that tests, the installer and a
fresh user machine each find it without surprises: explicit path or
environment variable, the user cache, the bundled resources, then a download
verified against a pinned SHA-256.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import platformdirs

from fer_models.errors import DetectorUnavailable
from fer_models.files import atomic_path, sha256_file

log = logging.getLogger(__name__)

ENV_MODEL = "FER_YUNET_MODEL"  # a model file
ENV_DIR = "FER_YUNET_DIR"  # a folder holding the manifest's file names (tests point it at ../shared/models)
ENV_OFFLINE = "FER_OFFLINE"  # "1": never download
APP_NAME = "ferlab"
ROI_PX = 128  # side of the region around the last face that tracking re-detects in
ROI_SCALE = 2.0  # that region's side in face sizes


@dataclass(frozen=True)
class DetectorSpec:
    file: str
    url: str
    sha256: str


def opencv_major() -> int:
    return int(cv2.__version__.split(".")[0])


def detector_spec(major: int | None = None) -> DetectorSpec:
    """The manifest entry matching the installed OpenCV (the dynamic-input model on OpenCV 5)."""
    from resources import resource_path

    manifest = json.loads(resource_path("detector_manifest.json").read_text(encoding="utf-8"))
    key = "opencv5" if (major or opencv_major()) >= 5 else "opencv4"
    return DetectorSpec(**manifest["models"][key])


sha256_of = sha256_file  # the detector's name for it (tests use it)


def user_cache_dir() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "models"


def resolve_yunet_model(explicit: str | os.PathLike | None = None, allow_download: bool | None = None,
                        spec: DetectorSpec | None = None) -> Path:
    """Find (or fetch) the YuNet model file; every failure says where to put it."""
    spec = spec or detector_spec()
    if explicit is not None or os.environ.get(ENV_MODEL):
        path = Path(explicit if explicit is not None else os.environ[ENV_MODEL]).expanduser()
        if not path.is_file():
            raise DetectorUnavailable(f"face detector model not found at {path}")
        return path
    candidates: list[tuple[str, Path]] = []
    if os.environ.get(ENV_DIR):
        candidates.append((f"{ENV_DIR} folder", Path(os.environ[ENV_DIR]).expanduser() / spec.file))
    candidates += [("user cache", user_cache_dir() / spec.file), ("bundled copy", bundled_model_path(spec.file))]
    searched: list[str] = []
    for label, path in candidates:
        if not path.is_file():
            searched.append(f"{label} {path} (missing)")
            continue
        digest = sha256_of(path)
        if digest == spec.sha256:
            return path
        # a corrupt or other copy is passed over, not used: the next place (or the download) may have it
        log.warning("%s: SHA-256 %s does not match the pinned %s; ignoring this copy", path, digest[:12],
                    spec.sha256[:12])
        searched.append(f"{label} {path} (SHA-256 {digest[:12]}... does not match the pinned {spec.sha256[:12]}...)")
    if allow_download is None:
        allow_download = os.environ.get(ENV_OFFLINE, "") not in ("1", "true", "yes")
    target = user_cache_dir() / spec.file
    if not allow_download:
        raise DetectorUnavailable(_where_to_put(spec, target, f"downloads are disabled ({ENV_OFFLINE}=1)", searched))
    try:
        download_verified(spec.url, target, spec.sha256)
    except (OSError, ValueError) as exc:
        raise DetectorUnavailable(_where_to_put(spec, target, f"download failed ({exc})", searched)) from exc
    return target


def bundled_model_path(file: str) -> Path:
    """Where the installer bundles the detector (resources/models/detector/)."""
    from resources import resource_path

    return resource_path("models", "detector", file)


def _where_to_put(spec: DetectorSpec, target: Path, why: str, searched: list[str]) -> str:
    return (f"YuNet face detector {spec.file} not found and {why}. Searched: " + "; ".join(searched) +
            f". Download it from {spec.url} (SHA-256 {spec.sha256}) and put it at {target}, "
            f"or set {ENV_DIR} to a folder holding it or {ENV_MODEL} to its path.")


def download_verified(url: str, target: Path, sha256: str, timeout: float = 30.0) -> Path:
    """Download to a temporary file, check the hash, then move into place (never a half file)."""
    with atomic_path(target, suffix=".part") as tmp:
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
            shutil.copyfileobj(resp, out)
        digest = sha256_file(tmp)
        if digest != sha256:
            raise ValueError(f"downloaded file has SHA-256 {digest}, expected {sha256}")
    return Path(target)


@dataclass
class Face:
    """One detection in frame pixels: box (x, y, w, h), score, 5 landmarks.

    Landmarks are YuNet's order: right eye, left eye, nose tip, right and left mouth
    corners (the subject's right eye appears on the image's left).
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # (5, 2) float32

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]

    @property
    def size(self) -> float:
        return min(self.box[2], self.box[3])


@contextlib.contextmanager
def _quiet_opencv_warnings() -> Iterator[None]:
    """OpenCV 5 warns "setPreferableTarget ... not supported by the new graph engine" once per
    FaceDetectorYN.create although nothing is wrong; keep its warnings off while the nets are
    created (errors still print, and raise as cv2.error)."""
    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_mod is None:  # pragma: no cover - OpenCV builds without the logging utils
        yield
        return
    before = logging_mod.getLogLevel()
    logging_mod.setLogLevel(logging_mod.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging_mod.setLogLevel(before)


class FaceDetector:
    """YuNet wrapper: score threshold, minimum face size (px), largest-face selection.

    ``detect_width`` downsizes wide frames before detection (YuNet at 320 px is fast
    and still finds faces of the 96 px minimum); boxes come back in frame pixels.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, score_threshold: float = 0.6,
                 nms_threshold: float = 0.3, min_face: int = 96, top_k: int = 50, detect_width: int | None = 320,
                 roi_px: int = ROI_PX):
        self.model_path = resolve_yunet_model(model_path)
        if roi_px < 32:
            raise ValueError(f"roi_px must be at least 32 (the face fills half of the region), got {roi_px}")
        self.roi_px = int(roi_px)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.min_face = int(min_face)
        self.top_k = int(top_k)
        self.detect_width = detect_width
        self._size: tuple[int, int] | None = None
        try:
            with _quiet_opencv_warnings():
                self._net = cv2.FaceDetectorYN.create(str(self.model_path), "", (320, 320), self.score_threshold,
                                                      self.nms_threshold, self.top_k)
                self._roi_net = cv2.FaceDetectorYN.create(str(self.model_path), "", (self.roi_px, self.roi_px),
                                                          self.score_threshold, self.nms_threshold, self.top_k)
        except cv2.error as exc:
            raise DetectorUnavailable(f"{self.model_path}: OpenCV {cv2.__version__} cannot load this YuNet model "
                                      f"({exc}); OpenCV 5 needs the 2026may file, 4.x the 2023mar file") from exc

    def set_score_threshold(self, value: float) -> None:
        self.score_threshold = float(value)
        self._net.setScoreThreshold(self.score_threshold)
        self._roi_net.setScoreThreshold(self.score_threshold)

    def detect(self, frame_bgr: np.ndarray) -> list[Face]:
        """All faces at least ``min_face`` px (shorter side), largest first."""
        if frame_bgr is None or frame_bgr.ndim < 2:
            raise ValueError("detect() needs an image array")
        img = frame_bgr if frame_bgr.ndim == 3 else cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        h, w = img.shape[:2]
        scale = 1.0
        if self.detect_width and w > self.detect_width:
            scale = self.detect_width / w
            img = cv2.resize(img, (self.detect_width, max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        size = (img.shape[1], img.shape[0])
        if size != self._size:
            self._net.setInputSize(size)
            self._size = size
        _, raw = self._net.detect(img)
        return self._faces(raw, scale, 0.0, 0.0)

    def _faces(self, raw: np.ndarray | None, scale: float, ox: float, oy: float) -> list[Face]:
        """YuNet rows -> Face objects in frame pixels, filtered by size, largest first."""
        faces = []
        if raw is not None:
            for row in raw:
                x, y, w, h = (float(v) / scale for v in row[:4])
                lm = row[4:14].reshape(5, 2) / scale + np.array([ox, oy], np.float32)
                face = Face(box=(x + ox, y + oy, w, h), score=float(row[14]), landmarks=lm.astype(np.float32))
                if face.size >= self.min_face:
                    faces.append(face)
        faces.sort(key=lambda f: f.area, reverse=True)
        return faces

    def detect_near(self, frame_bgr: np.ndarray, previous: Face) -> Face | None:
        """Re-detect in a small region around the last face: a third of a full detection's cost.

        Used for tracking between full-frame detections; returns None when the face
        left the region, so the caller falls back to ``detect_largest``.
        """
        img = frame_bgr if frame_bgr.ndim == 3 else cv2.cvtColor(frame_bgr, cv2.COLOR_GRAY2BGR)
        x, y, w, h = previous.box
        side = max(w, h) * ROI_SCALE
        cx, cy = x + w / 2.0, y + h / 2.0
        ox, oy = cx - side / 2.0, cy - side / 2.0
        scale = self.roi_px / side
        m = np.array([[scale, 0.0, -ox * scale], [0.0, scale, -oy * scale]])
        roi = cv2.warpAffine(img, m, (self.roi_px, self.roi_px),
                             flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        _, raw = self._roi_net.detect(roi)
        faces = self._faces(raw, scale, ox, oy)
        return faces[0] if faces else None

    def detect_largest(self, frame_bgr: np.ndarray) -> Face | None:
        faces = self.detect(frame_bgr)
        return faces[0] if faces else None
