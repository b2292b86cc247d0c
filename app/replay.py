"""Headless replay: the live pipeline over a video file, without a window; or two models over it (A/B).

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
from typing import Callable, Sequence

from app.clip_writer import CropWriter
from app.session import SessionRecorder, check_new_session_dir, prepare_session_dir
from app.sources import VideoFileSource
from fer_models.detector import FaceDetector
from fer_models.comparison import DEFAULT_MAX_DISAGREEMENTS, DEFAULT_RESAMPLES, DEFAULT_SEED, compare_logs
from fer_models.errors import ArtifactError
from fer_models.files import write_json
from fer_models.model_folder import FerModel, check_app_classes, load_app_model
from fer_models.pipeline import FramePipeline, PipelineSettings
from fer_models.scoring import DEFAULT_SCORING, summary_header_ok
from fer_models.session_log import label_at, read_csv_header, read_label_intervals

SUMMARY_NAME = "demo_results_summary.csv"
COMPARISON_NAME = "comparison.json"


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


def check_summary_target(path: str | Path, option: str = "--summary") -> Path:
    """Refuse, before a run, a summary CSV that could not take the session's row."""
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(path, f"is a folder; {option} needs the path of a CSV file")
    if path.is_file() and path.stat().st_size > 0:
        header = read_csv_header(path)
        if not summary_header_ok(header):
            raise ArtifactError(path, f"exists with other columns {header}, not a demo_results_summary.csv; "
                                      f"choose another {option}")
        return path
    above = path.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise ArtifactError(above, f"is not a folder, so {option} {path} cannot be written")
    return path


def _as_app_model(model: FerModel | str | Path | None) -> FerModel:
    if model is None or isinstance(model, (str, Path)):
        from resources import default_model_dir

        return load_app_model(model or default_model_dir())
    check_app_classes(model)
    return model


def replay_video(video: str | Path, out_dir: str | Path, model: FerModel | str | Path | None = None,
                 labels_csv: str | Path | None = None, settings: PipelineSettings | None = None,
                 detector: FaceDetector | None = None, max_frames: int | None = None,
                 summary_csv: Path | None = None, progress: Callable[[int], None] | None = None,
                 crops_consent: str | None = None) -> ReplayResult:
    """Run detection, crop, inference, calibration and smoothing on every frame and write the session logs.

    ``out_dir`` must be new or empty. The summary row goes to ``summary_csv``, by default
    demo_results_summary.csv inside ``out_dir``. Raises ArtifactError (naming the file) for bad input; a
    video that ends before the frame count its container declares is replayed with a warning.

    ``crops_consent``: the record of the filmed person's agreement to keeping their face crops (who
    agreed, how, when: free text, kept in actions.csv). Only with it are the model's aligned input
    crops saved (``crops/``, the window's ``CropWriter`` contract), so that ``fer-train mine`` can use
    the session; the session then logs ``clip_consent granted`` as the window does after its dialog.
    Without it nothing but the logs is written, as in the window by default.
    """
    out = Path(out_dir)
    summary = Path(summary_csv) if summary_csv else out / SUMMARY_NAME
    check_new_session_dir(out)
    if summary_csv:
        check_summary_target(summary)
    model = _as_app_model(model)
    intervals = read_label_intervals(labels_csv, model.classes) if labels_csv else []
    _check_consent_record(crops_consent)
    return _replay_models(video, out, [(out, model)], labels_csv, intervals, settings, detector, max_frames,
                          summary, progress, crops_consent)[0]


def _check_consent_record(crops_consent: str | None) -> None:
    if crops_consent is not None and not crops_consent.strip():
        raise ValueError("crops_consent must say who agreed to keeping the face crops, and how; got an empty text")


@dataclass
class CompareResult:
    """``replay_compare``: one session per model (A, B) and the comparison written to ``comparison_json``."""

    out_dir: Path
    sessions: list[ReplayResult]
    comparison: dict
    comparison_json: Path


AB_NAMES = ("A", "B")


