"""Headless replay: the live pipeline over a video file, without a window.

Times are video times (frame index / fps), so a replay is deterministic and
its logs can be compared with the labels of the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2

from app.session import SessionRecorder
from fer_models.detector import FaceDetector
from fer_models.errors import ArtifactError
from fer_models.model_folder import FerModel, load_model_folder
from fer_models.pipeline import FramePipeline, PipelineSettings
from fer_models.session_log import label_at, read_label_intervals


@dataclass
class ReplayResult:
    session_dir: Path
    n_frames: int
    n_faces: int
    score: dict | None
    timings_ms: list[dict[str, float]]


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, float]:
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


def replay_video(video: str | Path, out_dir: str | Path, model: FerModel | str | Path | None = None,
                 labels_csv: str | Path | None = None, settings: PipelineSettings | None = None,
                 detector: FaceDetector | None = None, max_frames: int | None = None,
                 summary_csv: Path | None = None, progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Run detection, crop, inference, calibration and smoothing on every frame and write the session logs."""
    if model is None or isinstance(model, (str, Path)):
        from resources import default_model_dir

        model = load_model_folder(model or default_model_dir())
    intervals = read_label_intervals(labels_csv, model.classes) if labels_csv else []
    settings = settings or PipelineSettings()
    detector = detector or FaceDetector(min_face=settings.min_face, score_threshold=settings.score_threshold)
    pipeline = FramePipeline(model, detector, settings)
    cap, fps = open_video(video)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rec = SessionRecorder(out, model, settings, source=f"replay:{Path(video).name}")
    if labels_csv:
        rec.log_action(0.0, "labels_file", str(labels_csv))
    n = faces = 0
    timings = []
    t = 0.0
    try:
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            t = n / fps
            if intervals:
                rec.set_manual_label(label_at(intervals, t * 1000.0), t, source="labels_file")
            result = pipeline.process(frame, t)
            rec.log_frame(n, t, result)
            faces += result.face is not None
            timings.append(result.timings_ms)
            n += 1
            if progress:
                progress(n)
    finally:
        cap.release()
        score = rec.close(t, summary_csv)
    return ReplayResult(out, n, faces, score, timings)
