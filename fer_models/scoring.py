"""Transition-fair scoring of a labelled session (DESIGN.md §5).

Frames right after a manual label change are excluded, because neither a human
nor a smoothed model switches instantly; segments shorter than ``min_hold`` are
not scored at all. The app's live panel and ``fer-score`` both call
``score_session`` so the numbers can never drift apart.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from fer_models.classes import FER7, UNSTABLE, canonical_class_name
from fer_models.session_log import CsvLogWriter

SCORE_KEYS = ("accuracy", "macro_f1", "jitter_per_min", "time_to_lock_ms_median", "lock_rate",
              "n_scored_frames", "n_segments")


class ScoringInputError(ValueError):
    """Bad session data; ``row`` is the 0-based data row at fault (None when not row-specific)."""

    def __init__(self, message: str, row: int | None = None):
        self.row = row
        super().__init__(message)


def _normalise_labels(values: Sequence[str], classes: Sequence[str], what: str) -> list[str | None]:
    out: list[str | None] = []
    for i, v in enumerate(values):
        s = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()
        if s == "" or s.lower() == UNSTABLE:
            out.append(None)
            continue
        try:
            out.append(canonical_class_name(s, classes))
        except ValueError:
            raise ScoringInputError(f"row {i + 1}: unknown {what} {s!r}; expected one of {list(classes)}", i) from None
    return out


def label_segments(manual: Sequence[str | None]) -> list[tuple[int, int, str | None]]:
    """Maximal runs of equal manual labels as (first_row, last_row, label), the empty label included."""
    segs = []
    start = 0
    for i in range(1, len(manual) + 1):
        if i == len(manual) or manual[i] != manual[start]:
            segs.append((start, i - 1, manual[start]))
            start = i
    return segs


def score_session(time_sec: Sequence[float], pred: Sequence[str], manual: Sequence[str],
                  min_hold_ms: float = 600, exclusion_ms: float = 250, lock_ms: float = 500,
                  classes: Sequence[str] = FER7) -> dict:
    """Accuracy, macro-F1, jitter/min, time-to-lock median (ms), lock rate and counts of one session.

    ``pred`` and ``manual`` hold class names (any case); ``(unstable)`` or empty means
    no prediction / no manual label. Values that cannot be computed are None.
    """
    t = np.asarray([float(x) for x in time_sec], dtype=np.float64)
    if len(pred) != len(t) or len(manual) != len(t):
        raise ScoringInputError(f"time_sec, pred_label and manual_label have different lengths "
                                f"({len(t)}, {len(pred)}, {len(manual)})")
    bad = np.flatnonzero(~np.isfinite(t))
    if len(bad):
        raise ScoringInputError(f"row {bad[0] + 1}: time_sec is not a finite number", int(bad[0]))
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise ScoringInputError(f"row {i + 1}: time goes backwards ({t[i - 1]:.3f} s -> {t[i]:.3f} s)", i)
    p = _normalise_labels(pred, classes, "pred_label")
    m = _normalise_labels(manual, classes, "manual_label")

    min_hold, excl, lock = min_hold_ms / 1000.0, exclusion_ms / 1000.0, lock_ms / 1000.0
    eps = 1e-9
    scored_rows: list[int] = []
    lock_times: list[float] = []
    n_segments = 0
    for first, last, label in label_segments(m):
        if label is None:
            continue
        t0, t1 = t[first], t[last]
        if t1 - t0 < min_hold - eps:
            continue
        n_segments += 1
        rows = np.arange(first, last + 1)
        seg_t = t[first:last + 1]
        scored_rows += [int(r) for r in rows if t0 + excl - eps <= t[r] <= t1 - excl + eps]
        # time-to-lock: the earliest row time ts with ts + lock <= t_last such that every row
        # with time in [ts, ts + lock] predicts the label; prefix sums of misses make it linear.
        miss = np.concatenate([[0], np.cumsum([p[r] != label for r in rows])])
        for j, ts in enumerate(seg_t):
            if ts + lock > t1 + eps:
                break
            lo = int(np.searchsorted(seg_t, ts - eps, side="left"))
            hi = int(np.searchsorted(seg_t, ts + lock + eps, side="right"))
            if miss[hi] - miss[lo] == 0:
                lock_times.append(float(ts - t0))
                break

    n_scored = len(scored_rows)
    accuracy = macro = None
    if n_scored:
        y = [m[r] for r in scored_rows]
        yhat = [p[r] for r in scored_rows]
        accuracy = float(np.mean([a == b for a, b in zip(y, yhat)]))
        f1s = []
        for c in sorted(set(y), key=list(classes).index):
            tp = sum(1 for a, b in zip(y, yhat) if a == c and b == c)
            fp = sum(1 for a, b in zip(y, yhat) if a != c and b == c)
            fn = sum(1 for a, b in zip(y, yhat) if a == c and b != c)
            f1s.append(2 * tp / (2 * tp + fp + fn))
        macro = float(np.mean(f1s))

    jitter = None
    if len(t) >= 2 and t[-1] > t[0]:
        seq = [x for x in p if x is not None]
        changes = sum(1 for a, b in zip(seq, seq[1:]) if a != b)
        jitter = changes / ((t[-1] - t[0]) / 60.0)

    return {
        "accuracy": accuracy,
        "macro_f1": macro,
        "jitter_per_min": jitter,
        "time_to_lock_ms_median": float(np.median(lock_times) * 1000.0) if lock_times else None,
        "lock_rate": (len(lock_times) / n_segments) if n_segments else None,
        "n_scored_frames": n_scored,
        "n_segments": n_segments,
    }


DEMO_SUMMARY_COLUMNS = ("scored_at", "session", "per_frame_csv", "model_id", "alpha", "delta", "window",
                        "window_ms", "min_count", "min_hold_ms", "exclusion_ms", "lock_ms") + SCORE_KEYS


def append_demo_summary(path, row: dict) -> None:
    """Append one scored session to demo_results_summary.csv (header written once, columns fixed)."""
    unknown = set(row) - set(DEMO_SUMMARY_COLUMNS)
    if unknown:
        raise KeyError(f"unknown summary columns {sorted(unknown)}")
    writer = CsvLogWriter(path, DEMO_SUMMARY_COLUMNS)
    try:
        writer.write(row)
    finally:
        writer.close()
