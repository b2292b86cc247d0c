"""Transition-fair scoring on hand-built timelines; every expected number is worked out in the comments."""

from __future__ import annotations

import json

import pytest

from fer_models.scoring import ScoringInputError, score_session
from fer_models.scoring_cli import main as fer_score


def timeline_a():
    """40 rows at 10 fps (t = 0.0 .. 3.9 s).

    manual: rows 0-9 empty, rows 10-29 Happy (t 1.0-2.9), rows 30-39 Sad (t 3.0-3.9).
    pred:   rows 0-12 unstable, rows 13-34 Happy, rows 35-39 Sad.
    """
    t = [i / 10 for i in range(40)]
    manual = [""] * 10 + ["Happy"] * 20 + ["Sad"] * 10
    pred = ["(unstable)"] * 13 + ["Happy"] * 22 + ["Sad"] * 5
    return t, pred, manual


def test_hand_timeline_default_parameters():
    t, pred, manual = timeline_a()
    r = score_session(t, pred, manual)
    # Happy segment: 2.9 - 1.0 = 1.9 s >= 0.6 s, scored rows t in [1.25, 2.65] -> 1.3 .. 2.6 = 14 rows (13..26),
    # all predicted Happy. Sad segment: 0.9 s >= 0.6 s, scored t in [3.25, 3.65] -> rows 33..36 = 4 rows:
    # 33, 34 Happy (wrong), 35, 36 Sad (right). The empty segment is never scored.
    assert r["n_segments"] == 2
    assert r["n_scored_frames"] == 18
    assert r["accuracy"] == pytest.approx(16 / 18)
    # F1(Happy) = 2*14 / (2*14 + FP 2 + FN 0) = 28/30; F1(Sad) = 2*2 / (4 + FP 0 + FN 2) = 4/6; mean 0.8
    assert r["macro_f1"] == pytest.approx((28 / 30 + 4 / 6) / 2)
    # class predictions: Happy x22 then Sad x5 -> 1 change over 3.9 s = 0.065 min
    assert r["jitter_per_min"] == pytest.approx(1 / (3.9 / 60))
    # Happy: t1 = 1.3 is the first row whose [t1, t1 + 0.5] is all Happy (1.0-1.2 are unstable) -> 300 ms.
    # Sad: t1 must be <= 3.4, but rows 3.0-3.4 predict Happy -> no lock. Lock rate 1/2.
    assert r["time_to_lock_ms_median"] == pytest.approx(300.0)
    assert r["lock_rate"] == pytest.approx(0.5)


def test_min_hold_drops_short_segments():
    t, pred, manual = timeline_a()
    r = score_session(t, pred, manual, min_hold_ms=1000)
    # Sad lasts 0.9 s < 1.0 s: only the 14 Happy rows remain, all right, and the one segment locks.
    assert (r["n_segments"], r["n_scored_frames"]) == (1, 14)
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0 and r["lock_rate"] == 1.0


def test_exclusion_window_changes_scored_rows():
    t, pred, manual = timeline_a()
    r = score_session(t, pred, manual, exclusion_ms=0)
    # Without exclusion all 20 Happy rows (10..29) and 10 Sad rows are scored.
    # Happy rows 10-12 are unstable (wrong); Sad rows 30-34 Happy (wrong), 35-39 right.
    assert r["n_scored_frames"] == 30
    assert r["accuracy"] == pytest.approx((17 + 5) / 30)


def test_jitter_skips_unstable_and_counts_changes():
    t = [0, 1, 2, 3, 4, 5, 6]
    pred = ["Happy", "(unstable)", "Happy", "Sad", "", "Sad", "Happy"]
    manual = [""] * 7
    r = score_session(t, pred, manual)
    # class sequence H H S S H -> 2 changes in 6 s = 0.1 min -> 20 per minute; nothing is scored.
    assert r["jitter_per_min"] == pytest.approx(20.0)
    assert r["n_scored_frames"] == 0 and r["accuracy"] is None and r["lock_rate"] is None


