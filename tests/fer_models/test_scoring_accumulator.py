"""ScoreAccumulator (incremental scoring) against score_session (the reference), and fer-score's streaming.

The accumulator must give exactly the reference's dict (every key, floats bit for bit) after any
number of rows, so the live panel and fer-score can use it in place of re-scoring every row.
"""

from __future__ import annotations

import json
import random

import pytest

from fer_models.classes import FER7
from fer_models.scoring import ScoreAccumulator, ScoringInputError, score_session
from fer_models.scoring_cli import main as fer_score, score_file

LABELS_EMPTY = ("", "(unstable)")


def _same(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for key in want:
        a, b = got[key], want[key]
        if a is None or b is None:
            assert a is b, (key, a, b)
        else:
            assert type(a) is type(b) and a == b, (key, a, b)  # exact: the same float, not approx


def random_timeline(rng: random.Random):
    """Random label runs (empty labels included), unstable / flickering predictions, irregular times."""
    n = rng.randint(0, 500)
    style = rng.choice(["grid", "jitter", "rounded", "offset"])
    step = rng.choice([1 / 30, 0.1, 0.05, 1 / 29.97, 0.2])
    base = rng.choice([0.0, 0.0, 1234.5, -3.0])
    t, cur = [], base
    for i in range(n):
        if style == "grid":
            t.append(base + i * step)  # exactly aligned frames: lock windows end exactly on a row
        elif style == "rounded":
            t.append(round(cur, 6))  # as per_frame.csv holds them
        else:
            t.append(cur)
        r = rng.random()
        if r < 0.05:
            continue  # a repeated time
        if r < 0.09:
            cur += rng.uniform(0.0, 2.0)  # a pause / seek
        else:
            cur += step * (rng.uniform(0.4, 1.6) if style == "jitter" else 1.0)
    if style == "grid":
        t = sorted(t)
    classes = list(FER7[: rng.randint(1, 7)])
    manual: list[str] = []
    while len(manual) < n:
        manual += [rng.choice(classes + list(LABELS_EMPTY) + [""])] * rng.randint(1, 70)
    manual = manual[:n]
    noise = rng.random()
    pred = []
    for i in range(n):
        r = rng.random()
        if r < 0.3 * noise:
            pred.append(rng.choice(["(unstable)", ""]))
        elif r < 0.5 * noise:
            pred.append(rng.choice(FER7))
        else:
            lagged = manual[max(0, i - rng.randint(0, 12))]
            pred.append(lagged.upper() if lagged and lagged != "(unstable)" else "(unstable)")
    return t, pred, manual


@pytest.mark.parametrize("seed", range(8))
def test_accumulator_equals_score_session_on_random_timelines(seed):
    rng = random.Random(seed)
    for _ in range(60):
        t, pred, manual = random_timeline(rng)
        params = {}
        if rng.random() < 0.4:
            params = {"min_hold_ms": rng.choice([0, 100, 600, 1500]), "exclusion_ms": rng.choice([0, 50, 250]),
                      "lock_ms": rng.choice([0, 100, 500, 1000])}
        acc = ScoreAccumulator(**params)
        checks = sorted(set(rng.sample(range(len(t) + 1), min(len(t) + 1, 10)) + [len(t)]))
        k = 0
        for c in checks:
            while k < c:
                acc.add(t[k], pred[k], manual[k])
                k += 1
            _same(acc.result(), score_session(t[:c], pred[:c], manual[:c], **params))
        assert acc.n_rows == len(t)


def test_accumulator_after_every_row_on_the_hand_timeline():
    t = [i / 10 for i in range(40)]
    manual = [""] * 10 + ["Happy"] * 20 + ["Sad"] * 10
    pred = ["(unstable)"] * 13 + ["Happy"] * 22 + ["Sad"] * 5
    acc = ScoreAccumulator()
    for i in range(40):
        acc.add(t[i], pred[i], manual[i])
        _same(acc.result(), score_session(t[: i + 1], pred[: i + 1], manual[: i + 1]))
    assert acc.result()["lock_rate"] == 0.5


def test_open_segment_lock_is_withdrawn_when_a_miss_arrives_inside_its_window():
    # Happy at 0.0 .. 0.5 s locks at once (window [0, 0.5] all Happy); a second row at 0.5 s that
    # predicts Sad falls inside that window, and no later start fits before the last row: no lock.
    t = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    acc = ScoreAccumulator(min_hold_ms=0)
    for x in t:
        acc.add(x, "Happy", "Happy")
    assert acc.result()["lock_rate"] == 1.0 and acc.result()["time_to_lock_ms_median"] == 0.0
    acc.add(0.5, "Sad", "Happy")
    r = acc.result()
    assert r["lock_rate"] == 0.0 and r["time_to_lock_ms_median"] is None
    _same(r, score_session(t + [0.5], ["Happy"] * 6 + ["Sad"], ["Happy"] * 7, min_hold_ms=0))


def test_empty_and_unscored_sessions_give_nulls():
    acc = ScoreAccumulator()
    _same(acc.result(), score_session([], [], []))
    assert acc.result() == {"accuracy": None, "macro_f1": None, "jitter_per_min": None,
                            "time_to_lock_ms_median": None, "lock_rate": None, "n_scored_frames": 0,
                            "n_segments": 0}
    for i in range(5):  # a 0.4 s Happy segment: too short to score
        acc.add(i / 10, "Happy", "Happy")
    assert acc.result()["accuracy"] is None and acc.result()["n_segments"] == 0


def test_bad_rows_are_refused_with_their_index_and_not_kept():
    acc = ScoreAccumulator()
    acc.add(0.0, "Happy", "Happy")
    acc.add(0.1, "Happy", "Happy")
    with pytest.raises(ScoringInputError, match=r"row 3: time goes backwards \(0.100 s -> 0.050 s\)") as e:
        acc.add(0.05, "Happy", "Happy")
    assert e.value.row == 2
    with pytest.raises(ScoringInputError, match="row 3: unknown pred_label 'Joy'"):
        acc.add(0.2, "Joy", "Happy")
    with pytest.raises(ScoringInputError, match="row 3: unknown manual_label 'Glad'"):
        acc.add(0.2, "Happy", "Glad")
    with pytest.raises(ScoringInputError, match="row 3: time_sec is not a finite number"):
        acc.add(float("nan"), "Happy", "Happy")
    assert acc.n_rows == 2
    for i in range(2, 12):
        acc.add(i / 10, "Happy", "Happy")
    t = [i / 10 for i in range(12)]
    _same(acc.result(), score_session(t, ["Happy"] * 12, ["Happy"] * 12))


def test_closed_segments_keep_no_rows():
    """Memory and update cost stay flat: only the open (labelled) segment's rows are held."""
    rng = random.Random(3)
    acc = ScoreAccumulator()
    i, run, last = 0, 0, None
    for _ in range(400):
        label = rng.choice(list(FER7) + [""])
        run = run if label == last else 0
        last = label
        for _ in range(rng.randint(1, 90)):
            acc.add(i / 30, label or "(unstable)", label)
            i += 1
            run += 1
        assert len(acc._seg.times) == (run if label else 0)
    assert acc.n_rows == i


# ---------------------------------------------------------------------------------------------- fer-score

def _write(path, t, pred, manual, blank_line_at=None):
    head = "frame_index,time_sec,manual_label,pred_label," + ",".join(f"prob_{c}" for c in FER7)
    lines = [head] + [f"{i},{a!r},{m},{p}," + ",".join(["0.1429"] * 7) for i, (a, p, m) in
                      enumerate(zip(t, pred, manual))]
    if blank_line_at is not None:
        lines.insert(blank_line_at, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_fer_score_streams_to_the_reference_result(tmp_path):
    rng = random.Random(11)
    for k in range(5):
        t, pred, manual = random_timeline(rng)
        log = tmp_path / f"log{k}.csv"
        _write(log, t, pred, manual)
        _same(score_file(log), score_session([float(repr(x)) for x in t], pred, manual))


def test_fer_score_names_the_real_line_after_a_blank_line(tmp_path, capsys):
    t = [0.0, 0.1, 0.2, 0.3]
    log = tmp_path / "per_frame.csv"
    _write(log, t, ["Happy", "Happy", "Joy", "Happy"], ["Happy"] * 4, blank_line_at=2)
    assert fer_score([str(log)]) == 2
    err = capsys.readouterr().err
    # header line 1, rows on lines 2, 4, 5, 6 (line 3 blank): the 'Joy' row is line 5
    assert f"{log}: line 5: unknown pred_label 'Joy'" in err


def test_fer_score_append_summary_to_a_directory_is_a_clear_error(tmp_path, capsys):
    t = [i / 10 for i in range(20)]
    log = tmp_path / "per_frame.csv"
    _write(log, t, ["Happy"] * 20, ["Happy"] * 20)
    folder = tmp_path / "sessions"
    folder.mkdir()
    assert fer_score([str(log), "--json", "--append-summary", str(folder)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.startswith("fer-score: error: ") and str(folder) in err and "is a directory" in err
    assert list(folder.iterdir()) == []
    # the library call names the path too
    from fer_models.errors import ArtifactError
    from fer_models.scoring import append_demo_summary
    with pytest.raises(ArtifactError, match="is a directory"):
        append_demo_summary(folder, {"session": "x"})
    # a file inside it works
    assert fer_score([str(log), "--json", "--append-summary", str(folder / "demo_results_summary.csv")]) == 0
    assert json.loads(capsys.readouterr().out)["n_segments"] == 1
