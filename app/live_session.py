"""One running session as the GUI thread sees it, without Qt.

It turns processed frames into per_frame rows (with the manual label that
applies to each frame), keeps the running figures and the timeline, decides
when the live score is recomputed, and ends the session with the final score.
Live mode (camera, or a file treated as live): the held label applies to every
frame logged after the key. Video-label mode: each frame gets the label of its
own video time from the VideoLabelTrack, so labels are frame-accurate.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.clip_writer import ClipWriter
from app.frame_exchange import ProcessedFrame
from app.live_stats import EmotionShare, RateMeter, StageTimes
from app.session import SessionRecorder
from app.video_labels import VideoLabelTrack
from fer_models.pipeline import PipelineSettings
from fer_models.session_log import write_label_intervals

LabelMode = Literal["live", "video"]
SCORE_INTERVAL_S = 1.0


@dataclass
class TimelinePoint:
    t_sec: float
    pred: str  # "" when unstable / no face
    manual: str


class LiveSession:
    def __init__(self, recorder: SessionRecorder, kind: str, fps: float, t0: float,
                 track: VideoLabelTrack | None = None, label_mode: LabelMode = "live"):
        self.recorder = recorder
        self.kind = kind  # "camera" or "video"
        self.fps = fps
        self.t0 = t0  # perf_counter() at the session clock's zero (cameras)
        self.track = track
        self.label_mode: LabelMode = label_mode if track is not None else "live"
        self.classes = recorder.model.classes
        self.rate = RateMeter()
        self.stage_times = StageTimes()
        self.share = EmotionShare(self.classes)
        self.timeline: deque[TimelinePoint] = deque(maxlen=20000)
        self.last_t = 0.0
        self.last_item: ProcessedFrame | None = None
        self.clips: ClipWriter | None = None
        self.clip_consent = False
        self.final_score: dict | None = None
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
                self.track.reach(cap.video_ms)
                self.recorder.set_manual_label(self.track.label_at(cap.video_ms), cap.t_sec, source="video-labels")
            self.recorder.log_frame(cap.seq, cap.t_sec, res)
            self.last_t = max(self.last_t, cap.t_sec)
            self.rate.add(item.processed_at)
            self.stage_times.add(res.timings_ms, item.latency_ms)
            self.share.add(cap.t_sec, res.label)
            self.timeline.append(TimelinePoint(cap.t_sec, res.label or "", self.recorder.manual_label))
            if self.clips is not None and cap.image.size:
                self.clips.write(cap.image)
            self.last_item = item
        return items[-1] if items else None

    # -- labels and settings ---------------------------------------------------------------
    @property
    def manual_label(self) -> str:
        return self.recorder.manual_label

    def hold_label(self, label: str, source: str) -> None:
        """Live mode: from now on every logged frame carries ``label`` ("" = none)."""
        self.recorder.set_manual_label(label, self.now(), source)

    def log_action(self, kind: str, value: object = "") -> None:
        if not self.recorder.closed:
            self.recorder.log_action(self.now(), kind, value)

    def settings_changed(self, settings: PipelineSettings) -> None:
        if not self.recorder.closed:
            self.recorder.set_settings(settings, self.now())

    # -- clips -----------------------------------------------------------------------------
    def start_clips(self) -> None:
        if not self.clip_consent:
            raise PermissionError("clip saving needs the user's consent for this session")
        if self.clips is None:
            self.clips = ClipWriter(self.folder, self.fps)
            self.log_action("clip_saving", "on")

    def stop_clips(self) -> None:
        if self.clips is not None:
            self.clips.close()
            self.log_action("clip_saving", f"off ({self.clips.frames} frames)")
            self.clips = None

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
        """End the session: stop clips, save the video labels, final score, demo_results_summary.csv row."""
        if self.recorder.closed:
            return self.final_score
        self.stop_clips()
        if self.track is not None and self.track.intervals:
            path = write_label_intervals(self.folder / "video_labels.csv", self.track.intervals)
            self.log_action("labels_saved", str(path))
        self.final_score = self.recorder.close(self.now(), summary_csv)
        return self.final_score
