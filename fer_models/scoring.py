"""Transition-fair scoring of a labelled session (DESIGN.md §5).

Frames right after a manual label change are excluded, because neither a human
nor a smoothed model switches instantly; segments shorter than ``min_hold`` are
not scored at all.

``score_session`` is the reference: one straightforward pass over all rows.
``ScoreAccumulator`` computes the same result (every key, float for float) from
rows fed one at a time, at a cost per row that does not grow with the session;
the app's live panel and ``fer-score`` (which streams the CSV) use it, and a
test compares the two on many random timelines, so the numbers cannot drift
apart.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from fer_models.classes import FER7, UNSTABLE, canonical_class_name
from fer_models.errors import ArtifactError
from fer_models.session_log import CsvLogWriter

@dataclass(frozen=True)
class ScoringParams:
    """The thresholds of transition-fair scoring (DESIGN.md §5), in milliseconds; the defaults are the protocol's.

    Every default in the system (score_session, ScoreAccumulator, fer-score, the app's live and final
    scores, the demo_results_summary.csv row) comes from ``DEFAULT_SCORING``.
    """

    min_hold_ms: float = 600.0  # shortest scored label segment
    exclusion_ms: float = 250.0  # rows excluded after the start and before the end of a segment
    lock_ms: float = 500.0  # stable correct prediction needed to count a segment as locked

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


DEFAULT_SCORING = ScoringParams()

SCORE_KEYS = ("accuracy", "macro_f1", "jitter_per_min", "time_to_lock_ms_median", "lock_rate",
              "n_scored_frames", "n_segments")


class ScoringInputError(ValueError):
    """Bad session data; ``row`` is the 0-based data row at fault (None when not row-specific)."""

    def __init__(self, message: str, row: int | None = None):
        self.row = row
        super().__init__(message)


def _normalise_one(v, classes: Sequence[str], what: str, i: int) -> str | None:
    s = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v).strip()
    if s == "" or s.lower() == UNSTABLE:
        return None
    try:
        return canonical_class_name(s, classes)
    except ValueError:
        raise ScoringInputError(f"row {i + 1}: unknown {what} {s!r}; expected one of {list(classes)}", i) from None


def _normalise_labels(values: Sequence[str], classes: Sequence[str], what: str) -> list[str | None]:
    return [_normalise_one(v, classes, what, i) for i, v in enumerate(values)]


def label_segments(manual: Sequence[str | None]) -> list[tuple[int, int, str | None]]:
    """Maximal runs of equal manual labels as (first_row, last_row, label), the empty label included."""
    segs = []
    start = 0
    for i in range(1, len(manual) + 1):
        if i == len(manual) or manual[i] != manual[start]:
            segs.append((start, i - 1, manual[start]))
            start = i
    return segs


def _check_times(t: np.ndarray) -> None:
    """Refuse, naming the row, a time column with a non-finite value or one that goes backwards."""
    bad = np.flatnonzero(~np.isfinite(t))
    if len(bad):
        raise ScoringInputError(f"row {bad[0] + 1}: time_sec is not a finite number", int(bad[0]))
    back = np.flatnonzero(np.diff(t) < 0)
    if len(back):
        i = int(back[0]) + 1
        raise ScoringInputError(f"row {i + 1}: time goes backwards ({t[i - 1]:.3f} s -> {t[i]:.3f} s)", i)


def _scored_segments(t: np.ndarray, m: Sequence[str | None], min_hold_ms: float, exclusion_ms: float):
    """The scored segments of DESIGN.md §5, as (first_row, last_row, label, scored_rows).

    A segment is scored when it has a label and lasts at least ``min_hold_ms``; its scored rows are
    those with time in [first + exclusion, last - exclusion] (1e-9 s tolerance). The one definition
    of which rows count, shared by ``score_session`` and ``segment_tallies``.
    """
    min_hold, excl, eps = min_hold_ms / 1000.0, exclusion_ms / 1000.0, 1e-9
    for first, last, label in label_segments(m):
        if label is None:
            continue
        t0, t1 = t[first], t[last]
        if t1 - t0 < min_hold - eps:
            continue
        rows = [r for r in range(first, last + 1) if t0 + excl - eps <= t[r] <= t1 - excl + eps]
        yield first, last, label, rows


def _session_arrays(time_sec: Sequence[float], pred: Sequence[str], manual: Sequence[str],
                    classes: Sequence[str]) -> tuple[np.ndarray, list[str | None], list[str | None]]:
    """Checked times and normalised predicted / manual labels, the input of every session metric."""
    t = np.asarray([float(x) for x in time_sec], dtype=np.float64)
    if len(pred) != len(t) or len(manual) != len(t):
        raise ScoringInputError(f"time_sec, pred_label and manual_label have different lengths "
                                f"({len(t)}, {len(pred)}, {len(manual)})")
    _check_times(t)
    p = _normalise_labels(pred, classes, "pred_label")
    m = _normalise_labels(manual, classes, "manual_label")
    return t, p, m


def score_session(time_sec: Sequence[float], pred: Sequence[str], manual: Sequence[str],
                  min_hold_ms: float = DEFAULT_SCORING.min_hold_ms, exclusion_ms: float = DEFAULT_SCORING.exclusion_ms,
                  lock_ms: float = DEFAULT_SCORING.lock_ms, classes: Sequence[str] = FER7) -> dict:
    """Accuracy, macro-F1, jitter/min, time-to-lock median (ms), lock rate and counts of one session.

    ``pred`` and ``manual`` hold class names (any case); ``(unstable)`` or empty means
    no prediction / no manual label. Values that cannot be computed are None.
    """
    t, p, m = _session_arrays(time_sec, pred, manual, classes)

    lock = lock_ms / 1000.0
    eps = 1e-9
    scored_rows: list[int] = []
    lock_times: list[float] = []
    n_segments = 0
    for first, last, label, seg_scored in _scored_segments(t, m, min_hold_ms, exclusion_ms):
        n_segments += 1
        t0, t1 = t[first], t[last]
        rows = np.arange(first, last + 1)
        seg_t = t[first:last + 1]
        scored_rows += seg_scored
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
        jitter = float(changes / ((t[-1] - t[0]) / 60.0))

    return {
        "accuracy": accuracy,
        "macro_f1": macro,
        "jitter_per_min": jitter,
        "time_to_lock_ms_median": float(np.median(lock_times) * 1000.0) if lock_times else None,
        "lock_rate": (len(lock_times) / n_segments) if n_segments else None,
        "n_scored_frames": n_scored,
        "n_segments": n_segments,
    }


def scored_rows(time_sec: Sequence[float], manual: Sequence[str], min_hold_ms: float = DEFAULT_SCORING.min_hold_ms,
                exclusion_ms: float = DEFAULT_SCORING.exclusion_ms, classes: Sequence[str] = FER7) -> list[int]:
    """The 0-based rows that transition-fair scoring scores (those of ``score_session``), in order."""
    t = np.asarray([float(x) for x in time_sec], dtype=np.float64)
    if len(manual) != len(t):
        raise ScoringInputError(f"time_sec and manual_label have different lengths ({len(t)}, {len(manual)})")
    _check_times(t)
    m = _normalise_labels(manual, classes, "manual_label")
    return [r for *_, rows in _scored_segments(t, m, min_hold_ms, exclusion_ms) for r in rows]


@dataclass(frozen=True)
class SegmentTallies:
    """Per scored segment, the counts that accuracy and macro-F1 are made of (DESIGN.md §5).

    Only segments with at least one scored row are kept (the others add nothing to either metric).
    ``label`` (S,) is the segment's class index, ``n_scored`` and ``n_correct`` (S,) its scored rows and
    the correct ones, ``pred_counts`` (S, K) its scored rows predicting each class (an unstable row
    predicts none), ``first_row`` (S,) the segment's first row. Summing them with weights (how often
    a bootstrap resample drew each segment) gives the metrics of the resample: ``metrics``.
    """

    classes: tuple[str, ...]
    label: np.ndarray
    n_scored: np.ndarray
    n_correct: np.ndarray
    pred_counts: np.ndarray
    first_row: np.ndarray

    def metrics(self, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy and macro-F1 for each row of ``weights`` (R, S) (default: every segment once).

        With weights all one this is ``score_session``'s accuracy and macro-F1 on the same rows
        (macro-F1 over the classes that occur as manual labels among the weighted scored rows).
        Rows of weights that select no scored row give NaN.
        """
        s = len(self.label)
        w = np.ones((1, s)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=np.float64))
        k = len(self.classes)
        onehot = np.zeros((s, k))
        onehot[np.arange(s), self.label] = 1.0
        n = w @ self.n_scored
        correct = w @ self.n_correct
        true = w @ (onehot * self.n_scored[:, None])
        tp = w @ (onehot * self.n_correct[:, None])
        pred = w @ self.pred_counts
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = correct / n
            f1 = np.where(true > 0, 2 * tp / np.maximum(true + pred, 1e-300), np.nan)
            present = (true > 0).sum(axis=1)
            macro = np.where(present > 0, np.nansum(f1, axis=1) / np.maximum(present, 1), np.nan)
        return accuracy, macro


