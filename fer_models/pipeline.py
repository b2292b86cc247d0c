"""The per-frame pipeline shared by the live app and headless replays.

detect -> align + crop -> ONNX -> calibration -> smoothing, each stage timed.
Settings arrive as plain values under a lock and take effect on the next frame,
so the GUI never touches the pipeline's state directly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from fer_models.detector import Face, FaceDetector
from fer_models.face_crop import CropSpec, crop_face
from fer_models.model_folder import FerModel
from fer_models.session_log import STAGES
from fer_models.temporal import Smoother


@dataclass(frozen=True)
class PipelineSettings:
    """Everything a user can tune at run time. None for a crop option means: follow the model card."""

    alpha: float = 0.70
    delta: float = 0.08
    window: int = 15
    min_count: int = 8
    window_ms: float | None = None
    min_face: int = 96
    score_threshold: float = 0.6
    align_eyes: bool | None = None
    clahe: bool | None = None
    crop_margin: float | None = None
    redetect_every: int = 5  # full-frame detection every N frames, tracking in between (1 = always full)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def crop_overrides(self) -> dict[str, Any]:
        """The crop options for ``FerModel.crop_spec`` (None: follow the model card)."""
        return {"align_eyes": self.align_eyes, "clahe": self.clahe, "crop_margin": self.crop_margin}

    def smoothing(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "delta": self.delta, "window": self.window, "min_count": self.min_count,
                "window_ms": self.window_ms}

    def clamped(self) -> "PipelineSettings":
        """These settings with the vote's min count pulled down to the window (when the window counts frames).

        The one place that enforces "min count never above the window" for user changes (sliders, keys,
        the app's controller); ``validated`` still refuses the combination where it is given on purpose.
        """
        if self.window_ms is None and self.window >= 1 and self.min_count > self.window:
            return replace(self, min_count=self.window)
        return self

    def with_changes(self, **changes: Any) -> "PipelineSettings":
        """A user's change applied: clamped (``clamped``), then validated (ValueError if still impossible)."""
        return replace(self, **changes).clamped().validated()

    def changes_from(self, old: "PipelineSettings") -> dict[str, Any]:
        """The fields whose value differs from ``old``, with their new values."""
        before = old.to_dict()
        return {k: v for k, v in self.to_dict().items() if before.get(k) != v}

    def validated(self) -> "PipelineSettings":
        Smoother(**self.smoothing())  # raises ValueError on an impossible combination
        if self.redetect_every < 1:
            raise ValueError("redetect_every must be >= 1")
        if self.min_face < 1 or not 0.0 < self.score_threshold < 1.0:
            raise ValueError("min_face must be >= 1 and score_threshold in (0, 1)")
        if self.crop_margin is not None and not -0.4 <= self.crop_margin <= 2.0:
            raise ValueError("crop_margin must lie in [-0.4, 2]")
        return self


@dataclass
class FrameResult:
    face: Face | None
    probs: np.ndarray | None  # calibrated, card class order
    smoothed: np.ndarray | None
    label_index: int | None
    label: str | None  # None = unstable or no face
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def confidence(self) -> float | None:
        if self.label_index is None or self.smoothed is None:
            return None
        return float(self.smoothed[self.label_index])

    def log_columns(self, classes: list[str], model_id: str) -> dict[str, Any]:
        """The app's own per_frame.csv columns (face box, score, smoothed probs, latency, model id)."""
        row: dict[str, Any] = {"model_id": model_id}
        if self.face is not None:
            x, y, w, h = self.face.box
            row.update(face_x=round(x, 1), face_y=round(y, 1), face_w=round(w, 1), face_h=round(h, 1),
                       det_score=round(self.face.score, 4))
        if self.smoothed is not None:
            row.update({f"smooth_prob_{c}": float(v) for c, v in zip(classes, self.smoothed)})
        row.update({f"ms_{s}": round(self.timings_ms.get(s, 0.0), 3) for s in STAGES})
        return row


class FramePipeline:
    """Thread-safe holder of model, detector, smoother and settings; ``process`` runs one frame."""

    def __init__(self, model: FerModel, detector: FaceDetector, settings: PipelineSettings | None = None):
        self._lock = threading.Lock()
        self._model = model
        self._detector = detector
        self._settings = (settings or PipelineSettings()).validated()
        self._smoother = Smoother(**self._settings.smoothing())
        self._crop = model.crop_spec(**self._settings.crop_overrides())
        self._applied = self._settings
        self._dirty_model = False
        self._last_face: Face | None = None
        self._since_full = 0

    # -- configuration (any thread) ------------------------------------------------------
    @property
    def settings(self) -> PipelineSettings:
        with self._lock:
            return self._settings

    @property
    def model(self) -> FerModel:
        with self._lock:
            return self._model

    def update_settings(self, **changes: Any) -> PipelineSettings:
        """Validate and store new values; the worker applies them before its next frame."""
        with self._lock:
            new = replace(self._settings, **changes).validated()
            self._settings = new
            self._crop = self._model.crop_spec(**new.crop_overrides())  # built once per change, not per frame
            return new

    def set_model(self, model: FerModel) -> None:
        with self._lock:
            self._model = model
            self._crop = model.crop_spec(**self._settings.crop_overrides())
            self._dirty_model = True

    def reset(self) -> None:
        with self._lock:
            self._smoother.reset()
            self._last_face = None

    # -- processing (worker thread) ------------------------------------------------------
    def _apply_pending(self) -> tuple[PipelineSettings, FerModel, CropSpec]:
        with self._lock:
            s, model, crop = self._settings, self._model, self._crop
            if s != self._applied:
                self._smoother.configure(alpha=s.alpha, delta=s.delta, window=s.window, min_count=s.min_count,
                                         window_ms=s.window_ms)
                self._detector.min_face = s.min_face
                if s.score_threshold != self._applied.score_threshold:
                    self._detector.set_score_threshold(s.score_threshold)
                self._applied = s
            if self._dirty_model:
                self._smoother.reset()
                self._dirty_model = False
            return s, model, crop

    def _find_face(self, frame_bgr: np.ndarray, redetect_every: int) -> Face | None:
        """Track near the last face between full detections; fall back to a full one when it is lost."""
        # The search region stays anchored on the last full detection rather than following each
        # tracked box: re-centring on every result lets YuNet's few-pixel jitter feed back into the crop.
        face = None
        if self._last_face is not None and self._since_full < redetect_every:
            face = self._detector.detect_near(frame_bgr, self._last_face)
            self._since_full += 1
        if face is None:
            face = self._detector.detect_largest(frame_bgr)
            self._since_full = 1
            self._last_face = face
        return face

    def process(self, frame_bgr: np.ndarray, t_sec: float) -> FrameResult:
        s, model, crop = self._apply_pending()
        t0 = time.perf_counter()
        face = self._find_face(frame_bgr, s.redetect_every)
        t1 = time.perf_counter()
        timings = {"detect": (t1 - t0) * 1e3}
        if face is None:
            self._smoother.reset()
            timings.update(crop=0.0, infer=0.0, smooth=0.0, total=(time.perf_counter() - t0) * 1e3)
            return FrameResult(None, None, None, None, None, timings)
        tensor = crop_face(frame_bgr, face.box, face.landmarks, crop)
        t2 = time.perf_counter()
        probs = model.probs(tensor[None])[0]
        t3 = time.perf_counter()
        idx = self._smoother.update(probs, t_sec)
        smoothed = self._smoother.smoothed
        thresholds = model.calibration.thresholds
        if idx is not None and thresholds is not None and smoothed is not None and smoothed[idx] < thresholds[idx]:
            idx = None  # per-class threshold not reached: show no label rather than a weak one
        t4 = time.perf_counter()
        timings.update(crop=(t2 - t1) * 1e3, infer=(t3 - t2) * 1e3, smooth=(t4 - t3) * 1e3, total=(t4 - t0) * 1e3)
        label = model.classes[idx] if idx is not None else None
        return FrameResult(face, probs, smoothed, idx, label, timings)