def replay_compare(video: str | Path, out_dir: str | Path, models: Sequence[FerModel | str | Path],
                   labels_csv: str | Path | None = None, settings: PipelineSettings | None = None,
                   detector: FaceDetector | None = None, max_frames: int | None = None,
                   summary_csv: Path | None = None, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                   max_disagreements: int = DEFAULT_MAX_DISAGREEMENTS,
                   progress: Callable[[int], None] | None = None, crops_consent: str | None = None) -> CompareResult:
    """Same-video A/B: two models over the very same decoded frames and detections.

    Each frame is decoded once and its face detected once; every model then makes its own crop (its
    card may ask for another size, colour, margin or CLAHE), inference, calibration and smoothing
    (``FramePipeline.process_all``). ``out_dir`` (new or empty) gets one ordinary session folder per
    model, ``A/`` and ``B/`` (fer-score works on each), their summary rows (in ``summary_csv``, by default
    ``out_dir/demo_results_summary.csv``) and ``comparison.json`` (fer_models.comparison.compare_logs:
    scores side by side, the paired segment bootstrap of B - A, the frames where they disagree). Every
    input is checked before anything is written; comparison.json is written last, so a failure there
    keeps both sessions. ``crops_consent`` as for ``replay_video``: each session saves its model's crops.
    """
    if len(models) != 2:
        raise ValueError(f"an A/B replay takes two models, got {len(models)}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    out = Path(out_dir)
    summary = Path(summary_csv) if summary_csv else out / SUMMARY_NAME
    check_new_session_dir(out)
    if summary_csv:
        check_summary_target(summary)
    loaded = [_as_app_model(m) for m in models]
    intervals = read_label_intervals(labels_csv, loaded[0].classes) if labels_csv else []
    _check_consent_record(crops_consent)
    folders = [out / name for name in AB_NAMES]
    sessions = _replay_models(video, out, list(zip(folders, loaded)), labels_csv, intervals, settings, detector,
                              max_frames, summary, progress, crops_consent)
    comparison = compare_logs(folders[0] / "per_frame.csv", folders[1] / "per_frame.csv", DEFAULT_SCORING,
                              n_resamples, seed, max_disagreements)
    comparison = {
        "video": str(video), "labels": str(labels_csv) if labels_csv else None,
        "frames": sessions[0].n_frames, "faces": sessions[0].n_faces,
        "models": {name: {"model_id": m.model_id, "folder": str(m.folder), "session_dir": str(f)}
                   for name, m, f in zip(AB_NAMES, loaded, folders)},
        "shared": "one decode and one face detection per frame; crop, inference, calibration and smoothing "
                  "per model, as its model card says",
        **comparison,
    }
    path = write_json(out / COMPARISON_NAME, comparison)
    return CompareResult(out, sessions, comparison, path)


def _replay_models(video: str | Path, out: Path, targets: list[tuple[Path, FerModel]], labels_csv,
                   intervals, settings: PipelineSettings | None, detector: FaceDetector | None,
                   max_frames: int | None, summary: Path, progress, crops_consent: str | None = None
                   ) -> list[ReplayResult]:
    """The replay loop for one or more (session folder, model): one decode and detection per frame.

    With ``crops_consent`` each model's input crops go to its own session's crops/ (the models' cards
    may ask for other sizes or colours, so each keeps the crop it saw)."""
    settings = settings or PipelineSettings()
    detector = detector or FaceDetector(min_face=settings.min_face, score_threshold=settings.score_threshold)
    models = [m for _, m in targets]
    pipeline = FramePipeline(models[0], detector, settings, extra_models=models[1:])
    pipeline.set_keep_crops(crops_consent is not None)
    source = VideoFileSource(video)  # refuses a video without a readable frame
    recs: list[SessionRecorder] = []
    try:
        prepare_session_dir(out)
        for folder, model in targets:
            prepare_session_dir(folder)
            recs.append(SessionRecorder(folder, model, settings, source=f"replay:{Path(video).name}"))
    except BaseException:
        source.release()
        for rec in recs:
            _close_quietly(rec, 0.0, summary)
        raise
    for rec in recs:
        if labels_csv:
            rec.log_action(0.0, "labels_file", str(labels_csv))
        if len(recs) > 1:
            others = ", ".join(f"{m.model_id} ({m.folder})" for r2, (_, m) in zip(recs, targets) if r2 is not rec)
            rec.log_action(0.0, "compared_with", others)
    crops: list[CropWriter] = []
    if crops_consent is not None:
        for rec, (folder, _) in zip(recs, targets):
            rec.log_action(0.0, "clip_consent", "granted")
            rec.log_action(0.0, "clip_consent_record", crops_consent.strip())
            rec.log_action(0.0, "clip_saving", "on (face crops only: the replayed video is the source)")
            crops.append(CropWriter(folder))
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
                label = label_at(intervals, t * 1000.0)
                for rec in recs:
                    rec.set_manual_label(label, t, source="labels_file")
            results = pipeline.process_all(frame, t)
            for rec, result in zip(recs, results):
                rec.log_frame(n, t, result)
            for writer, result in zip(crops, results):
                if result.crop is not None:
                    writer.write(n, t, result.crop)
            faces += results[0].face is not None
            timings.append(results[0].timings_ms)
            n += 1
            if progress:
                progress(n)
    except BaseException as exc:
        source.release()
        try:
            _close_crops(crops, recs, t)
        except Exception:  # noqa: BLE001 - the error that stopped the replay is the one to report
            pass
        for rec in recs:
            _close_quietly(rec, t, summary)  # end the logs cleanly where possible; the rows written so far stay
        if isinstance(exc, ArtifactError):
            raise type(exc)(exc.path, f"{exc.problem}; the replay stopped after {n} frames, whose rows are "
                                      f"in {out}") from exc
        raise
    source.release()
    _close_crops(crops, recs, t)
    warnings = []
    declared = source.frame_count
    truncated = at_end and declared and n < declared
    msg = (f"{video}: read {n} of the {declared} frames the container declares (the file is truncated or "
           "damaged); the session covers the frames read")
    if truncated:
        warnings.append(msg)
    for rec in recs:
        rec.log_action(t, "video_frames", f"read {n}; the container declares {declared or 'no frame count'}")
        if truncated:
            rec.log_action(t, "warning", msg)
    results_out, failure = [], None
    for rec in recs:  # close every session even when one summary row fails; the first failure is raised
        try:
            score = rec.close(t, summary)
        except ArtifactError as exc:
            if rec.final_score is None:
                failure = failure or exc
            else:
                failure = failure or type(exc)(exc.path, f"{exc.problem}; the session's logs and score.json are "
                                                         f"saved in {rec.folder}")
            score = rec.final_score
        results_out.append(ReplayResult(rec.folder, n, faces, score, timings, summary, declared, list(warnings)))
    if failure is not None:
        raise failure
    return results_out


def _close_crops(crops: list[CropWriter], recs: list[SessionRecorder], t: float) -> None:
    for writer, rec in zip(crops, recs):
        writer.close()
        rec.log_action(t, "clip_saving", f"off ({writer.frames} crops)")


def _close_quietly(rec: SessionRecorder, t: float, summary: Path) -> None:
    try:
        rec.close(t, summary)
    except Exception:  # noqa: BLE001 - the error that stopped the replay is the one to report
        pass