def segment_tallies(time_sec: Sequence[float], pred: Sequence[str], manual: Sequence[str],
                    min_hold_ms: float = DEFAULT_SCORING.min_hold_ms,
                    exclusion_ms: float = DEFAULT_SCORING.exclusion_ms,
                    classes: Sequence[str] = FER7) -> SegmentTallies:
    """The per-segment counts behind accuracy and macro-F1, for a bootstrap over label segments.

    Scored segments and rows are chosen by the same code as ``score_session`` (``_scored_segments``),
    so a resample's metrics are the protocol's metrics of the resampled segments.
    """
    t, p, m = _session_arrays(time_sec, pred, manual, classes)
    index = {c: i for i, c in enumerate(classes)}
    label, n_scored, n_correct, counts, first_rows = [], [], [], [], []
    for first, _last, lab, rows in _scored_segments(t, m, min_hold_ms, exclusion_ms):
        if not rows:
            continue
        row_counts = np.zeros(len(classes))
        correct = 0
        for r in rows:
            if p[r] is not None:
                row_counts[index[p[r]]] += 1
            correct += p[r] == lab
        label.append(index[lab])
        n_scored.append(len(rows))
        n_correct.append(correct)
        counts.append(row_counts)
        first_rows.append(first)
    return SegmentTallies(tuple(classes), np.asarray(label, dtype=np.int64), np.asarray(n_scored, dtype=np.float64),
                          np.asarray(n_correct, dtype=np.float64),
                          np.asarray(counts, dtype=np.float64).reshape(-1, len(classes)),
                          np.asarray(first_rows, dtype=np.int64))


