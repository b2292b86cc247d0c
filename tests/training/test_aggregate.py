"""Multi-seed aggregation on hand-made runs whose figures are known."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from fer_models.classes import FER7, write_classes_json, write_json
from training.aggregate import aggregate, paired_bootstrap
from training.artifacts import save_npz

LABELS = np.array([0, 1, 2, 3, 4, 5, 6, 3, 3, 6])


def make_run(root, name, config, seed, n_correct, **recipe):
    """A run whose test predictions are right on the first n_correct of 10 images."""
    run = root / name
    run.mkdir()
    pred = LABELS.copy()
    pred[n_correct:] = (LABELS[n_correct:] + 1) % 7
    logits = np.eye(7)[pred] * 5.0
    save_npz(run / "logits_test.npz", logits=logits.astype(np.float32), labels=LABELS, positions=np.arange(10),
             sample_id=np.array([f"s{i}" for i in range(10)]), index_fingerprint=np.array("fp"),
             classes=np.array(FER7))
    write_classes_json(run)
    write_json(run / "args.json", {"config": config, "distill": "kd", "lr": 0.002, "seed": seed,
                                   "out": str(run), **recipe})
    write_json(run / "seed.json", {"seed": seed})
    return run


def test_mean_std_interval_and_rows(tmp_path):
    runs = [make_run(tmp_path, f"dkd_s{s}", "dkd", s, n) for s, n in ((1337, 6), (2025, 7), (42, 8))]
    runs += [make_run(tmp_path, f"ce_s{s}", "ce", s, 5) for s in (1337, 2025)]
    out = tmp_path / "results_summary_students.csv"
    res = aggregate(runs, out, n_boot=300, compare=("dkd", "ce"))
    dkd = res["configs"]["dkd"]
    assert dkd["n_runs"] == 3
    assert dkd["test_accuracy"] == pytest.approx(0.7)  # (0.6 + 0.7 + 0.8) / 3
    assert dkd["test_accuracy_std"] == pytest.approx(0.1)  # sample std of 0.6, 0.7, 0.8
    assert dkd["test_accuracy_ci_low"] <= 0.7 <= dkd["test_accuracy_ci_high"]
    assert dkd["test_accuracy_ci_high"] - dkd["test_accuracy_ci_low"] > 0.1  # 10 images: a wide interval
    ce = res["configs"]["ce"]
    assert ce["test_accuracy"] == pytest.approx(0.5) and ce["test_accuracy_std"] == pytest.approx(0.0)
    assert res["paired"]["diff_mean"] == pytest.approx(0.2)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["row_type"] for r in rows] == ["run"] * 5 + ["config", "config", "paired"]
    assert {r["seed"] for r in rows if r["row_type"] == "run"} == {"1337", "2025", "42"}


def test_several_pairs_from_the_cli(tmp_path, capsys):
    from training.cli import main

    runs = [make_run(tmp_path, f"{c}_s{s}", c, s, n) for c, n in (("dkd", 7), ("kd", 6), ("ce", 5)) for s in (1, 2)]
    out = tmp_path / "summary.csv"
    assert main(["aggregate", *map(str, runs), "--out", str(out), "--bootstrap", "50",
                 "--compare", "dkd", "ce", "--compare", "kd", "ce"]) == 0
    with open(out, newline="") as fh:
        paired = [r for r in csv.DictReader(fh) if r["row_type"] == "paired"]
    assert [r["config"] for r in paired] == ["dkd - ce", "kd - ce"]
    assert [float(r["test_accuracy"]) for r in paired] == pytest.approx([0.2, 0.1])
    assert "paired kd - ce: +0.1000" in capsys.readouterr().out


def test_paired_bootstrap_of_identical_configs_is_zero():
    preds = [LABELS.copy()]
    pb = paired_bootstrap(preds, preds, LABELS, n_boot=50)
    assert pb["diff_mean"] == 0 and pb["ci_low"] == 0 and pb["ci_high"] == 0


def test_runs_on_different_test_sets_are_refused(tmp_path):
    a = make_run(tmp_path, "a_s1", "a", 1, 5)
    b = make_run(tmp_path, "b_s1", "b", 1, 5)
    data = dict(np.load(b / "logits_test.npz"))
    data["positions"] = data["positions"] + 100
    save_npz(b / "logits_test.npz", **data)
    with pytest.raises(Exception, match="different test sets"):
        aggregate([a, b], tmp_path / "x.csv", n_boot=10)


def test_a_config_whose_runs_differ_in_more_than_the_seed_is_refused(tmp_path):
    """An NL run filed under the plain KD configuration must not become one of its seeds."""
    kd = [make_run(tmp_path, f"kd_s{s}", "kd", s, 6, optimizer=None) for s in (1, 2)]
    nl = make_run(tmp_path, "kd-nl_s3", "kd", 3, 9, optimizer="nl")
    with pytest.raises(Exception, match=r"kd-nl_s3.*configuration 'kd'.*optimizer: None vs 'nl'"):
        aggregate([*kd, nl], tmp_path / "x.csv", n_boot=10)
    assert not (tmp_path / "x.csv").exists()
    # threads, paths and the seed differ between seeds of one recipe and are not compared
    res = aggregate([*kd, make_run(tmp_path, "kd_s4", "kd", 4, 7, threads=2)], tmp_path / "y.csv", n_boot=10)
    assert res["configs"]["kd"]["n_runs"] == 3
