"""Calibration on hand-made logits where the right temperature is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_models.calibration import DEFAULT_GRID, load_calibration, softmax
from fer_models.classes import FER7, write_classes_json
from training.artifacts import save_npz
from training.calibrate import fit_calibration
from training.cli import main


def _sampled(n, scale, seed):
    """Labels drawn from softmax(u); logits scale * u, so T = scale recovers the true probabilities."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0, 1.5, (n, 7))
    p = softmax(u)
    y = np.array([rng.choice(7, p=row) for row in p])
    return (scale * u).astype(np.float32), y


def _write_run(run, val, test):
    write_classes_json(run, FER7)
    for split, (z, y) in (("val", val), ("test", test)):
        save_npz(run / f"logits_{split}.npz", logits=z, labels=y, positions=np.arange(len(y)),
                 sample_id=np.array([f"{split}/{i}" for i in range(len(y))]),
                 index_fingerprint=np.array("f" * 64), classes=np.array(FER7))


def test_recovers_known_temperature():
    z, y = _sampled(6000, 3.0, 0)
    cal, sweep = fit_calibration(z, y, FER7)
    assert cal.temperature == pytest.approx(3.0, abs=0.26)
    assert not cal.extra["on_grid_edge"] and cal.split == "val"
    assert len(sweep) == len(DEFAULT_GRID) and min(DEFAULT_GRID) == 0.25 and max(DEFAULT_GRID) == 10.0


def test_underconfident_logits_get_t_below_one():
    z, y = _sampled(6000, 0.5, 1)
    cal, _ = fit_calibration(z, y, FER7)
    assert cal.temperature == pytest.approx(0.5, abs=0.06)


def test_edge_of_grid_warns(capsys):
    y = np.arange(700) % 7
    z = np.eye(7)[y] * 1.0  # always right with low confidence: NLL keeps falling as T shrinks
    cal, _ = fit_calibration(z, y, FER7)
    assert cal.temperature == 0.25 and cal.extra["on_grid_edge"]
    assert "edge of the grid" in capsys.readouterr().err


def test_calibrate_run_fits_on_val_and_reports_test(tmp_path, capsys):
    run = tmp_path / "run"
    # val says T=3, test would say T=1.5: the file must hold the val answer
    _write_run(run, _sampled(5000, 3.0, 2), _sampled(5000, 1.5, 3))
    assert main(["calibrate", str(run)]) == 0
    cal = load_calibration(run, FER7)
    assert cal.temperature == pytest.approx(3.0, abs=0.26) and cal.split == "val"
    assert set(cal.metrics_before) == {"val", "test"} and set(cal.metrics_after) == {"val", "test"}
    assert cal.metrics_after["val"]["nll"] < cal.metrics_before["val"]["nll"]
    assert cal.metrics_after["val"]["ece"] < cal.metrics_before["val"]["ece"]
    assert cal.metrics_after["test"]["accuracy"] == cal.metrics_before["test"]["accuracy"]
    rel = json.loads((run / "reliability_metrics.json").read_text())
    assert {"nll", "ece", "brier", "macro_f1", "accuracy", "temperature"} <= set(rel["grid"][0])
    assert len(rel["bins_after"]) == 15
    for name in ("reliability_val.png", "reliability_test.png"):
        assert (run / name).stat().st_size > 1000
    out = capsys.readouterr().out
    assert "test  before" in out and "test  after" in out

    assert main(["calibrate", str(run), "--per-class"]) == 0
    cal = load_calibration(run, FER7)
    assert len(cal.per_class_temperature) == 7
    assert all(1.0 < t < 6.0 for t in cal.per_class_temperature)
