"""Manual labels tied to video time, for labeling recorded files frame-accurately.

The track is a set of non-overlapping ``[start_ms, end_ms)`` intervals (the
``start_ms,end_ms,label`` file of fer_models.session_log). A key press sets the
label of the frame on screen and of every frame reached after it by playing or
stepping forward, until the next key; ``0``/``c`` ends the painting without
erasing what comes later, and ``delete_at`` removes one segment. Painting over
labelled video overwrites it, which is how a file is re-labelled. A seek or a
backward step ends the painting, so a jump never smears a label across video
nobody watched.

Boundaries sit on frame start times rounded down to 1 µs, so a labels file
written with 3 decimals gives the same frame-by-frame labels when it is loaded
again, here or in the headless replay (which looks labels up at frame start
times).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from fer_models.classes import FER7
from fer_models.session_log import LabelInterval, label_at, read_label_intervals, write_label_intervals


def frame_boundary_ms(t_ms: float) -> float:
    """A boundary placed at a frame's start time, rounded down to 0.001 ms (what the file stores)."""
    return math.floor(t_ms * 1000.0 + 1e-6) / 1000.0


class VideoLabelTrack:
    def __init__(self, frame_ms: float, classes: Sequence[str] = FER7):
        if frame_ms <= 0:
            raise ValueError("frame_ms must be positive")
        self.frame_ms = float(frame_ms)
        self.classes = list(classes)
        self.intervals: list[LabelInterval] = []
        self.held = ""  # label being painted, "" when none
        self._paint_start: float | None = None
        self._cursor: float | None = None  # start time of the frame on screen
        self._painted_end = 0.0  # end of what the held label has painted so far

    # -- queries ---------------------------------------------------------------------------
    def label_at(self, t_ms: float) -> str:
        return label_at(self.intervals, t_ms)

    def interval_at(self, t_ms: float) -> LabelInterval | None:
        for r in self.intervals:
            if r.start_ms <= t_ms < r.end_ms:
                return r
        return None

    # -- editing ---------------------------------------------------------------------------
    def set_range(self, start_ms: float, end_ms: float, label: str) -> None:
        """Overwrite ``[start_ms, end_ms)`` with ``label`` ("" erases); neighbours with the same label merge."""
        if end_ms <= start_ms:
            return
        out: list[LabelInterval] = []
        for r in self.intervals:
            if r.end_ms <= start_ms or r.start_ms >= end_ms:
                out.append(r)
                continue
            if r.start_ms < start_ms:
                out.append(LabelInterval(r.start_ms, start_ms, r.label))
            if r.end_ms > end_ms:
                out.append(LabelInterval(end_ms, r.end_ms, r.label))
        if label:
            out.append(LabelInterval(start_ms, end_ms, label))
        out.sort(key=lambda r: r.start_ms)
        merged: list[LabelInterval] = []
        for r in out:
            if merged and merged[-1].label == r.label and abs(merged[-1].end_ms - r.start_ms) < 1e-9:
                merged[-1] = LabelInterval(merged[-1].start_ms, r.end_ms, r.label)
            else:
                merged.append(r)
        self.intervals = merged

    def press(self, label: str, frame_ms: float) -> None:
        """A label key while the frame starting at ``frame_ms`` is on screen."""
        start = frame_boundary_ms(frame_ms)
        end = frame_boundary_ms(frame_ms + self.frame_ms)
        if self.held and self._paint_start is not None and self._paint_start < start:
            # the old label ends before this frame; the frame on screen, which it already
            # painted, gets the new key's label (none for 0/c)
            self.set_range(start, max(end, self._painted_end), "")
        self.held = label
        self._cursor = frame_ms
        if label:
            self._paint_start = start
            self._paint_to(end)
        else:
            self._paint_start = None

    def _paint_to(self, end_ms: float) -> None:
        assert self._paint_start is not None
        self.set_range(self._paint_start, end_ms, self.held)
        self._painted_end = end_ms

    def moved_to(self, frame_ms: float) -> None:
        """The frame on screen changed. Forward by at most a few frames extends the painting;
        anything else (a seek, a step back) ends it."""
        prev = self._cursor
        self._cursor = frame_ms
        if not self.held or self._paint_start is None or prev is None:
            return
        if prev < frame_ms <= prev + 3.5 * self.frame_ms:
            self._paint_to(frame_boundary_ms(frame_ms + self.frame_ms))
        elif frame_ms != prev:
            self.release()

    def reach(self, frame_ms: float) -> None:
        """A frame at ``frame_ms`` is being logged: extend the painting to it if the cursor is behind.

        Position updates and results travel on different queues, so a result can be
        logged before the position of its frame arrived; never moves backwards.
        """
        if self._cursor is not None and frame_ms > self._cursor:
            self.moved_to(frame_ms)

    def release(self) -> None:
        self.held = ""
        self._paint_start = None

    def delete_at(self, t_ms: float) -> LabelInterval | None:
        r = self.interval_at(t_ms)
        if r is not None:
            self.release()
            self.set_range(r.start_ms, r.end_ms, "")
        return r

    # -- files -----------------------------------------------------------------------------
    def load(self, path: str | Path) -> None:
        """Replace the track with a ``start_ms,end_ms,label`` file (ArtifactError if it is bad)."""
        intervals = read_label_intervals(path, self.classes)
        self.release()
        self.intervals = [r for r in intervals if r.label]

    def save(self, path: str | Path) -> Path:
        return write_label_intervals(path, self.intervals)
