"""Two models on the same frames: transition-fair scores side by side, a paired bootstrap, disagreements.

Input: two per_frame.csv logs of the very same frames (same frame_index, time_sec and manual_label on
every row), as ``fer-demo --replay VIDEO --model A --model B`` writes them (one decode, one detection,
one crop per model). Everything is scored by fer_models.scoring (one implementation):

- ``metrics``: each model's ``score_file`` (what ``fer-score`` prints), side by side, with B - A.
- ``bootstrap``: a paired bootstrap over label segments. The unit is a scored label segment (a
  segment long enough to be scored that has at least one scored row): frames inside a segment are
  strongly correlated (one face, one label, a smoothed prediction), so resampling frames would make
  the interval far too narrow. Each resample draws the segments with replacement, the *same* draw for
  both models, and computes accuracy and macro-F1 of both from the drawn segments' scored rows; the
  95 % interval of B - A is the 2.5th and 97.5th percentiles of the resampled differences. The seed
  and the number of resamples are recorded, so the numbers can be reproduced.
- ``disagreements``: the frames where the two predicted labels differ (``(unstable)`` counts as a
  label), with the manual label and whether the frame is scored; the list is capped, the totals are
  not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from fer_models.classes import FER7
from fer_models.errors import ArtifactError
from fer_models.scoring import (DEFAULT_SCORING, SCORE_KEYS, ScoringInputError, ScoringParams, _normalise_labels,
                                scored_rows, segment_tallies)
from fer_models.scoring_cli import score_file, session_settings  # each log read as fer-score reads it
from fer_models.session_log import read_csv_table

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0
DEFAULT_MAX_DISAGREEMENTS = 500
CONFIDENCE = 0.95
_COLUMNS = ("frame_index", "time_sec", "manual_label", "pred_label")
_BATCH = 256  # resamples per weight matrix, so memory stays small for long sessions


def _read(path: Path) -> dict[str, list[str]]:
    return read_csv_table(path, _COLUMNS)


def _same_frames(a: dict[str, list[str]], b: dict[str, list[str]], path_a: Path, path_b: Path) -> None:
    """Refuse, naming B's line, two logs that are not of the same frames with the same manual labels."""
    if len(a["frame_index"]) != len(b["frame_index"]):
        raise ArtifactError(path_b, f"has {len(b['frame_index'])} rows, {path_a} has {len(a['frame_index'])}: "
                                    "the two logs are not of the same frames")
    for col in ("frame_index", "time_sec", "manual_label"):
        for i, (x, y) in enumerate(zip(a[col], b[col])):
            same = x == y if col != "time_sec" else float(x) == float(y)
            if not same:
                raise ArtifactError(path_b, f"line {i + 2}: {col} {y!r} differs from {path_a}'s {x!r}: the two "
                                            "logs are not of the same frames and labels")


