"""Two-rater agreement on one video (DESIGN.md §5).

Both label tracks (``start_ms,end_ms,label`` files, intervals [start, end)) are sampled every
10 ms, at start + 10 k for every sample time before the end, where start is the earliest start
and end the latest end of a labelled interval over both tracks. A sample that no interval of a
track holds (or whose interval has the empty label) is the category ``none`` on that track.

- ``kappa``: Cohen's kappa over all samples, ``none`` a category: (po - pe) / (1 - pe), po the
  fraction of samples where the tracks agree, pe the sum over categories of the product of the
  two tracks' category fractions. When pe == 1 (both tracks hold one and the same category on
  every sample, so po == 1 too) kappa is defined as 1.0; with no samples it is None.
- ``kappa_labelled``: the same over the samples where both tracks hold a class.
- ``per_class``: for each class either track uses, the samples where either rater says it
  (``n_either``), those where both do (``n_both``) and ``agreement`` = n_both / n_either.
- ``disagreements``: maximal runs of consecutive samples on which the tracks differ *with the
  same pair of categories* (a, b); a run where the pair changes is split there. Each is
  {start_ms, end_ms, a, b}, end_ms exclusive (the last sample + 10 ms, clipped to the end).

Computed with numpy only (no scikit-learn); a test compares kappa with sklearn's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np

from fer_models.classes import FER7
from fer_models.session_log import LabelInterval, read_label_intervals

NONE = "none"
SAMPLE_MS = 10.0


def _sample_track(intervals: Sequence[LabelInterval], times: np.ndarray) -> list[str]:
    ivs = sorted((r for r in intervals if r.label), key=lambda r: r.start_ms)
    if not ivs:
        return [NONE] * len(times)
    starts = np.asarray([r.start_ms for r in ivs], dtype=np.float64)
    ends = np.asarray([r.end_ms for r in ivs], dtype=np.float64)
    idx = np.searchsorted(starts, times, side="right") - 1
    ok = (idx >= 0) & (times < ends[np.maximum(idx, 0)])
    return [ivs[i].label if k else NONE for i, k in zip(idx.tolist(), ok.tolist())]


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two equally long label sequences; 1.0 when pe == 1 (and so po == 1), None when empty."""
    if len(a) != len(b):
        raise ValueError(f"sequences of different lengths ({len(a)}, {len(b)})")
    n = len(a)
    if n == 0:
        return None
    cats = sorted(set(a) | set(b))
    index = {c: i for i, c in enumerate(cats)}
    ia = np.fromiter((index[x] for x in a), dtype=np.int64, count=n)
    ib = np.fromiter((index[x] for x in b), dtype=np.int64, count=n)
    po = float(np.mean(ia == ib))
    fa = np.bincount(ia, minlength=len(cats)) / n
    fb = np.bincount(ib, minlength=len(cats)) / n
    pe = float(np.dot(fa, fb))
    if math.isclose(pe, 1.0, rel_tol=0.0, abs_tol=1e-12):
        return 1.0  # one category on both tracks throughout: po == 1 as well
    return (po - pe) / (1.0 - pe)


def agreement_from_intervals(a: Sequence[LabelInterval], b: Sequence[LabelInterval],
                             sample_ms: float = SAMPLE_MS, classes: Sequence[str] = FER7) -> dict:
    """The agreement of two label tracks (see the module docstring for every key)."""
    labelled = [r for r in list(a) + list(b) if r.label]
    if labelled:
        t_start = min(r.start_ms for r in labelled)
        t_end = max(r.end_ms for r in labelled)
        n = max(0, math.ceil((t_end - t_start) / sample_ms - 1e-9))
    else:
        t_start = t_end = None
        n = 0
    times = (t_start if t_start is not None else 0.0) + sample_ms * np.arange(n, dtype=np.float64)
    sa, sb = _sample_track(a, times), _sample_track(b, times)
    both = [(x, y) for x, y in zip(sa, sb) if x != NONE and y != NONE]
    per_class = {}
    order = {c: i for i, c in enumerate(classes)}
    for c in sorted((set(sa) | set(sb)) - {NONE}, key=lambda c: (order.get(c, len(order)), c)):
        n_either = sum(1 for x, y in zip(sa, sb) if x == c or y == c)
        n_both = sum(1 for x, y in zip(sa, sb) if x == c and y == c)
        per_class[c] = {"agreement": n_both / n_either, "n_either": n_either, "n_both": n_both}
    segments = []
    k = 0
    while k < n:
        if sa[k] == sb[k]:
            k += 1
            continue
        j = k
        while j + 1 < n and sa[j + 1] == sa[k] and sb[j + 1] == sb[k]:
            j += 1
        segments.append({"start_ms": float(times[k]), "end_ms": float(min(times[j] + sample_ms, t_end)),
                         "a": sa[k], "b": sb[k]})
        k = j + 1
    return {
        "sample_ms": sample_ms,
        "start_ms": t_start,
        "end_ms": t_end,
        "n_samples": n,
        "observed_agreement": (sum(1 for x, y in zip(sa, sb) if x == y) / n) if n else None,
        "kappa": cohen_kappa(sa, sb),
        "n_labelled_samples": len(both),
        "kappa_labelled": cohen_kappa([x for x, _ in both], [y for _, y in both]),
        "per_class": per_class,
        "disagreements": segments,
    }


def agreement_files(path_a: str | Path, path_b: str | Path, sample_ms: float = SAMPLE_MS,
                    classes: Sequence[str] = FER7) -> dict:
    """Read two ``start_ms,end_ms,label`` files and compute their agreement (ArtifactError on bad files)."""
    a = read_label_intervals(path_a, classes)
    b = read_label_intervals(path_b, classes)
    out = agreement_from_intervals(a, b, sample_ms, classes)
    return {"a": str(path_a), "b": str(path_b), **out}
