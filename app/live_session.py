"""One running session as the GUI thread sees it, without Qt.

It turns processed frames into per_frame rows (with the manual label that
applies to each frame), keeps the running figures and the timeline, decides
when the live score is recomputed, and ends the session with the final score.
Live mode (camera, or a file treated as live): the held label applies to every
frame logged after the key. Video-label mode: each frame gets the label of its
own video time from the VideoLabelTrack, so labels are frame-accurate.

A video session holds a second label track (rater B) beside the first (rater A,
whose labels go into per_frame.csv): the keys paint whichever rater is being
labelled (``paint_track``); at the end B's track is saved as video_labels_b.csv
and, when both raters labelled, their agreement as agreement.json. With a second
model, its predictions of the same frames are logged as an ordinary session in
model_b/ and compared with the first model's in comparison.json at the end.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.clip_writer import ClipWriter, CropWriter
from app.frame_exchange import ProcessedFrame
from app.live_stats import EmotionShare, RateMeter, StageTimes
from app.session import SessionRecorder
from app.video_labels import VideoLabelTrack
from fer_models.agreement import agreement_from_intervals
from fer_models.comparison import compare_logs
from fer_models.errors import FerError
from fer_models.files import write_json
from fer_models.model_folder import FerModel
from fer_models.pipeline import PipelineSettings
from fer_models.session_log import write_label_intervals

SECOND_MODEL_DIR = "model_b"

LabelMode = Literal["live", "video"]
SCORE_INTERVAL_S = 1.0


@dataclass
class TimelinePoint:
    t_sec: float
    pred: str  # "" when unstable / no face
    manual: str
    pred_b: str | None = None  # the second model's label ("" unstable), None when no second model ran


class LiveSession:
    def __init__(self, recorder: SessionRecorder, kind: str, fps: float, t0: float,
                 track: VideoLabelTrack | None = None, label_mode: LabelMode = "live",
                 track_b: VideoLabelTrack | None = None):
        self.recorder = recorder
        self.kind = kind  # "camera" or "video"
        self.fps = fps
        self.t0 = t0  # perf_counter() at the session clock's zero (cameras)
        self.track = track  # rater A: the manual labels of per_frame.csv
        self.track_b = track_b  # rater B of the same video (saved as its own file)
        self.paint_track = track  # the track the keys paint (the controller switches it between raters)
        self.second: SessionRecorder | None = None  # the second model's log (model_b/), while one runs
        self.label_mode: LabelMode = label_mode if track is not None else "live"
        self.classes = recorder.model.classes
        self.rate = RateMeter()
        self.stage_times = StageTimes()
        self.share = EmotionShare(self.classes)
        self.timeline: deque[TimelinePoint] = deque(maxlen=20000)
        self.last_t = 0.0
        self.last_item: ProcessedFrame | None = None
        self.clips: ClipWriter | None = None
        self.crops: CropWriter | None = None
        self.clip_consent = False
        self.clip_problem = ""  # why clip saving stopped on its own (a write failed); the controller reports it
        self.final_score: dict | None = None
        self.second_score: dict | None = None  # the second model's final score, when one ran
        self.comparison_problem = ""  # why comparison.json was not written
        self.comparison_json: Path | None = None
        self._score_due = 0.0
        self._score_rows = -1

    @property
    def folder(self) -> Path:
        return self.recorder.folder

    @property
    def closed(self) -> bool:
        return self.recorder.closed

    def now(self) -> float:
        """Session time for an action happening now (never before the last logged frame)."""
        if self.kind == "camera":
            return max(self.last_t, time.perf_counter() - self.t0)
        return self.last_t

    # -- frames ----------------------------------------------------------------------------
    def ingest(self, items: list[ProcessedFrame]) -> ProcessedFrame | None:
        """Log every processed frame in order; return the newest (the one to paint)."""
        if self.recorder.closed:
            return None
        for item in items:
            cap, res = item.captured, item.result
            if self.label_mode == "video" and self.track is not None and cap.video_ms is not None:
                (self.paint_track or self.track).reach(cap.video_ms)
                self._set_manual(self.track.label_at(cap.video_ms), cap.t_sec, "video-labels")
            self.recorder.log_frame(cap.seq, cap.t_sec, res)
            second = item.extra[0] if item.extra else None
            if self.second is not None and second is not None:
                self.second.log_frame(cap.seq, cap.t_sec, second)
            self.last_t = max(self.last_t, cap.t_sec)
            self.rate.add(item.processed_at)
            self.stage_times.add(res.timings_ms, item.latency_ms)
            self.share.add(cap.t_sec, res.label)
            self.timeline.append(TimelinePoint(cap.t_sec, res.label or "", self.recorder.manual_label,
                                               None if second is None else (second.label or "")))
            if self.clips is not None:
                self._save_pixels(cap.seq, cap.t_sec, cap.image, res.crop)
            self.last_item = item
        return items[-1] if items else None

    # -- labels and settings ---------------------------------------------------------------
    @property
    def manual_label(self) -> str:
        return self.recorder.manual_label

    def hold_label(self, label: str, source: str) -> None:
        """Live mode: from now on every logged frame carries ``label`` ("" = none)."""
        self._set_manual(label, self.now(), source)

    def _set_manual(self, label: str, t: float, source: str) -> None:
        self.recorder.set_manual_label(label, t, source)
        if self.second is not None:  # the second model's log carries the same manual labels
            self.second.set_manual_label(label, t, source)

    # -- the second model ------------------------------------------------------------------
    def start_second(self, model: FerModel, settings: PipelineSettings) -> None:
        """Log the second model's predictions of the following frames in model_b/ (an ordinary session)."""
        self.stop_second()
        folder = self.folder / SECOND_MODEL_DIR
        n = 1
        while folder.exists():  # a second model opened again in the same session: model_b-2, ...
            n += 1
            folder = self.folder / f"{SECOND_MODEL_DIR}-{n}"
        folder.mkdir(parents=True)
        rec = SessionRecorder(folder, model, settings, self.recorder.source, self.recorder.scoring,
                              self.recorder.lag_ms, summary_name=f"{self.folder.name}/{folder.name}")
        rec.set_manual_label(self.recorder.manual_label, self.now(), "session")
        rec.log_action(self.now(), "compared_with", f"{self.recorder.model.model_id} ({self.folder})")
        self.second = rec
        self.log_action("second_model", f"{model.model_id} ({model.folder}) -> {folder.name}")

    def stop_second(self) -> dict | None:
        """Close the second model's log (score.json, its summary row next to the session's); its score."""
        rec, self.second = self.second, None
        if rec is None:
            return None
        self.log_action("second_model", f"off ({rec.model.model_id}, {rec.n_frames} frames)")
        return rec.close(self.now(), self.folder.parent / "demo_results_summary.csv")

    def log_action(self, kind: str, value: object = "") -> None:
        if not self.recorder.closed:
            self.recorder.log_action(self.now(), kind, value)

    def settings_changed(self, settings: PipelineSettings) -> None:
        if not self.recorder.closed:
            self.recorder.set_settings(settings, self.now())
            if self.second is not None:
                self.second.set_settings(settings, self.now())

    def set_lag(self, lag_ms: float) -> None:
        """The annotator lag of the live and final scores (both models')."""
        if not self.recorder.closed:
            self.recorder.set_lag(lag_ms, self.now())
            self._score_rows = -1  # rescore at the next refresh
            if self.second is not None:
                self.second.set_lag(lag_ms, self.now())

    # -- clips -----------------------------------------------------------------------------
    def start_clips(self) -> None:
        """Save the frames (clips/) and the model's face crops (crops/) from the next frame on.

        Only with the user's consent for this session; nothing else in the app writes pixels.
        """
        if not self.clip_consent:
            raise PermissionError("clip saving needs the user's consent for this session")
        if self.clips is None:
            self.clips = ClipWriter(self.folder, self.fps)
            self.crops = CropWriter(self.folder)
            self.clip_problem = ""
            self.log_action("clip_saving", "on")

    def _save_pixels(self, frame_index: int, t_sec: float, image, crop) -> None:
        """One frame into the clip and its face crop into crops/; a write that fails stops clip saving
        (the logs go on: a full disk must not end the session) and says why in ``clip_problem``."""
        assert self.clips is not None and self.crops is not None
        try:
            if image.size:
                self.clips.write(image)
            if crop is not None:
                self.crops.write(frame_index, t_sec, crop)
        except (OSError, ValueError) as exc:
            self.clip_problem = f"Clip saving stopped: {exc}"
            self.stop_clips(reason=str(exc))

    def stop_clips(self, reason: str = "") -> None:
        if self.clips is not None:
            clips, crops = self.clips, self.crops
            self.clips = self.crops = None
            problems = []
            for writer in (clips, crops):
                try:
                    if writer is not None:
                        writer.close()
                except OSError as exc:
                    problems.append(str(exc))
            why = "; ".join(([reason] if reason else []) + problems)
            self.log_action("clip_saving", f"off ({clips.frames} frames, {crops.frames if crops else 0} crops)"
                            + (f": {why}" if why else ""))

    # -- scoring ---------------------------------------------------------------------------
    def maybe_score(self, force: bool = False) -> dict | None:
        """Recompute the live score at most once per SCORE_INTERVAL_S (longer if scoring gets slow)."""
        now = time.perf_counter()
        n = self.recorder.n_frames
        if not force and (now < self._score_due or n == self._score_rows):
            return None
        start = time.perf_counter()
        score = self.recorder.score_live()
        cost = time.perf_counter() - start
        self._score_rows = n
        self._score_due = now + max(SCORE_INTERVAL_S, 20 * cost)  # never more than ~5% of the GUI
        return score

    def close(self, summary_csv: Path | None = None) -> dict | None:
        """End the session: stop clips, save both raters' labels and their agreement, the final score and
        its summary row, then the second model's log and comparison.json (each step after the session's
        own score, so a failure there costs none of it)."""
        if self.recorder.closed:
            return self.final_score
        self.stop_clips()
        if self.track is not None and self.track.intervals:
            path = write_label_intervals(self.folder / "video_labels.csv", self.track.intervals)
            self.log_action("labels_saved", str(path))
        if self.track_b is not None and self.track_b.intervals:
            path = write_label_intervals(self.folder / "video_labels_b.csv", self.track_b.intervals)
            self.log_action("labels_saved_b", str(path))
            if self.track is not None and self.track.intervals:
                agreement = agreement_from_intervals(self.track.intervals, self.track_b.intervals)
                write_json(self.folder / "agreement.json", {"a": "video_labels.csv", "b": "video_labels_b.csv",
                                                            **agreement})
                self.log_action("agreement", f"kappa {agreement['kappa']}")
        second = self.second
        second_frames = second.n_frames if second is not None else 0
        self.final_score = self.recorder.close(self.now(), summary_csv)
        if second is not None:
            self.second_score = second_final = self._close_second(second)
            if second_final is not None and second_frames == self.recorder.n_frames:
                try:
                    comparison = compare_logs(self.folder / "per_frame.csv", second.folder / "per_frame.csv")
                    write_json(self.folder / "comparison.json", {
                        "shared": "one capture and face detection per frame (the processing worker); crop, "
                                  "inference, calibration and smoothing per model", **comparison})
                    self.comparison_json = self.folder / "comparison.json"
                except FerError as exc:
                    self.comparison_problem = str(exc)
            elif second_final is not None:
                self.comparison_problem = (f"the second model ran on {second_frames} of the "
                                           f"{self.recorder.n_frames} frames; comparison.json needs both on every "
                                           "frame (open it before the session starts)")
        return self.final_score

    def _close_second(self, rec: SessionRecorder) -> dict | None:
        self.second = None
        try:
            return rec.close(self.recorder.logger.last_time_sec, self.folder.parent / "demo_results_summary.csv")
        except (OSError, FerError) as exc:
            self.comparison_problem = f"the second model's log could not be finished: {exc}"
            return rec.final_score
