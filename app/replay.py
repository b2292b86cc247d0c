"""Headless replay: the live pipeline over a video file, without a window.

Times are video times (frame index / fps), so a replay is deterministic and
its logs can be compared with the labels of the same file.

Everything that can be checked is checked before the first frame and before
anything is written: the model (the same ``check_app_classes`` as the window,
and the load-time test run of ``load_model_folder``), the labels file, the
summary CSV, the session folder (never an existing session, never a non-empty
folder) and the video (at least one readable frame). After the run, score.json
is written before the summary row; a file that cannot be written is an
ArtifactError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2

from app.session import SessionRecorder, check_new_session_dir, prepare_session_dir
from app.sources import VideoFileSource
from fer_models.detector import FaceDetector
from fer_models.errors import ArtifactError
from fer_models.model_folder import FerModel, check_app_classes, load_app_model
from fer_models.pipeline import FramePipeline, PipelineSettings
from fer_models.scoring import DEMO_SUMMARY_COLUMNS
from fer_models.session_log import label_at, read_csv_header, read_label_intervals

SUMMARY_NAME = "demo_results_summary.csv"


@dataclass
class ReplayResult:
    session_dir: Path
    n_frames: int
    n_faces: int
    score: dict | None
    timings_ms: list[dict[str, float]]
    summary_csv: Path | None = None
    frames_declared: int = 0  # CAP_PROP_FRAME_COUNT of the container (0: it declares none)
    warnings: list[str] = field(default_factory=list)  # also in actions.csv (kind "warning")


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


def check_summary_target(path: str | Path, option: str = "--summary") -> Path:
    """Refuse, before a run, a summary CSV that could not take the session's row."""
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(path, f"is a folder; {option} needs the path of a CSV file")
    if path.is_file() and path.stat().st_size > 0:
        header = read_csv_header(path)
        if header != list(DEMO_SUMMARY_COLUMNS):
            raise ArtifactError(path, f"exists with other columns {header}, not a demo_results_summary.csv; "
                                      f"choose another {option}")
        return path
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise ArtifactError(above, f"is not a folder, so {option} {path} cannot be written")
    return path


def replay_video(video: str | Path, out_dir: str | Path, model: FerModel | str | Path | None = None,
                 labels_csv: str | Path | None = None, settings: PipelineSettings | None = None,
                 detector: FaceDetector | None = None, max_frames: int | None = None,
                 summary_csv: Path | None = None, progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Run detection, crop, inference, calibration and smoothing on every frame and write the session logs.

    ``out_dir`` must be new or empty. The summary row goes to ``summary_csv``, by default
    demo_results_summary.csv inside ``out_dir``. Raises ArtifactError (naming the file) for bad input; a
    video that ends before the frame count its container declares is replayed with a warning.
    """
    out = Path(out_dir)
    summary = Path(summary_csv) if summary_csv else out / SUMMARY_NAME
    check_new_session_dir(out)
    if summary_csv:
        check_summary_target(summary)
    if model is None or isinstance(model, (str, Path)):
        from resources import default_model_dir

        model = load_app_model(model or default_model_dir())
    else:
        check_app_classes(model)
    intervals = read_label_intervals(labels_csv, model.classes) if labels_csv else []
    settings = settings or PipelineSettings()
    detector = detector or FaceDetector(min_face=settings.min_face, score_threshold=settings.score_threshold)
    pipeline = FramePipeline(model, detector, settings)
    source = VideoFileSource(video)  # refuses a video without a readable frame
    try:
        prepare_session_dir(out)
        rec = SessionRecorder(out, model, settings, source=f"replay:{Path(video).name}")
    except BaseException:
        source.release()
        raise
    if labels_csv:
        rec.log_action(0.0, "labels_file", str(labels_csv))
    n = faces = 0
    timings = []
    t = 0.0
    at_end = False
    try:
        while max_frames is None or n < max_frames:
            frame = source.read()
            if frame is None:
                at_end = True
                break
            t = n / source.fps
            if intervals:
                rec.set_manual_label(label_at(intervals, t * 1000.0), t, source="labels_file")
            result = pipeline.process(frame, t)
            rec.log_frame(n, t, result)
            faces += result.face is not None
            timings.append(result.timings_ms)
            n += 1
            if progress:
                progress(n)
    except BaseException as exc:
        source.release()
        _close_quietly(rec, t, summary)  # end the logs cleanly where possible; the rows written so far stay
        if isinstance(exc, ArtifactError):
            raise type(exc)(exc.path, f"{exc.problem}; the replay stopped after {n} frames, whose rows are "
                                      f"in {out}") from exc
        raise
    source.release()
    warnings = []
    declared = source.frame_count
    rec.log_action(t, "video_frames", f"read {n}; the container declares {declared or 'no frame count'}")
    if at_end and declared and n < declared:
        msg = (f"{video}: read {n} of the {declared} frames the container declares (the file is truncated or "
               "damaged); the session covers the frames read")
        warnings.append(msg)
        rec.log_action(t, "warning", msg)
    try:
        score = rec.close(t, summary)
    except ArtifactError as exc:
        if rec.final_score is None:
            raise
        raise type(exc)(exc.path, f"{exc.problem}; the session's logs and score.json are saved in {out}") from exc
    return ReplayResult(out, n, faces, score, timings, summary, declared, warnings)


def _close_quietly(rec: SessionRecorder, t: float, summary: Path) -> None:
    try:
        rec.close(t, summary)
    except Exception:  # noqa: BLE001 - the error that stopped the replay is the one to report
        pass
