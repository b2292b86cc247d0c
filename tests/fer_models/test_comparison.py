"""Two models on the same frames (fer_models.comparison): hand-worked bootstraps, the one scoring code, refusals."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from fer_models.classes import FER7
from fer_models.comparison import compare_logs, paired_bootstrap
from fer_models.errors import ArtifactError
from fer_models.scoring import scored_rows, score_session, segment_tallies
from fer_models.scoring_cli import score_file


def _write_log(path, t, pred, manual, model_id=None):
    lines = ["frame_index,time_sec,manual_label,pred_label"]
    lines += [f"{i},{a},{c},{b}" for i, (a, b, c) in enumerate(zip(t, pred, manual))]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if model_id:
        (path.parent / "settings.json").write_text(json.dumps({"model_id": model_id, "smoothing": {}}))
    return path


def two_segments():
    """Two 2 s segments at 10 fps (Happy then Sad); A is right only on Happy, B on both."""
    t = [round(i / 10, 3) for i in range(40)]
    manual = ["Happy"] * 20 + ["Sad"] * 20
    pred_a = ["Happy"] * 20 + ["Angry"] * 20
    pred_b = list(manual)
    return t, pred_a, pred_b, manual


def test_tallies_reproduce_score_session_on_random_timelines():
    rng = random.Random(3)
    labels = ["Happy", "Sad", "Angry", "", "(unstable)"]
    for _ in range(150):
        n = rng.randint(1, 120)
        t, x = [], 0.0
        for _ in range(n):
            x += rng.choice([0.0, 0.033, 0.05, 0.1, 0.4])
            t.append(round(x, 3))
        manual, cur = [], rng.choice(labels[:4])
        for _ in range(n):
            if rng.random() < 0.08:
                cur = rng.choice(labels[:4])
            manual.append(cur)
        pred = [rng.choice(labels) for _ in range(n)]
        ref = score_session(t, pred, manual)
        tallies = segment_tallies(t, pred, manual)
        acc, f1 = tallies.metrics()
        if ref["accuracy"] is None:
            assert len(tallies.label) == 0 or np.isnan(acc[0])
            continue
        assert acc[0] == pytest.approx(ref["accuracy"], abs=1e-12)
        assert f1[0] == pytest.approx(ref["macro_f1"], abs=1e-12)
        assert int(tallies.n_scored.sum()) == ref["n_scored_frames"] == len(scored_rows(t, manual))


def test_identical_models_differ_by_exactly_zero():
    t, pred_a, _, manual = two_segments()
    out = paired_bootstrap(t, pred_a, pred_a, manual, n_resamples=300, seed=5)
    for key in ("accuracy", "macro_f1"):
        assert out[key]["b_minus_a"] == 0.0 and out[key]["ci_low"] == 0.0 and out[key]["ci_high"] == 0.0
        assert out[key]["share_b_better"] == 0.0
    assert out["n_segments"] == 2 and out["n_resamples"] == 300 and out["seed"] == 5


def test_paired_bootstrap_hand_worked_two_segments():
    # Each scored segment has the same number of scored rows (exclusion 250 ms: t0+0.3 .. t1-0.3, 14 rows).
    # A resample draws 2 segments: (Happy, Happy) p=1/4 -> acc A 1, B 1, diff 0; one of each p=1/2 -> A 0.5,
    # B 1, diff 0.5; (Sad, Sad) p=1/4 -> A 0, B 1, diff 1. So the 95 % interval of B - A is [0, 1] and B is
    # better in 3/4 of the resamples; the full-sample difference is 0.5.
    t, pred_a, pred_b, manual = two_segments()
    out = paired_bootstrap(t, pred_a, pred_b, manual, n_resamples=4000, seed=1)
    acc = out["accuracy"]
    assert (acc["a"], acc["b"], acc["b_minus_a"]) == (0.5, 1.0, 0.5)
    assert (acc["ci_low"], acc["ci_high"]) == (0.0, 1.0)
    assert acc["share_b_better"] == pytest.approx(0.75, abs=0.03)
    # macro-F1: full sample A: Happy F1 = 2*14/(14+14) = 1, Sad F1 = 0 (never predicted) -> 0.5; B 1.0.
    # A resample of (Sad, Sad) has only Sad as a manual label: A's macro-F1 0, B's 1.
    f1 = out["macro_f1"]
    assert (f1["a"], f1["b"], f1["b_minus_a"]) == (0.5, 1.0, 0.5)
    assert f1["ci_high"] == 1.0 and f1["ci_low"] == 0.0
    # the same seed gives the same numbers; the seed is what makes them reproducible
    assert paired_bootstrap(t, pred_a, pred_b, manual, n_resamples=4000, seed=1) == out


def test_the_unit_is_the_segment_not_the_frame():
    """More frames per segment must not narrow the interval: the draw is over segments."""
    t, pred_a, pred_b, manual = two_segments()
    long_t = [round(i / 100, 3) for i in range(400)]  # the same two segments at 100 fps
    long_manual = ["Happy"] * 200 + ["Sad"] * 200
    long_a = ["Happy"] * 200 + ["Angry"] * 200
    short = paired_bootstrap(t, pred_a, pred_b, manual, n_resamples=2000, seed=2)["accuracy"]
    long = paired_bootstrap(long_t, long_a, long_manual, long_manual, n_resamples=2000, seed=2)["accuracy"]
    assert (short["ci_low"], short["ci_high"]) == (long["ci_low"], long["ci_high"]) == (0.0, 1.0)


def test_no_scored_segment_gives_null_metrics():
    t = [0.0, 0.1, 0.2]
    out = paired_bootstrap(t, ["Happy"] * 3, ["Sad"] * 3, ["Happy"] * 3, n_resamples=10)
    assert out["n_segments"] == 0 and out["accuracy"] is None and out["macro_f1"] is None


def test_compare_logs_side_by_side_disagreements_and_cap(tmp_path):
    t, pred_a, pred_b, manual = two_segments()
    pred_b[0] = "(unstable)"  # an unscored row where they also disagree
    a = _write_log(tmp_path / "A" / "per_frame.csv", t, pred_a, manual, "model-a")
    b = _write_log(tmp_path / "B" / "per_frame.csv", t, pred_b, manual, "model-b")
    out = compare_logs(a, b, n_resamples=200, seed=0, max_disagreements=5)
    assert out["a"]["score"] == score_file(a) and out["b"]["score"] == score_file(b)  # fer-score's numbers
    assert out["a"]["model_id"] == "model-a" and out["b"]["model_id"] == "model-b"
    assert out["metrics"]["accuracy"] == {"a": 0.5, "b": 1.0, "b_minus_a": 0.5}
    d = out["disagreements"]
    assert d["n_frames"] == 21 and d["n_scored_frames"] == 14  # frame 0 plus the 20 Sad frames; 14 Sad scored
    assert d["truncated"] and d["cap"] == 5 and len(d["frames"]) == 5
    assert d["frames"][0] == {"frame_index": 0, "time_sec": 0.0, "label_a": "Happy", "label_b": "(unstable)",
                              "manual_label": "Happy", "scored": False}
    assert d["frames"][1]["frame_index"] == 20 and d["frames"][1]["label_a"] == "Angry"
    assert out["bootstrap"]["n_resamples"] == 200 and out["bootstrap"]["seed"] == 0
    assert out["n_frames"] == 40 and out["scoring"]["min_hold_ms"] == 600.0


def test_compare_logs_refuses_logs_of_different_frames(tmp_path):
    t, pred_a, pred_b, manual = two_segments()
    a = _write_log(tmp_path / "a.csv", t, pred_a, manual)
    b = _write_log(tmp_path / "b.csv", t[:-1], pred_b[:-1], manual[:-1])
    with pytest.raises(ArtifactError, match="rows.*not of the same frames") as exc:
        compare_logs(a, b, n_resamples=10)
    assert str(b) in str(exc.value)
    other = list(manual)
    other[7] = "Sad"
    b = _write_log(tmp_path / "b2.csv", t, pred_b, other)
    with pytest.raises(ArtifactError, match=r"line 9: manual_label 'Sad' differs") as exc:
        compare_logs(a, b, n_resamples=10)
    assert str(b) in str(exc.value)
    bad = _write_log(tmp_path / "bad.csv", t, ["Joy"] * 40, manual)
    with pytest.raises(ArtifactError, match="unknown pred_label 'Joy'"):
        compare_logs(a, bad, n_resamples=10)


def test_classes_of_the_tallies_follow_fer7():
    t, pred_a, _, manual = two_segments()
    tallies = segment_tallies(t, pred_a, manual)
    assert tallies.classes == tuple(FER7)
    assert [FER7[i] for i in tallies.label] == ["Happy", "Sad"]
    assert tallies.pred_counts[1, FER7.index("Angry")] == 14