_EPS = 1e-9  # the tolerance score_session uses for every time comparison


class _OpenSegment:
    """The segment being extended; a labelled one keeps its rows until it closes."""

    __slots__ = ("label", "t0", "t_last", "times", "preds", "miss", "next_row", "n_scored", "n_correct",
                 "pred_counts", "lock_j")

    def __init__(self, label: str | None, t0: float):
        self.label = label
        self.t0 = t0
        self.t_last = t0
        self.times: list[float] = []
        self.preds: list[str | None] = []
        self.miss: list[int] = [0]  # miss[i]: rows before row i whose prediction is not the label
        self.next_row = 0  # rows before this index are already sorted into scored / not scored
        self.n_scored = 0
        self.n_correct = 0
        self.pred_counts: dict[str, int] = {}  # class predictions among the scored rows
        self.lock_j = 0  # lock starts before this row are known to fail, for good


class ScoreAccumulator:
    """``score_session`` computed incrementally: ``add`` rows as they are logged, read ``result()`` any time.

    A closed segment leaves fixed tallies only (scored and correct rows, predictions per class,
    its lock time); the open segment keeps its own rows. Each row is sorted into scored / not
    scored once (when the segment's last time passes it by the exclusion), and each candidate
    lock start is rejected at most once (a window that holds a miss keeps it as rows arrive), so
    ``add`` costs O(log n) amortised and ``result()`` O(classes + log segments), whatever the
    session's length. The result equals ``score_session`` on the same rows, every key, float for
    float, the open segment scored as if it ended at the last row.
    """

    def __init__(self, min_hold_ms: float = DEFAULT_SCORING.min_hold_ms,
                 exclusion_ms: float = DEFAULT_SCORING.exclusion_ms, lock_ms: float = DEFAULT_SCORING.lock_ms,
                 classes: Sequence[str] = FER7):
        self.min_hold_ms, self.exclusion_ms, self.lock_ms = min_hold_ms, exclusion_ms, lock_ms
        self.classes = list(classes)
        self._min_hold, self._excl, self._lock = min_hold_ms / 1000.0, exclusion_ms / 1000.0, lock_ms / 1000.0
        self._cache: dict[tuple[str, object], str | None] = {}
        self.n_rows = 0
        self._t_first = self._t_last = 0.0
        self._last_class: str | None = None  # jitter: the last class prediction and the changes so far
        self._changes = 0
        self._n_segments = 0  # closed scored segments and their tallies
        self._n_scored = 0
        self._n_correct = 0
        self._true = dict.fromkeys(self.classes, 0)  # scored rows per manual label
        self._tp = dict.fromkeys(self.classes, 0)
        self._pred = dict.fromkeys(self.classes, 0)  # scored rows per predicted class
        self._locks: list[float] = []  # lock times of the closed segments, sorted
        self._seg: _OpenSegment | None = None

    def _label(self, value, what: str) -> str | None:
        try:
            return self._cache[(what, value)]
        except (KeyError, TypeError):
            pass
        out = _normalise_one(value, self.classes, what, self.n_rows)
        try:
            self._cache[(what, value)] = out
        except TypeError:
            pass
        return out

    def add(self, time_sec: float, pred: str | None, manual: str | None) -> None:
        """Append one row; a bad row raises ScoringInputError (``row``: its 0-based index) and is not kept."""
        i = self.n_rows
        t = float(time_sec)
        if not math.isfinite(t):
            raise ScoringInputError(f"row {i + 1}: time_sec is not a finite number", i)
        if i and t < self._t_last:
            raise ScoringInputError(f"row {i + 1}: time goes backwards ({self._t_last:.3f} s -> {t:.3f} s)", i)
        p = self._label(pred, "pred_label")
        m = self._label(manual, "manual_label")

        if i == 0:
            self._t_first = t
        self._t_last = t
        self.n_rows = i + 1
        if p is not None:
            if self._last_class is not None and p != self._last_class:
                self._changes += 1
            self._last_class = p

        seg = self._seg
        if seg is None or m != seg.label:
            if seg is not None:
                self._close(seg)
            seg = self._seg = _OpenSegment(m, t)
        seg.t_last = t
        if m is None:
            return  # unlabelled rows count for jitter only
        times, preds = seg.times, seg.preds
        times.append(t)
        preds.append(p)
        seg.miss.append(seg.miss[-1] + (p != m))
        # scored rows: time in [t0 + exclusion, t_last - exclusion]; t_last only grows, so rows join in order
        lo, hi = seg.t0 + self._excl - _EPS, t - self._excl + _EPS
        j, n = seg.next_row, len(times)
        while j < n and times[j] <= hi:
            if lo <= times[j]:
                pj = preds[j]
                seg.n_scored += 1
                if pj == m:
                    seg.n_correct += 1
                if pj is not None:
                    seg.pred_counts[pj] = seg.pred_counts.get(pj, 0) + 1
            j += 1
        seg.next_row = j

    def extend(self, time_sec: Iterable[float], pred: Iterable[str], manual: Iterable[str]) -> None:
        for t, p, m in zip(time_sec, pred, manual):
            self.add(t, p, m)

    def _scored(self, seg: _OpenSegment | None) -> bool:
        return seg is not None and seg.label is not None and not (seg.t_last - seg.t0 < self._min_hold - _EPS)

    def _lock_time(self, seg: _OpenSegment) -> float | None:
        """The segment's time-to-lock (s) as if it ended at its last row so far, or None."""
        times, miss, lock, t1 = seg.times, seg.miss, self._lock, seg.t_last
        j, n = seg.lock_j, len(times)
        found = None
        while j < n:
            ts = times[j]
            if ts + lock > t1 + _EPS:
                break
            lo = bisect_left(times, ts - _EPS, 0, j + 1)
            hi = bisect_right(times, ts + lock + _EPS, j)
            if miss[hi] == miss[lo]:
                found = ts - seg.t0  # may still fail if a miss arrives inside its window: checked again
                break
            j += 1  # this window holds a miss now and always will
        seg.lock_j = j
        return found

    def _close(self, seg: _OpenSegment) -> None:
        if not self._scored(seg):
            return
        self._n_segments += 1
        self._n_scored += seg.n_scored
        self._n_correct += seg.n_correct
        self._true[seg.label] += seg.n_scored
        self._tp[seg.label] += seg.n_correct
        for c, k in seg.pred_counts.items():
            self._pred[c] += k
        lk = self._lock_time(seg)
        if lk is not None:
            insort(self._locks, lk)

    def result(self) -> dict:
        """The score of the rows so far: equal to ``score_session`` on them (the same keys and values)."""
        seg = self._seg
        open_scored = self._scored(seg)
        n_segments, n_scored, n_correct = self._n_segments, self._n_scored, self._n_correct
        locks_n, open_lock = len(self._locks), None
        if open_scored:
            n_segments += 1
            n_scored += seg.n_scored
            n_correct += seg.n_correct
            open_lock = self._lock_time(seg)
            locks_n += open_lock is not None
        accuracy = macro = None
        if n_scored:
            accuracy = n_correct / n_scored
            f1s = []
            for c in self.classes:
                true, tp, pred = self._true[c], self._tp[c], self._pred[c]
                if open_scored:
                    pred += seg.pred_counts.get(c, 0)
                    if c == seg.label:
                        true += seg.n_scored
                        tp += seg.n_correct
                if true:
                    fp, fn = pred - tp, true - tp
                    f1s.append(2 * tp / (2 * tp + fp + fn))
            macro = float(np.mean(f1s))  # the reference's reduction, so the float is the same
        jitter = None
        if self.n_rows >= 2 and self._t_last > self._t_first:
            jitter = self._changes / ((self._t_last - self._t_first) / 60.0)
        median = _median_with(self._locks, open_lock)
        return {
            "accuracy": accuracy,
            "macro_f1": macro,
            "jitter_per_min": jitter,
            "time_to_lock_ms_median": float(median * 1000.0) if median is not None else None,
            "lock_rate": (locks_n / n_segments) if n_segments else None,
            "n_scored_frames": n_scored,
            "n_segments": n_segments,
        }


