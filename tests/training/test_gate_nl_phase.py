"""``fer-train gate nl-phase``: finite losses, memory flat and val vs the plain seeds, judged from history.csv."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from training.cli import main
from training.gate import run_gate
from training.gate_nl_phase import RECORD_FILE
from training.loop import HISTORY_COLUMNS

RECIPE = {"backbone": "mobilenetv3_large_100", "input_size": 48, "stem_stride": 1, "epochs": 4,
          "index_fingerprint": "f" * 64}


def fake_run(root: Path, name: str, val: list[float], rss: list[float] | None = None, loss: list | None = None,
             state: list[str] | None = None, grad: bool = True, **recipe) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "args.json").write_text(json.dumps({**RECIPE, **recipe}))
    n = len(val)
    rss = rss or [1500.0] * n
    loss = loss or [1.5 - 0.1 * i for i in range(n)]
    state = state or ["32.125"] * n
    with (run / "history.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, HISTORY_COLUMNS)
        w.writeheader()
        for i in range(n):
            w.writerow({"epoch": i, "train_loss": loss[i], "train_acc": 0.5, "val_loss": 1.2, "val_acc": val[i],
                        "lr": 1e-3, "seconds": 1, "train_samples": 10, "sec_per_batch": 0.1, "images_per_sec": 100,
                        "grad_norm_mean": 3.0 if grad else "", "grad_norm_max": 5.0 if grad else "",
                        "peak_rss_mb": rss[i], "gpu_peak_mb": "", "optimizer_state_mb": state[i]})
    return run


@pytest.fixture
def plain(tmp_path) -> list[Path]:
    return [fake_run(tmp_path, f"plain_{s}", [0.3, 0.5, 0.58, v]) for s, v in ((1, 0.60), (2, 0.62), (3, 0.58))]


def _items(res) -> dict[str, tuple[bool, str]]:
    return {i.item: (i.ok, i.reason) for i in res.items}


def test_a_healthy_run_within_one_sd_of_the_plain_seeds_is_go(tmp_path, plain):
    nl = fake_run(tmp_path, "nl", [0.3, 0.5, 0.57, 0.585], rss=[1400, 1500, 1520, 1530])  # mean 0.60, sd 0.02
    res = run_gate("nl-phase", [nl], baselines=plain)
    assert res.go, [i.line() for i in res.items]
    got = _items(res)
    assert "0.5850 >= plain mean - 1 sd = 0.6000 - 0.0200" in got["val vs plain"][1]
    assert "peak RSS +30.0 MB" in got["memory flat"][1]  # from the second epoch (1500), not the first
    record = json.loads((nl / RECORD_FILE).read_text())
    assert record["status"] == "GO" and len(record["items"]) == 3 and record["baselines"] == [str(p) for p in plain]


@pytest.mark.parametrize("kwargs, item, words", [
    (dict(val=[0.3, 0.5, 0.55, 0.575]), "val vs plain", "0.5750 < plain mean - 1 sd"),
    (dict(val=[0.3, 0.5, 0.6, 0.6], rss=[1400, 1500, 1540, 1570]), "memory flat", "+70.0 MB"),
    (dict(val=[0.3, 0.5, 0.6, 0.6], state=["32", "32", "64", "64"]), "memory flat", "optimizer state changed"),
    (dict(val=[0.3, 0.5, 0.6, 0.6], loss=[1.5, "nan", 1.0, 0.9]), "finite", "train_loss = 'nan'"),
    (dict(val=[0.3, 0.5, 0.6, 0.6], grad=False), "finite", "not logged"),
    (dict(val=[0.3, 0.6]), "memory flat", "2 epochs"),
])
def test_each_rail_stops_the_phase(tmp_path, plain, kwargs, item, words):
    run = fake_run(tmp_path, "nl", **kwargs)
    res = run_gate("nl-phase", [run], baselines=plain)
    ok, reason = _items(res)[item]
    assert not ok and words in reason and not res.go
    assert json.loads((run / RECORD_FILE).read_text())["status"] == "NO-GO"


def test_baselines_must_be_two_seeds_of_the_same_recipe(tmp_path, plain):
    run = fake_run(tmp_path, "nl", [0.3, 0.5, 0.6, 0.61])
    assert "at least 2 seeds" in _items(run_gate("nl-phase", [run], baselines=plain[:1]))["val vs plain"][1]
    other = fake_run(tmp_path, "plain_64", [0.3, 0.5, 0.6, 0.7], input_size=64)
    reason = _items(run_gate("nl-phase", [run], baselines=[plain[0], other]))["val vs plain"][1]
    assert "another recipe: input_size 64 vs 48" in reason
    l1 = fake_run(tmp_path, "plain_l1", [0.3, 0.5, 0.6, 0.7], last_stride=1)
    reason = _items(run_gate("nl-phase", [run], baselines=[plain[0], l1]))["val vs plain"][1]
    assert "another recipe: last_stride 1 vs None" in reason
    elsewhere = fake_run(tmp_path, "plain_idx", [0.3, 0.5, 0.6, 0.7], index_fingerprint="0" * 64)
    assert "another index" in _items(run_gate("nl-phase", [run], baselines=[plain[0], elsewhere]))["val vs plain"][1]


def test_cli(tmp_path, plain, capsys):
    run = fake_run(tmp_path, "nl", [0.3, 0.5, 0.6, 0.61])
    argv = ["gate", "nl-phase", str(run)] + [a for p in plain for a in ("--baseline", str(p))]
    assert main(argv) == 0
    assert "gate nl-phase: GO (3 of 3 items GO)" in capsys.readouterr().out
    assert main(["gate", "nl-negl", str(run), "--baseline", str(plain[0])]) == 2
    assert "nl-phase stage only" in capsys.readouterr().err
