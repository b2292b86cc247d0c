"""Running figures the window shows: FPS, per-stage milliseconds, the share of time per class and the live score.

Plain Python, fed on the GUI thread with every processed frame, so the numbers
describe what was processed and logged, not what was painted.
"""

from __future__ import annotations

from collections import deque
from typing import Mapping, Sequence

import numpy as np

from fer_models.classes import FER7
from fer_models.scoring import DEFAULT_SCORING, ScoreAccumulator, ScoringInputError, ScoringParams
from fer_models.session_log import STAGES

UNSTABLE_KEY = ""  # the share of time with no stable label (or no face)


class RateMeter:
    """Events per second over the last ``span`` seconds of their own timestamps."""

    def __init__(self, span: float = 2.0):
        self.span = span
        self._times: deque[float] = deque()

    def add(self, t: float) -> None:
        self._times.append(t)
        while self._times and self._times[0] < t - self.span:
            self._times.popleft()

    def rate(self) -> float:
        if len(self._times) < 2:
            return 0.0
        dt = self._times[-1] - self._times[0]
        return (len(self._times) - 1) / dt if dt > 0 else 0.0


class StageTimes:
    """Median of each pipeline stage's milliseconds over the last ``n`` frames, plus capture latency."""

    def __init__(self, n: int = 30):
        self._rows: dict[str, deque[float]] = {k: deque(maxlen=n) for k in (*STAGES, "latency")}

    def add(self, timings_ms: Mapping[str, float], latency_ms: float | None = None) -> None:
        for k in STAGES:
            if k in timings_ms:
                self._rows[k].append(float(timings_ms[k]))
        if latency_ms is not None:
            self._rows["latency"].append(float(latency_ms))

    def medians(self) -> dict[str, float]:
        return {k: float(np.median(v)) for k, v in self._rows.items() if v}


class EmotionShare:
    """Share of session time per predicted (smoothed) class.

    Each frame's label owns the time until the next processed frame; gaps longer
    than ``max_gap`` seconds (pauses, seeks) count only ``max_gap``, so a paused
    video does not inflate one class.
    """

    def __init__(self, classes: Sequence[str], max_gap: float = 0.5):
        self.classes = list(classes)
        self.max_gap = max_gap
        self.seconds: dict[str, float] = {c: 0.0 for c in (*self.classes, UNSTABLE_KEY)}
        self._last: tuple[float, str] | None = None

    def add(self, t_sec: float, label: str | None) -> None:
        key = label if label in self.seconds else UNSTABLE_KEY
        if self._last is not None:
            dt = min(max(0.0, t_sec - self._last[0]), self.max_gap)
            self.seconds[self._last[1]] += dt
        self._last = (t_sec, key)

    def total(self) -> float:
        return sum(self.seconds.values())

    def shares(self, include_unstable: bool = True) -> dict[str, float]:
        """Fractions of the counted time; without ``include_unstable`` the class shares sum to 1."""
        keys = [*self.classes, UNSTABLE_KEY] if include_unstable else self.classes
        total = sum(self.seconds[k] for k in keys)
        return {k: (self.seconds[k] / total if total > 0 else 0.0) for k in keys}


class LiveScore:
    """The live transition-fair score, kept up to date row by row.

    Each logged row goes through a ScoreAccumulator (closed label segments are reduced to fixed
    tallies), so reading the score costs the same at minute 1 and at hour 2, where re-scoring every
    row grew with the session. ``result()`` equals ``score_session`` / fer-score on the same rows.
    A row the scoring refuses never stops the logging: ``result()`` raises its error instead, as
    ``score_session`` would on those rows.
    """

    def __init__(self, params: ScoringParams = DEFAULT_SCORING, classes: Sequence[str] = FER7):
        self.params = params
        self._acc = ScoreAccumulator(params.min_hold_ms, params.exclusion_ms, params.lock_ms, classes)
        self._result: dict | None = None
        self.error: ScoringInputError | None = None

    @property
    def n_rows(self) -> int:
        return self._acc.n_rows

    def add(self, time_sec: float, pred: str | None, manual: str | None) -> None:
        if self.error is not None:
            return
        try:
            self._acc.add(time_sec, pred, manual)
        except ScoringInputError as exc:
            self.error = exc
        self._result = None

    def result(self) -> dict:
        """The score of the rows so far (a fresh dict; recomputed only after new rows)."""
        if self.error is not None:
            raise self.error
        if self._result is None:
            self._result = self._acc.result()
        return dict(self._result)
