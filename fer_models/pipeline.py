"""The per-frame pipeline shared by the live app and headless replays.

detect -> align + crop -> ONNX -> calibration -> smoothing, each stage timed.
One detection per frame feeds every model the pipeline holds (the session's model and,
for comparisons, more), each with its own crop and smoother. Settings arrive as plain
values under a lock and take effect on the next frame, so the GUI never touches the
pipeline's state directly.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from fer_models.detector import Face, FaceDetector
from fer_models.face_crop import CropSpec, crop_face_and_image
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
    # the aligned face crop the model saw, before CLAHE (``face_crop.face_image``), only while the pipeline keeps crops
    crop: np.ndarray | None = None

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
    """Thread-safe holder of the detector, the models, their smoothers and the settings.

    ``process_all`` runs one frame: one detection (shared), then for every model its own crop (each
    model card may ask for another input size, colour, margin or CLAHE), inference, calibration and
    smoothing. The first model is the session's model (``process`` returns its result); further
    models (``set_extra_models``: the window's second model, the A/B replay) see the very same face
    box and landmarks, so a comparison never mixes detector differences into model differences.
    """

    def __init__(self, model: FerModel, detector: FaceDetector, settings: PipelineSettings | None = None,
                 extra_models: Sequence[FerModel] = ()):
        self._lock = threading.Lock()
        self._detector = detector
        self._settings = (settings or PipelineSettings()).validated()
        self._models: list[FerModel] = [model, *extra_models]
        self._crops = [m.crop_spec(**self._settings.crop_overrides()) for m in self._models]
        self._smoothers = [Smoother(**self._settings.smoothing()) for _ in self._models]
        self._smoother_models: list[FerModel] = list(self._models)  # the model each smoother belongs to
        self._applied = self._settings
        self._reset_pending = False
        self._keep_crops = False
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
            return self._models[0]

    @property
    def extra_models(self) -> list[FerModel]:
        with self._lock:
            return list(self._models[1:])

    @property
    def keep_crops(self) -> bool:
        with self._lock:
            return self._keep_crops

    def update_settings(self, **changes: Any) -> PipelineSettings:
        """Validate and store new values; the worker applies them before its next frame."""
        with self._lock:
            new = replace(self._settings, **changes).validated()
            self._settings = new
            # built once per change, not per frame
            self._crops = [m.crop_spec(**new.crop_overrides()) for m in self._models]
            return new

    def set_model(self, model: FerModel) -> None:
        """Swap the session's model (its smoothing starts afresh from the next frame)."""
        with self._lock:
            self._models = [model, *self._models[1:]]
            self._crops = [model.crop_spec(**self._settings.crop_overrides()), *self._crops[1:]]

    def set_extra_models(self, models: Sequence[FerModel]) -> None:
        """The models run beside the session's model on every frame ([] for none)."""
        with self._lock:
            self._models = [self._models[0], *models]
            self._crops = [m.crop_spec(**self._settings.crop_overrides()) for m in self._models]

    def set_keep_crops(self, keep: bool) -> None:
        """Attach each model's input image (``FrameResult.crop``) to its results; only for clip saving,
        which the app allows after the user's consent (the window saves the session model's; an A/B
        replay with a consent record saves each model's into its own session)."""
        with self._lock:
            self._keep_crops = bool(keep)

    def reset(self) -> None:
        """Forget the smoothing state and the tracked face before the next frame."""
        with self._lock:
            self._reset_pending = True
            self._last_face = None

    # -- processing (worker thread) ------------------------------------------------------
    def _apply_pending(self) -> tuple[PipelineSettings, list[FerModel], list[CropSpec], list[Smoother], bool]:
        with self._lock:
            s, models, crops = self._settings, list(self._models), list(self._crops)
            if s != self._applied:
                for sm in self._smoothers:
                    sm.configure(alpha=s.alpha, delta=s.delta, window=s.window, min_count=s.min_count,
                                 window_ms=s.window_ms)
                self._detector.min_face = s.min_face
                if s.score_threshold != self._applied.score_threshold:
                    self._detector.set_score_threshold(s.score_threshold)
                self._applied = s
            smoothers = []
            for i, m in enumerate(models):  # a model that changed gets a fresh smoother
                if i < len(self._smoother_models) and self._smoother_models[i] is m:
                    sm = self._smoothers[i]
                    if self._reset_pending:
                        sm.reset()
                else:
                    sm = Smoother(**s.smoothing())
                smoothers.append(sm)
            self._smoothers, self._smoother_models = smoothers, list(models)
            self._reset_pending = False
            return s, models, crops, list(smoothers), self._keep_crops

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
        """One frame through every model; the session model's result (see ``process_all``)."""
        return self.process_all(frame_bgr, t_sec)[0]

    def process_all(self, frame_bgr: np.ndarray, t_sec: float) -> list[FrameResult]:
        """One frame: a single detection, then each model's crop, inference, calibration and smoothing.

        One result per model, the session model first. Every result carries the same face; its
        timings hold the shared detection time and the model's own crop/infer/smooth times, and
        ``total`` is their sum.
        """
        s, models, crops, smoothers, keep = self._apply_pending()
        t0 = time.perf_counter()
        face = self._find_face(frame_bgr, s.redetect_every)
        detect_ms = (time.perf_counter() - t0) * 1e3
        if face is None:
            out = []
            for sm in smoothers:
                sm.reset()
                out.append(FrameResult(None, None, None, None, None,
                                       {"detect": detect_ms, "crop": 0.0, "infer": 0.0, "smooth": 0.0,
                                        "total": detect_ms}))
            return out
        return [self._classify(frame_bgr, face, t_sec, model, crop, sm, detect_ms, keep)
                for i, (model, crop, sm) in enumerate(zip(models, crops, smoothers))]

    @staticmethod
    def _classify(frame_bgr: np.ndarray, face: Face, t_sec: float, model: FerModel, crop: CropSpec,
                  smoother: Smoother, detect_ms: float, keep_crop: bool) -> FrameResult:
        t1 = time.perf_counter()
        tensor, image = crop_face_and_image(frame_bgr, face.box, face.landmarks, crop, keep_image=keep_crop)
        t2 = time.perf_counter()
        probs = model.probs(tensor[None])[0]
        t3 = time.perf_counter()
        idx = smoother.update(probs, t_sec)
        smoothed = smoother.smoothed
        thresholds = model.calibration.thresholds
        if idx is not None and thresholds is not None and smoothed is not None and smoothed[idx] < thresholds[idx]:
            idx = None  # per-class threshold not reached: show no label rather than a weak one
        t4 = time.perf_counter()
        timings = {"detect": detect_ms, "crop": (t2 - t1) * 1e3, "infer": (t3 - t2) * 1e3,
                   "smooth": (t4 - t3) * 1e3}
        timings["total"] = detect_ms + (t4 - t1) * 1e3
        label = model.classes[idx] if idx is not None else None
        return FrameResult(face, probs, smoothed, idx, label, timings, image)
