"""fer-train status: epochs done, best val and time left, from a run folder's files alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.cli import main
from training.run_status import run_status

HEADER = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n"


def _run(root: Path, name: str, epochs: int, rows: list[tuple[float, float]], finished: bool = False) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "args.json").write_text(json.dumps({"epochs": epochs}))
    if rows:
        (run / "history.csv").write_text(HEADER + "".join(
            f"{i},1.0,0.5,1.2,{val},1e-3,{sec}\n" for i, (val, sec) in enumerate(rows)))
    if finished:
        (run / "summary.json").write_text("{}")
    return run


def test_unfinished_run_time_left_is_at_the_median_epoch_pace(tmp_path):
    # the third epoch held a long pause: the median, not the mean, is the pace
    run = _run(tmp_path, "teacher_x", 10, [(0.30, 600.0), (0.42, 660.0), (0.40, 9000.0), (0.45, 630.0)])
    s = run_status(run)
    assert (s["state"], s["epochs_done"], s["epochs_planned"]) == ("unfinished", 4, 10)
    assert s["best_val_acc"] == 0.45 and s["best_epoch"] == 4 and s["last_val_acc"] == 0.45
    assert s["median_epoch_s"] == pytest.approx(645.0)
    assert s["hours_left"] == pytest.approx(6 * 645.0 / 3600)


def test_finished_and_not_started_runs(tmp_path):
    done = run_status(_run(tmp_path, "done", 3, [(0.5, 60.0), (0.6, 60.0), (0.6, 60.0)], finished=True))
    assert done["state"] == "finished" and done["hours_left"] is None
    assert done["best_val_acc"] == 0.6 and done["best_epoch"] == 2  # the first epoch that reached the best
    fresh = run_status(_run(tmp_path, "fresh", 20, []))
    assert fresh["state"] == "not started" and fresh["best_val_acc"] is None and fresh["hours_left"] is None


def test_cli_table_skips_folders_that_are_not_runs(tmp_path, capsys):
    a = _run(tmp_path, "a_s1", 4, [(0.3, 120.0), (0.4, 180.0)])
    b = _run(tmp_path, "b_s1", 2, [(0.5, 60.0), (0.55, 60.0)], finished=True)
    ens = tmp_path / "ens_x"
    ens.mkdir()
    (ens / "ensemble.json").write_text("{}")
    assert main(["status", str(a), str(b), str(ens)]) == 0
    out = capsys.readouterr().out
    assert "| a_s1 | unfinished | 2 / 4 | 0.4000 | 0.4000 (2) | 2.5 | 0.1 |" in out
    assert "| b_s1 | finished | 2 / 2 | 0.5500 | 0.5500 (2) | 1.0 | - |" in out
    assert "ens_x" not in out and "1 unfinished runs: 0.1 core-hours left" in out
    assert main(["status", str(a), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs_done"] == 2


def test_a_checkpoint_inside_an_epoch_counts_towards_the_time_left(tmp_path, capsys):
    import torch

    run = _run(tmp_path, "student_x", 5, [(0.30, 600.0), (0.40, 600.0)])
    args = json.loads((run / "args.json").read_text())
    (run / "args.json").write_text(json.dumps({**args, "steps_per_epoch": 10}))
    torch.save({"partial": {"epoch": 2, "next_step": 4}, "state_dict": {"w": torch.zeros(3)}}, run / "partial.pt")
    s = run_status(run)
    assert s["partial_epoch"] == pytest.approx(0.4) and s["epochs_done"] == 2
    assert s["hours_left"] == pytest.approx(2.6 * 600.0 / 3600)
    assert main(["status", str(run)]) == 0
    assert "| student_x | unfinished | 2 (+40%) / 5 |" in capsys.readouterr().out
    (run / "partial.pt").write_bytes(b"cut short")  # unreadable: left out, whole epochs only
    assert run_status(run)["partial_epoch"] is None and run_status(run)["hours_left"] == pytest.approx(3 * 600.0 / 3600)