def test_unstable_counts_as_miss_in_macro_f1_and_names_are_case_insensitive():
    t = [i / 10 for i in range(11)]  # 0.0 .. 1.0 s, one Fear segment of 1.0 s
    manual = ["fear"] * 11
    pred = ["FEAR"] * 5 + ["(unstable)"] * 6
    r = score_session(t, pred, manual)
    # scored t in [0.25, 0.75] -> rows 3..7: rows 3, 4 Fear, rows 5, 6, 7 unstable.
    assert r["n_scored_frames"] == 5 and r["accuracy"] == pytest.approx(2 / 5)
    # F1(Fear) = 2*2 / (4 + 0 + 3) = 4/7 (only Fear occurs as a manual label)
    assert r["macro_f1"] == pytest.approx(4 / 7)
    # lock: t1 = 0.0 window [0, 0.5] covers rows 0..5, row 5 unstable -> fails; later starts hit unstable
    # rows too, and t1 must be <= 0.5: no lock.
    assert r["lock_rate"] == 0.0 and r["time_to_lock_ms_median"] is None


def test_bad_input_names_the_row():
    with pytest.raises(ScoringInputError, match="row 3: time goes backwards"):
        score_session([0.0, 0.1, 0.05], ["Happy"] * 3, ["Happy"] * 3)
    with pytest.raises(ScoringInputError, match="row 2: unknown pred_label 'Joy'"):
        score_session([0.0, 0.1], ["Happy", "Joy"], ["Happy"] * 2)


def _write_log(path, t, pred, manual, extra=True):
    cols = "frame_index,time_sec,manual_label,pred_label," + ",".join(
        f"prob_{c}" for c in ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"])
    if extra:
        cols += ",face_x,model_id"
    lines = [cols]
    for i, (a, b, c) in enumerate(zip(t, pred, manual)):
        lines.append(f"{i},{a},{c},{b}," + ",".join(["0.1428"] * 7) + (",12.5,m1" if extra else ""))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_fer_score_cli_json_matches_library(tmp_path, capsys):
    t, pred, manual = timeline_a()
    log = tmp_path / "per_frame.csv"
    _write_log(log, t, pred, manual)
    summary = tmp_path / "demo_results_summary.csv"
    assert fer_score([str(log), "--json", "--append-summary", str(summary)]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = score_session(t, pred, manual)
    assert printed == pytest.approx(expected)
    assert set(printed) == {"accuracy", "macro_f1", "jitter_per_min", "time_to_lock_ms_median", "lock_rate",
                            "n_scored_frames", "n_segments"}
    lines = summary.read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("scored_at,session,per_frame_csv")
    assert fer_score([str(log), "--append-summary", str(summary)]) == 0
    assert len(summary.read_text().splitlines()) == 3


def test_fer_score_reads_earlier_scripts_logs_and_needs_only_three_columns(tmp_path, capsys):
    t, pred, manual = timeline_a()
    old = tmp_path / "old.csv"
    _write_log(old, t, pred, manual, extra=False)
    assert fer_score([str(old), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_scored_frames"] == 18
    minimal = tmp_path / "minimal.csv"
    minimal.write_text("pred_label,time_sec,manual_label\n" + "\n".join(
        f"{p},{a},{m}" for a, p, m in zip(t, pred, manual)) + "\n")
    assert fer_score([str(minimal), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == pytest.approx(16 / 18)


@pytest.mark.parametrize("body, message", [
    ("time_sec,pred_label\n0,Happy\n", "missing required columns ['manual_label']"),
    ("time_sec,pred_label,manual_label\n0,Happy,Happy\n1,Joy,Happy\n", "line 3: unknown pred_label 'Joy'"),
    ("time_sec,pred_label,manual_label\n0,Happy,Happy\n1,Happy,Happy\n0.5,Happy,Happy\n", "line 4: time goes backwards"),
    ("time_sec,pred_label,manual_label\n0,Happy,Happy\nabc,Happy,Happy\n", "line 3: time_sec 'abc' is not a number"),
])
def test_fer_score_cli_refuses_bad_files(tmp_path, capsys, body, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(body)
    assert fer_score([str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err


def test_one_set_of_scoring_thresholds_is_the_default_everywhere():
    import inspect

    from fer_models.scoring import DEFAULT_SCORING, ScoreAccumulator, ScoringParams
    from fer_models.scoring_cli import build_parser, score_file

    assert DEFAULT_SCORING == ScoringParams(min_hold_ms=600, exclusion_ms=250, lock_ms=500)  # DESIGN.md §5
    for fn in (score_session, ScoreAccumulator.__init__, score_file):
        params = inspect.signature(fn).parameters
        assert {k: params[k].default for k in ("min_hold_ms", "exclusion_ms", "lock_ms")} == DEFAULT_SCORING.to_dict()
    args = build_parser().parse_args(["x.csv"])
    assert (args.min_hold_ms, args.exclusion_ms, args.lock_ms) == tuple(DEFAULT_SCORING.to_dict().values())