def _median_with(sorted_values: list[float], extra: float | None) -> float | None:
    """Median (as numpy computes it) of a sorted list plus one optional value, without copying the list."""
    n = len(sorted_values) + (extra is not None)
    if n == 0:
        return None
    if extra is None:
        def at(k):
            return sorted_values[k]
    else:
        pos = bisect_left(sorted_values, extra)

        def at(k):
            return sorted_values[k] if k < pos else (extra if k == pos else sorted_values[k - 1])
    if n % 2:
        return at(n // 2)
    return (at(n // 2 - 1) + at(n // 2)) / 2


def apply_lag(time_sec: Sequence[float], manual_labels: Sequence, lag_ms: float) -> list:
    """The manual labels shifted for an annotator reaction lag of ``lag_ms`` (DESIGN.md §5).

    With lag L, the manual label of the row at time t becomes the label the annotator held
    at t + L: the manual label of the *last* row whose time is <= t + L (a step function
    through the rows; times compare with the 1e-9 s tolerance scoring uses). Labels thus
    move earlier by L. A row whose t + L lies past the last row's time has no manual label
    (``""``); with a negative L, a row whose t + L lies before the first row has none either.
    ``lag_ms == 0`` returns the labels unchanged (the plain log, even where rows share a time).

    Hand-worked, rows at 0, 100, 200, 300 ms labelled A, A, B, B:
    L = 100 -> A, B, B, ""   (0+100 -> row 100 ms "A"; 100+100 -> "B"; 300+100 is past the end);
    L = 150 -> A, B, "", ""  (0+150 falls between rows 100 and 200: the row at 100 ms holds "A";
                              200+150 is past the end);
    L = 300 -> B, "", "", "".

    ``time_sec`` must be finite and non-decreasing (ScoringInputError otherwise); the returned list
    has one label per row, the original values where a label is kept.
    """
    labels = list(manual_labels)
    t = np.asarray([float(x) for x in time_sec], dtype=np.float64)
    if len(labels) != len(t):
        raise ScoringInputError(f"time_sec and manual_label have different lengths ({len(t)}, {len(labels)})")
    lag = float(lag_ms)
    if not math.isfinite(lag):
        raise ScoringInputError(f"lag_ms must be a finite number, got {lag_ms!r}")
    if lag == 0 or not len(t):
        return labels
    _check_times(t)
    target = t + lag / 1000.0
    src = np.searchsorted(t, target + _EPS, side="right") - 1
    keep = (src >= 0) & (target <= t[-1] + _EPS)
    return [labels[j] if ok else "" for j, ok in zip(src.tolist(), keep.tolist())]


def score_lags(time_sec: Sequence[float], pred: Sequence, manual: Sequence, lags_ms: Iterable[float],
               min_hold_ms: float = DEFAULT_SCORING.min_hold_ms, exclusion_ms: float = DEFAULT_SCORING.exclusion_ms,
               lock_ms: float = DEFAULT_SCORING.lock_ms, classes: Sequence[str] = FER7) -> dict:
    """Scan annotator lags: the score of the rows with their manual labels shifted by each lag.

    Returns ``{"best_lag_ms", "curve", "scores"}``: ``curve`` one entry per lag (in the order given)
    with lag_ms, accuracy, macro_f1, time_to_lock_median_ms and lock_rate; ``scores`` the full
    score dict per lag, same order; ``best_lag_ms`` the lag of the highest accuracy, ties going to
    the lag nearest 0 and then the smaller one (None when no lag scores anything).
    """
    t = list(time_sec)
    curve, scores = [], []
    for lag in lags_ms:
        acc = ScoreAccumulator(min_hold_ms, exclusion_ms, lock_ms, classes)
        acc.extend(t, pred, apply_lag(t, manual, lag))
        r = acc.result()
        scores.append(r)
        curve.append({"lag_ms": lag, "accuracy": r["accuracy"], "macro_f1": r["macro_f1"],
                      "time_to_lock_median_ms": r["time_to_lock_ms_median"], "lock_rate": r["lock_rate"]})
    best = None
    for c in curve:
        if c["accuracy"] is None:
            continue
        if best is None or c["accuracy"] > best["accuracy"] or (
                c["accuracy"] == best["accuracy"] and (abs(c["lag_ms"]), c["lag_ms"]) < (abs(best["lag_ms"]), best["lag_ms"])):
            best = c
    return {"best_lag_ms": None if best is None else best["lag_ms"], "curve": curve, "scores": scores}


def agreed_labels(time_sec: Sequence[float], manual: Sequence, other: Sequence, lag_ms: float = 0.0,
                  classes: Sequence[str] = FER7) -> list:
    """The manual labels where a second rater agrees, ``""`` (no label) everywhere else.

    ``other`` is the second rater's track (``LabelInterval``s, [start, end) in video ms). The row at
    time t keeps its manual label when it equals (without regard to case) the label ``other`` holds
    at t + ``lag_ms`` (the annotator lag of DESIGN.md §5, applied to both raters; apply the lag to
    ``manual`` before, with ``apply_lag``). The result is then scored as any manual track, so scoring
    "against the frames where both raters agree" is the transition-fair protocol over the consensus
    track: its segments, min hold and exclusion follow the consensus, and a stretch where the raters
    disagree ends a segment like a label change would. Times are video times, as in a replay or a
    video-file session.
    """
    from fer_models.session_log import label_at

    labels = list(manual)
    t = [float(x) for x in time_sec]
    if len(labels) != len(t):
        raise ScoringInputError(f"time_sec and manual_label have different lengths ({len(t)}, {len(labels)})")
    ivs = sorted((r for r in other if r.label), key=lambda r: r.start_ms)
    lag = float(lag_ms)
    out = []
    for i, (ti, m) in enumerate(zip(t, labels)):
        mine = _normalise_one(m, classes, "manual_label", i)
        theirs = label_at(ivs, ti * 1000.0 + lag) if mine is not None else ""
        out.append(m if mine is not None and theirs and theirs.lower() == mine.lower() else "")
    return out


# The columns of demo_results_summary.csv. ``lag_ms`` (the annotator lag the session was scored with,
# 0 for none) came last, after the columns of the first release, which stay in their order.
LEGACY_DEMO_SUMMARY_COLUMNS = ("scored_at", "session", "per_frame_csv", "model_id", "alpha", "delta", "window",
                               "window_ms", "min_count", "min_hold_ms", "exclusion_ms", "lock_ms") + SCORE_KEYS
DEMO_SUMMARY_COLUMNS = LEGACY_DEMO_SUMMARY_COLUMNS + ("lag_ms",)


def summary_header_ok(header: Sequence[str]) -> bool:
    """Whether a summary CSV with this header can take a row (the current header, or the first release's,
    which ``append_demo_summary`` upgrades)."""
    return tuple(header) in (DEMO_SUMMARY_COLUMNS, LEGACY_DEMO_SUMMARY_COLUMNS)


def _upgrade_legacy_summary(path: Path) -> None:
    """Rewrite a first-release summary (no lag_ms column) with the current header, atomically.

    Its rows were scored before lags existed, that is at lag 0, so they get ``lag_ms`` 0; no value
    changes and no row is lost (a failure leaves the file as it was).
    """
    import csv
    import io

    from fer_models.files import atomic_write_text

    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(DEMO_SUMMARY_COLUMNS)
    for row in rows[1:]:
        if row:
            w.writerow(row + (["0"] if len(row) == len(LEGACY_DEMO_SUMMARY_COLUMNS) else [""]))
    atomic_write_text(path, buf.getvalue())


def append_demo_summary(path, row: dict) -> None:
    """Append one scored session to demo_results_summary.csv (header written once, columns fixed).

    A summary written before the ``lag_ms`` column existed is upgraded in place first (its rows get
    lag 0); a file with any other header is refused, naming it.
    """
    unknown = set(row) - set(DEMO_SUMMARY_COLUMNS)
    if unknown:
        raise KeyError(f"unknown summary columns {sorted(unknown)}")
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(path, "is a directory, not a summary CSV file")
    if path.is_file() and path.stat().st_size > 0:
        from fer_models.session_log import read_csv_header

        if tuple(read_csv_header(path)) == LEGACY_DEMO_SUMMARY_COLUMNS:
            _upgrade_legacy_summary(path)
    row = {"lag_ms": 0.0, **row}
    writer = CsvLogWriter(path, DEMO_SUMMARY_COLUMNS)
    try:
        writer.write(row)
    finally:
        writer.close()
