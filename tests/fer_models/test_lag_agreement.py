"""Annotator reaction lag and two-rater agreement (DESIGN.md §5), on hand-worked timelines and tracks."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from fer_models import scoring_cli
from fer_models.agreement import agreement_from_intervals, cohen_kappa
from fer_models.scoring import ScoreAccumulator, ScoringInputError, apply_lag, score_lags, score_session
from fer_models.scoring_cli import main as fer_score, parse_lag_range, score_file
from fer_models.session_log import LabelInterval, label_at, write_label_intervals


def _write_log(path, t, pred, manual):
    lines = ["frame_index,time_sec,manual_label,pred_label"]
    lines += [f"{i},{a},{c},{b}" for i, (a, b, c) in enumerate(zip(t, pred, manual))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- apply_lag


def test_apply_lag_hand_worked_step_function():
    t = [0.0, 0.1, 0.2, 0.3]
    m = ["Happy", "Happy", "Sad", "Sad"]
    # L=100: 0+.1 -> row .1 Happy; .1+.1 -> row .2 Sad; .2+.1 -> row .3 Sad; .3+.1 is past the last row -> ""
    assert apply_lag(t, m, 100) == ["Happy", "Sad", "Sad", ""]
    # L=150: .15 falls between rows .1 and .2 -> the last row at or before it (.1) holds Happy; .25 -> .2 Sad;
    # .35 and .45 are past the end
    assert apply_lag(t, m, 150) == ["Happy", "Sad", "", ""]
    # L=300: only row 0 (0+.3 = the last row's time, kept) has a label
    assert apply_lag(t, m, 300) == ["Sad", "", "", ""]
    assert apply_lag(t, m, 301) == ["", "", "", ""]
    # a negative lag moves labels later; t+L before the first row has no label
    assert apply_lag(t, m, -100) == ["", "Happy", "Happy", "Sad"]
    assert apply_lag([], [], 300) == []


def test_apply_lag_zero_is_the_plain_log_even_with_repeated_times():
    t = [0.0, 0.1, 0.1, 0.2]
    m = ["Happy", "", "Sad", "(unstable)"]
    assert apply_lag(t, m, 0) == m
    assert apply_lag(t, m, 0.0) is not m  # a copy


def test_apply_lag_refuses_bad_input():
    with pytest.raises(ScoringInputError, match="row 3: time goes backwards"):
        apply_lag([0.0, 0.2, 0.1], ["Happy"] * 3, 100)
    with pytest.raises(ScoringInputError, match="different lengths"):
        apply_lag([0.0, 0.1], ["Happy"], 100)
    with pytest.raises(ScoringInputError, match="finite"):
        apply_lag([0.0], ["Happy"], float("nan"))


def lead_timeline():
    """41 rows at 10 fps (t = 0.0 .. 4.0 s); predictions lead the manual labels by exactly 300 ms.

    pred:   Happy t < 1.2, Sad 1.2 <= t < 2.4, Angry t >= 2.4
    manual: Happy t < 1.5, Sad 1.5 <= t < 2.7, Angry t >= 2.7
    """
    t = [round(i / 10, 3) for i in range(41)]

    def lab(x, a, b):
        return "Happy" if x < a - 1e-9 else ("Sad" if x < b - 1e-9 else "Angry")

    pred = [lab(x, 1.2, 2.4) for x in t]
    manual = [lab(x, 1.5, 2.7) for x in t]
    return t, pred, manual


def test_lag_300_aligns_a_timeline_whose_predictions_lead_by_300_ms(tmp_path, capsys):
    t, pred, manual = lead_timeline()
    shifted = apply_lag(t, manual, 300)
    # rows 3.8, 3.9, 4.0 look past the end (4.1 .. 4.3 s) and lose their label; every other row now equals pred
    assert shifted[-3:] == ["", "", ""]
    assert shifted[:-3] == pred[:-3]
    assert score_session(t, pred, shifted)["accuracy"] == 1.0
    # unshifted, the 250 ms exclusion happens to hide the 300 ms lead on rows 100 ms apart (1.15 s is the last
    # scored Happy row); without the exclusion the plain log is visibly off and the shifted one still perfect
    assert score_session(t, pred, manual)["accuracy"] == 1.0
    assert score_session(t, pred, manual, exclusion_ms=0)["accuracy"] < 1.0
    assert score_session(t, pred, shifted, exclusion_ms=0)["accuracy"] == 1.0

    log = tmp_path / "per_frame.csv"
    _write_log(log, t, pred, manual)
    assert fer_score([str(log), "--lag-ms", "300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["lag_ms"] == 300 and out["accuracy"] == 1.0
    assert {k: v for k, v in out.items() if k != "lag_ms"} == score_session(t, pred, shifted)


def test_estimate_lag_finds_300_and_breaks_ties_towards_the_smaller_lag(tmp_path, capsys):
    t, pred, manual = lead_timeline()
    log = tmp_path / "per_frame.csv"
    _write_log(log, t, pred, manual)
    # With exclusion 0 every row of a segment is scored, so only the exact alignment is perfect: at L=250 the row
    # t=1.2 still looks up 1.45 -> row 1.4 Happy (pred Sad). With rows 100 ms apart, L=350 looks up the same rows
    # as L=300 (1.1+.35 = 1.45 -> row 1.4; 1.2+.35 -> 1.5), so 300 and 350 tie at 1.0 and the smaller one wins.
    assert fer_score([str(log), "--estimate-lag", "--json", "--exclusion-ms", "0"]) == 0
    out = json.loads(capsys.readouterr().out)
    curve = {c["lag_ms"]: c for c in out["curve"]}
    assert list(curve) == list(range(0, 1001, 50))
    assert out["best_lag_ms"] == 300
    assert curve[300]["accuracy"] == 1.0 and curve[350]["accuracy"] == 1.0
    assert curve[250]["accuracy"] < 1.0 and curve[0]["accuracy"] < 1.0
    assert set(curve[300]) == {"lag_ms", "accuracy", "macro_f1", "time_to_lock_median_ms", "lock_rate"}
    assert out["best"]["lag_ms"] == 300 and out["best"]["accuracy"] == 1.0
    # with the default parameters the exclusion hides the boundary rows, yet 300 is still perfect
    assert fer_score([str(log), "--estimate-lag", "--json", "--lag-range", "0:600:100"]) == 0
    out = json.loads(capsys.readouterr().out)
    acc = {c["lag_ms"]: c["accuracy"] for c in out["curve"]}
    assert acc[300] == 1.0 and out["best_lag_ms"] <= 300 and acc[out["best_lag_ms"]] == 1.0


def test_estimate_lag_reads_the_file_once(tmp_path, monkeypatch):
    t, pred, manual = lead_timeline()
    log = tmp_path / "per_frame.csv"
    _write_log(log, t, pred, manual)
    calls = []
    real = scoring_cli._iter_rows

    def counting(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(scoring_cli, "_iter_rows", counting)
    out = scoring_cli.estimate_lag_file(log, parse_lag_range("0:1000:50"))
    assert len(calls) == 1 and len(out["curve"]) == 21


def _random_timeline(rng, n):
    t, x = [], 0.0
    for _ in range(n):
        x += rng.choice([0.0, 0.033, 0.034, 0.1, 0.4])
        t.append(round(x, 3))
    labels = ["Happy", "Sad", "Neutral", "", "(unstable)"]
    manual, pred, cur = [], [], "Happy"
    for _ in range(n):
        if rng.random() < 0.05:
            cur = rng.choice(labels[:4])
        manual.append(cur)
        pred.append(cur if rng.random() < 0.7 else rng.choice(labels))
    return t, pred, manual


def test_lag_zero_equals_the_plain_score_exactly(tmp_path, capsys):
    rng = random.Random(7)
    for trial in range(20):
        t, pred, manual = _random_timeline(rng, rng.randint(1, 300))
        plain = score_session(t, pred, manual)
        scan = score_lags(t, pred, manual, [0, 120, 0.0])
        assert scan["scores"][0] == plain and scan["scores"][2] == plain
        # any lag: the scan equals the reference on the shifted labels, float for float
        assert scan["scores"][1] == score_session(t, pred, apply_lag(t, manual, 120))
    log = tmp_path / "per_frame.csv"
    _write_log(log, t, pred, manual)
    assert score_file(log, lag_ms=0) == score_file(log) == score_session(t, pred, manual)
    assert fer_score([str(log), "--json"]) == 0
    plain_out = json.loads(capsys.readouterr().out)
    assert fer_score([str(log), "--json", "--lag-ms", "0"]) == 0
    lag0 = json.loads(capsys.readouterr().out)
    assert lag0.pop("lag_ms") == 0 and lag0 == plain_out
    assert "lag_ms" not in plain_out  # the plain output keeps its keys
    assert fer_score([str(log), "--json", "--estimate-lag", "--lag-range", "0:0:10"]) == 0
    est = json.loads(capsys.readouterr().out)
    assert est["curve"][0]["accuracy"] == plain_out["accuracy"]


def test_lag_cli_refusals(tmp_path, capsys):
    t, pred, manual = lead_timeline()
    log = tmp_path / "per_frame.csv"
    _write_log(log, t, pred, manual)
    summary = tmp_path / "demo_results_summary.csv"
    # a scan or a second rater has no column in the summary: refused before anything is written
    assert fer_score([str(log), "--estimate-lag", "--append-summary", str(summary)]) == 2
    assert "--append-summary records one plain score" in capsys.readouterr().err and not summary.exists()
    assert fer_score([str(log), "--agree-with", str(log), "--append-summary", str(summary)]) == 2
    assert not summary.exists()
    # one lag is recorded in the lag_ms column; lag 0 is the plain log
    assert fer_score([str(log), "--lag-ms", "300", "--append-summary", str(summary)]) == 0
    assert fer_score([str(log), "--lag-ms", "0", "--append-summary", str(summary)]) == 0
    assert fer_score([str(log), "--append-summary", str(summary)]) == 0
    from fer_models.session_log import read_csv_table

    rows = read_csv_table(summary, ["lag_ms", "accuracy"])
    assert [float(x) for x in rows["lag_ms"]] == [300.0, 0.0, 0.0]
    assert float(rows["accuracy"][0]) == score_file(log, lag_ms=300)["accuracy"]
    assert fer_score([str(log), "--plot", str(tmp_path / "x.png")]) == 2  # --plot needs --estimate-lag
    assert fer_score([str(log), "--agree-with", str(log), "--estimate-lag"]) == 2
    assert fer_score([str(log), "--estimate-lag", "--lag-ms", "100"]) == 2
    for bad in ("0:1000", "a:b:c", "0:1000:0", "100:0:10", "0:1e9:1"):
        assert fer_score([str(log), "--estimate-lag", "--lag-range", bad]) == 2
    assert fer_score([str(log), "--lag-ms", "nan"]) == 2
    capsys.readouterr()
    bad = tmp_path / "bad.csv"
    bad.write_text("time_sec,pred_label,manual_label\n0,Happy,Happy\n0.1,Happy,Joy\n")
    assert fer_score([str(bad), "--estimate-lag"]) == 2
    assert "line 3: unknown manual_label 'Joy'" in capsys.readouterr().err
    assert fer_score([]) == 2


def test_parse_lag_range():
    assert parse_lag_range("0:1000:50") == list(range(0, 1001, 50))
    assert parse_lag_range("0:100:30") == [0, 30, 60, 90]
    assert parse_lag_range("-100:100:100") == [-100, 0, 100]
    assert parse_lag_range("0:0.3:0.1") == [0, 0.1, 0.2, 0.3]


def test_best_lag_none_when_nothing_is_scored():
    scan = score_lags([0.0, 0.1], ["Happy"] * 2, ["Happy"] * 2, [0, 50])
    assert scan["best_lag_ms"] is None and scan["curve"][0]["accuracy"] is None


# ---------------------------------------------------------------- two raters


def iv(a, b, label):
    return LabelInterval(float(a), float(b), label)


def test_kappa_hand_worked_one_100ms_stretch():
    # A: Happy [0, 1000), Sad [1000, 2000). B: Happy [0, 1100), Sad [1100, 2000).
    # 200 samples (0, 10, .., 1990); they differ on 1000 .. 1090 = 10 samples: po = 190/200 = 0.95.
    # A: Happy 100, Sad 100; B: Happy 110, Sad 90 -> pe = (100*110 + 100*90) / 200^2 = 0.5.
    # kappa = (0.95 - 0.5) / (1 - 0.5) = 0.9; no `none` sample, so kappa_labelled is the same.
    a = [iv(0, 1000, "Happy"), iv(1000, 2000, "Sad")]
    b = [iv(0, 1100, "Happy"), iv(1100, 2000, "Sad")]
    r = agreement_from_intervals(a, b)
    assert r["n_samples"] == 200 and r["start_ms"] == 0 and r["end_ms"] == 2000
    assert r["observed_agreement"] == pytest.approx(0.95)
    assert r["kappa"] == pytest.approx(0.9)
    assert r["kappa_labelled"] == pytest.approx(0.9) and r["n_labelled_samples"] == 200
    assert r["disagreements"] == [{"start_ms": 1000.0, "end_ms": 1100.0, "a": "Sad", "b": "Happy"}]
    # Happy: either says it on 0..1090 (110 samples), both on 0..990 (100); Sad: either 1000..1990 (100), both 90
    assert r["per_class"]["Happy"] == {"agreement": pytest.approx(100 / 110), "n_either": 110, "n_both": 100}
    assert r["per_class"]["Sad"] == {"agreement": pytest.approx(0.9), "n_either": 100, "n_both": 90}


def test_kappa_with_none_and_the_pe_one_convention():
    # A: Happy [0, 1000); B: Happy [0, 900). 100 samples; the last 10 are Happy vs none.
    # po = 0.9; A: Happy 100; B: Happy 90, none 10 -> pe = 1.0*0.9 + 0*0.1 = 0.9 -> kappa = 0.
    # Both hold a class on the first 90 samples only, all Happy: pe = po = 1 -> kappa_labelled 1.0 (by definition).
    r = agreement_from_intervals([iv(0, 1000, "Happy")], [iv(0, 900, "Happy")])
    assert r["n_samples"] == 100
    assert r["kappa"] == pytest.approx(0.0, abs=1e-12)
    assert r["n_labelled_samples"] == 90 and r["kappa_labelled"] == 1.0
    assert r["disagreements"] == [{"start_ms": 900.0, "end_ms": 1000.0, "a": "Happy", "b": "none"}]
    assert r["per_class"] == {"Happy": {"agreement": 0.9, "n_either": 100, "n_both": 90}}


def test_identical_tracks_give_kappa_one_and_empty_tracks_none():
    a = [iv(0, 500, "Happy"), iv(700, 1500, "Sad"), iv(1500, 1600, "Angry")]
    r = agreement_from_intervals(a, list(a))
    assert r["kappa"] == 1.0 and r["kappa_labelled"] == 1.0 and r["disagreements"] == []
    assert r["start_ms"] == 0 and r["end_ms"] == 1600 and r["n_samples"] == 160
    assert all(v["agreement"] == 1.0 for v in r["per_class"].values())
    one = agreement_from_intervals([iv(0, 300, "Happy")], [iv(0, 300, "Happy")])
    assert one["kappa"] == 1.0  # pe == 1 and po == 1
    empty = agreement_from_intervals([], [])
    assert empty["n_samples"] == 0 and empty["kappa"] is None and empty["kappa_labelled"] is None
    assert cohen_kappa([], []) is None


def test_range_is_the_earliest_start_to_the_latest_end_over_both_tracks():
    # A starts at 100, B ends at 455: samples 100, 110, .., 450 (36); the last is clipped to the end in segments
    r = agreement_from_intervals([iv(100, 300, "Happy")], [iv(200, 455, "Happy")])
    assert r["start_ms"] == 100 and r["end_ms"] == 455 and r["n_samples"] == 36
    assert r["disagreements"] == [{"start_ms": 100.0, "end_ms": 200.0, "a": "Happy", "b": "none"},
                                  {"start_ms": 300.0, "end_ms": 455.0, "a": "none", "b": "Happy"}]


def _random_track(rng, classes):
    out, x = [], rng.uniform(0, 300)
    while x < 6000:
        d = rng.uniform(20, 900)
        if rng.random() < 0.8:
            out.append(iv(round(x, 1), round(x + d, 1), rng.choice(classes)))
        x += d + (rng.uniform(0, 300) if rng.random() < 0.4 else 0)
    return out


def test_kappa_matches_sklearn_on_random_tracks(tmp_path, capsys):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(3)
    classes = ["Happy", "Sad", "Neutral", "Angry"]
    for trial in range(25):
        a, b = _random_track(rng, classes), _random_track(rng, classes)
        r = agreement_from_intervals(a, b)
        # resample independently with session_log.label_at, at start + 10 k before the end
        start = min(x.start_ms for x in a + b)
        end = max(x.end_ms for x in a + b)
        times = []
        k = 0
        while start + 10 * k < end:
            times.append(start + 10 * k)
            k += 1
        sa = [label_at(a, x) or "none" for x in times]
        sb = [label_at(b, x) or "none" for x in times]
        assert r["n_samples"] == len(times)
        assert r["kappa"] == pytest.approx(sklearn_metrics.cohen_kappa_score(sa, sb), abs=1e-9)
        both = [(x, y) for x, y in zip(sa, sb) if x != "none" and y != "none"]
        assert r["n_labelled_samples"] == len(both)
        assert r["kappa_labelled"] == pytest.approx(
            sklearn_metrics.cohen_kappa_score([x for x, _ in both], [y for _, y in both]), abs=1e-9)
        # the disagreement segments cover exactly the differing samples
        differ = sum(1 for x, y in zip(sa, sb) if x != y)
        covered = sum(sum(1 for x in times if d["start_ms"] <= x < d["end_ms"]) for d in r["disagreements"])
        assert covered == differ
    write_label_intervals(tmp_path / "a.csv", a)
    write_label_intervals(tmp_path / "b.csv", b)
    assert fer_score(["--agreement", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kappa"] == pytest.approx(r["kappa"], abs=1e-6)  # the files round times to 0.001 ms
    assert out["a"] == str(tmp_path / "a.csv")
    assert fer_score(["--agreement", str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]) == 0
    assert "kappa_labelled" in capsys.readouterr().out


def test_agreement_cli_refusals(tmp_path, capsys):
    write_label_intervals(tmp_path / "a.csv", [iv(0, 100, "Happy")])
    (tmp_path / "bad.csv").write_text("start_ms,end_ms,label\n0,100,Joy\n")
    assert fer_score(["log.csv", "--agreement", str(tmp_path / "a.csv"), str(tmp_path / "a.csv")]) == 2
    assert fer_score(["--agreement", str(tmp_path / "a.csv"), str(tmp_path / "bad.csv"), "--json"]) == 2
    assert "unknown label 'Joy'" in capsys.readouterr().err
    assert fer_score(["--agreement", str(tmp_path / "a.csv"), str(tmp_path / "missing.csv")]) == 2
    assert fer_score(["--agreement", str(tmp_path / "a.csv"), str(tmp_path / "a.csv"), "--lag-ms", "10"]) == 2


def test_accumulator_unchanged_by_lag_module():
    # ScoreAccumulator fed the shifted labels equals the reference on them (the path fer-score --lag-ms takes)
    t, pred, manual = lead_timeline()
    shifted = apply_lag(t, manual, 200)
    acc = ScoreAccumulator()
    acc.extend(t, pred, shifted)
    assert acc.result() == score_session(t, pred, shifted)


# ---------------------------------------------------------------- lag effect and plot


def test_estimate_lag_reports_how_each_metric_moves_and_plots_the_curve(tmp_path, capsys):
    import cv2

    t, pred, manual = lead_timeline()
    log = tmp_path / "per_frame.csv"
    _write_log(log, t, pred, manual)
    png = tmp_path / "lag.png"
    assert fer_score([str(log), "--estimate-lag", "--json", "--exclusion-ms", "0", "--lag-range", "0:600:100",
                      "--plot", str(png)]) == 0
    out = json.loads(capsys.readouterr().out)
    curve = {c["lag_ms"]: c for c in out["curve"]}
    eff = out["effect"]
    assert eff["reference_lag_ms"] == 0 and eff["best_lag_ms"] == 300 == out["best_lag_ms"]
    acc = eff["accuracy"]
    assert acc["at_reference"] == curve[0]["accuracy"] and acc["at_best"] == 1.0
    assert acc["change"] == pytest.approx(1.0 - curve[0]["accuracy"])
    assert acc["max"] == {"value": 1.0, "lag_ms": 300}
    low = min(out["curve"], key=lambda c: c["accuracy"])
    assert acc["min"] == {"value": low["accuracy"], "lag_ms": low["lag_ms"]}
    for key in ("macro_f1", "time_to_lock_median_ms", "lock_rate"):
        assert eff[key]["at_reference"] == curve[0][key] and eff[key]["at_best"] == curve[300][key]
    # the predictions lead the labels, so up to 300 ms every segment locks on its first row; a lag past the
    # lead moves the labels ahead of the predictions: at 600 ms the Sad and Angry segments (from 0.9 and 2.1 s)
    # lock only when the prediction changes 300 ms later (median of 0, 300, 300 ms)
    ttl = eff["time_to_lock_median_ms"]
    assert ttl["at_best"] == ttl["at_reference"] == 0.0
    assert [curve[lag]["time_to_lock_median_ms"] for lag in (400, 500, 600)] == pytest.approx([100.0, 200.0, 300.0])
    assert ttl["max"]["lag_ms"] == 600 and ttl["max"]["value"] == pytest.approx(300.0)
    assert out["plot"] == str(png)
    img = cv2.imread(str(png))
    assert img.shape == (560, 960, 3)
    # the accuracy line (BGR 180,119,31) is drawn, and the image is not blank
    assert np.any(np.all(np.abs(img.astype(int) - (180, 119, 31)) < 8, axis=2))
    assert fer_score([str(log), "--estimate-lag"]) == 0  # the table shows the same effect lines
    text = capsys.readouterr().out
    assert "accuracy:" in text and "at the best lag" in text
    assert fer_score([str(log), "--estimate-lag", "--plot", str(tmp_path / "lag.jpg")]) == 2
    assert str(tmp_path / "lag.jpg") in capsys.readouterr().err


# ---------------------------------------------------------------- scoring where both raters agree


def test_agree_with_scores_only_where_the_second_rater_agrees(tmp_path, capsys):
    t = [round(i / 10, 3) for i in range(40)]
    manual = ["Happy"] * 20 + ["Sad"] * 20
    # B agrees on Happy, says Angry for 2.0-3.0 s, then agrees on Sad; the model follows B's Angry there
    b = write_label_intervals(tmp_path / "b.csv", [LabelInterval(0, 2000, "happy"), LabelInterval(2000, 3000, "Angry"),
                                                   LabelInterval(3000, 4000, "Sad")])
    pred = ["Happy"] * 20 + ["Angry"] * 10 + ["Sad"] * 10
    log = tmp_path / "per_frame.csv"
    _write_log(log, t, pred, manual)
    from fer_models.scoring import agreed_labels
    from fer_models.session_log import read_label_intervals

    agreed = agreed_labels(t, manual, read_label_intervals(b))
    assert agreed == ["Happy"] * 20 + [""] * 10 + ["Sad"] * 10
    assert fer_score([str(log), "--agree-with", str(b), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["agree_with"] == str(b) and out["n_labelled_rows"] == 40 and out["n_agreeing_rows"] == 30
    assert {k: v for k, v in out.items() if k not in ("agree_with", "n_labelled_rows", "n_agreeing_rows")} == \
        score_session(t, pred, agreed)
    assert out["accuracy"] == 1.0 and score_session(t, pred, manual)["accuracy"] < 1.0
    # Sad now starts at 3.0 s: its segment (3.0-3.9 s) is scored from 3.25 s on, as after a label change
    assert out["n_segments"] == 2
    # with a lag both raters' labels are looked up at t + L
    assert fer_score([str(log), "--agree-with", str(b), "--lag-ms", "500", "--json"]) == 0
    lagged = json.loads(capsys.readouterr().out)
    shifted = apply_lag(t, manual, 500)
    assert lagged["n_agreeing_rows"] == sum(1 for x in agreed_labels(t, shifted, read_label_intervals(b), 500) if x)
    assert lagged["lag_ms"] == 500 and lagged["n_labelled_rows"] == 35
    bad = tmp_path / "bad.csv"
    bad.write_text("start_ms,end_ms,label\n0,100,Joy\n")
    assert fer_score([str(log), "--agree-with", str(bad)]) == 2
    assert f"{bad}: line 2: unknown label 'Joy'" in capsys.readouterr().err


def test_a_summary_of_the_first_release_is_upgraded_with_a_lag_column(tmp_path):
    from fer_models.scoring import DEMO_SUMMARY_COLUMNS, LEGACY_DEMO_SUMMARY_COLUMNS, append_demo_summary
    from fer_models.session_log import read_csv_table

    path = tmp_path / "demo_results_summary.csv"
    old_row = ["2026-11-01T10:00:00+00:00", "s1", "/x/per_frame.csv", "m", "0.7", "0.08", "15", "", "8", "600.0",
               "250.0", "500.0", "0.5", "0.4", "3.0", "700.0", "1.0", "20", "2"]
    path.write_text(",".join(LEGACY_DEMO_SUMMARY_COLUMNS) + "\n" + ",".join(old_row) + "\n")
    append_demo_summary(path, {"session": "s2", "accuracy": 0.75, "lag_ms": 250.0})
    rows = read_csv_table(path, DEMO_SUMMARY_COLUMNS)
    assert list(rows) == list(DEMO_SUMMARY_COLUMNS) and list(rows)[-1] == "lag_ms"
    assert [rows[c][0] for c in LEGACY_DEMO_SUMMARY_COLUMNS] == old_row  # the old row, value for value
    assert rows["lag_ms"] == ["0", "250.0"] and rows["session"] == ["s1", "s2"]
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    from fer_models.errors import ArtifactError

    with pytest.raises(ArtifactError, match="other columns"):
        append_demo_summary(other, {"session": "s"})
    assert other.read_text() == "a,b\n1,2\n"