def paired_bootstrap(times: Sequence[float], pred_a: Sequence[str], pred_b: Sequence[str], manual: Sequence[str],
                     params: ScoringParams = DEFAULT_SCORING, n_resamples: int = DEFAULT_RESAMPLES,
                     seed: int = DEFAULT_SEED, classes: Sequence[str] = FER7) -> dict:
    """The paired segment bootstrap of the module docstring, for accuracy and macro-F1.

    Returns ``{"unit", "n_segments", "n_resamples", "seed", "confidence", "method", "accuracy",
    "macro_f1"}``; each metric has ``a``, ``b``, ``b_minus_a`` (the full-sample values, equal to
    ``score_session``'s), ``ci_low``, ``ci_high`` (of B - A) and ``share_b_better`` (resamples where
    B - A > 0). With no scored segment the metrics are None.
    """
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    ta = segment_tallies(times, pred_a, manual, params.min_hold_ms, params.exclusion_ms, classes)
    tb = segment_tallies(times, pred_b, manual, params.min_hold_ms, params.exclusion_ms, classes)
    assert np.array_equal(ta.first_row, tb.first_row) and np.array_equal(ta.n_scored, tb.n_scored)
    s = len(ta.label)
    out = {"unit": "scored label segment", "n_segments": s, "n_resamples": int(n_resamples), "seed": int(seed),
           "confidence": CONFIDENCE,
           "method": "paired percentile bootstrap: segments drawn with replacement, the same draw for both models"}
    if s == 0:
        out.update(accuracy=None, macro_f1=None)
        return out
    rng = np.random.default_rng(seed)
    diffs: dict[str, list[np.ndarray]] = {"accuracy": [], "macro_f1": []}
    done = 0
    while done < n_resamples:
        r = min(_BATCH, n_resamples - done)
        draws = rng.integers(0, s, size=(r, s))
        weights = np.zeros((r, s))
        np.add.at(weights, (np.repeat(np.arange(r), s), draws.ravel()), 1.0)
        acc_a, f1_a = ta.metrics(weights)
        acc_b, f1_b = tb.metrics(weights)
        diffs["accuracy"].append(acc_b - acc_a)
        diffs["macro_f1"].append(f1_b - f1_a)
        done += r
    full_a, full_b = ta.metrics(), tb.metrics()
    lo_q, hi_q = 100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2
    for k, (key, d) in enumerate(diffs.items()):
        d = np.concatenate(d)
        a, b = float(full_a[k][0]), float(full_b[k][0])
        out[key] = {"a": a, "b": b, "b_minus_a": b - a, "ci_low": float(np.percentile(d, lo_q)),
                    "ci_high": float(np.percentile(d, hi_q)), "share_b_better": float(np.mean(d > 0))}
    return out


def compare_logs(per_frame_a: str | Path, per_frame_b: str | Path, params: ScoringParams = DEFAULT_SCORING,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                 max_disagreements: int = DEFAULT_MAX_DISAGREEMENTS, classes: Sequence[str] = FER7) -> dict:
    """Compare two per_frame.csv logs of the same frames (see the module docstring for every key).

    Raises ArtifactError naming the file for a log that cannot be read or that is not of the same
    frames and manual labels as the other.
    """
    path_a, path_b = Path(per_frame_a), Path(per_frame_b)
    a, b = _read(path_a), _read(path_b)
    _same_frames(a, b, path_a, path_b)
    scores = {}
    for key, path in (("a", path_a), ("b", path_b)):
        scores[key] = score_file(path, params.min_hold_ms, params.exclusion_ms, params.lock_ms)
    times = [float(x) for x in a["time_sec"]]
    manual = a["manual_label"]
    try:
        boot = paired_bootstrap(times, a["pred_label"], b["pred_label"], manual, params, n_resamples, seed, classes)
        pa = _normalise_labels(a["pred_label"], classes, "pred_label")
        pb = _normalise_labels(b["pred_label"], classes, "pred_label")
        scored = set(scored_rows(times, manual, params.min_hold_ms, params.exclusion_ms, classes))
    except ScoringInputError as exc:  # score_file already refused these; kept for logs read another way
        raise ArtifactError(path_a, str(exc)) from None
    differ = [i for i, (x, y) in enumerate(zip(pa, pb)) if x != y]
    frames = [{"frame_index": int(a["frame_index"][i]), "time_sec": times[i], "label_a": a["pred_label"][i],
               "label_b": b["pred_label"][i], "manual_label": manual[i], "scored": i in scored}
              for i in differ[:max(0, int(max_disagreements))]]
    metrics = {}
    for key in SCORE_KEYS:
        va, vb = scores["a"].get(key), scores["b"].get(key)
        metrics[key] = {"a": va, "b": vb, "b_minus_a": (vb - va) if va is not None and vb is not None else None}
    return {
        "a": {"per_frame_csv": str(path_a), "model_id": session_settings(path_a).get("model_id", ""),
              "score": scores["a"]},
        "b": {"per_frame_csv": str(path_b), "model_id": session_settings(path_b).get("model_id", ""),
              "score": scores["b"]},
        "scoring": params.to_dict(),
        "n_frames": len(times),
        "metrics": metrics,
        "bootstrap": boot,
        "disagreements": {"n_frames": len(differ), "n_scored_frames": sum(1 for i in differ if i in scored),
                          "share_of_frames": (len(differ) / len(times)) if times else None,
                          "cap": int(max_disagreements), "truncated": len(differ) > len(frames),
                          "frames": frames},
    }
