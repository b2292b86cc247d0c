from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from fer_models.calibration import (
    DEFAULT_GRID, Calibration, apply_calibration, brier_score, classification_metrics,
    expected_calibration_error, fit_per_class_temperature, load_calibration, macro_f1, negative_log_likelihood,
    on_grid_edge, reliability_report, save_calibration, save_reliability_metrics, load_reliability_metrics,
    select_from_sweep, select_temperature, softmax,
)
from fer_models.classes import FER7
from fer_models.errors import ArtifactError, ClassListMismatch


def test_ece_by_hand():
    # 4 samples, 2 classes. Confidences 0.9, 0.9 (bin 14: (0.9333.. no: 0.9 -> ceil(13.5)=14 -> bin 13), 0.6, 0.55.
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.55, 0.45]])
    labels = np.array([0, 1, 1, 1])
    # bin of 0.9 (13): acc 1/2, conf 0.9 -> weight 2/4 * 0.4 = 0.2
    # bin of 0.6 (8: (0.533, 0.6]): acc 1, conf 0.6 -> 1/4 * 0.4 = 0.1
    # bin of 0.55 (8 too): so bin 8 holds 0.6 (right) and 0.55 (wrong): acc 0.5, conf 0.575 -> 2/4 * 0.075
    expected = 0.5 * abs(0.5 - 0.9) + 0.5 * abs(0.5 - 0.575)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)


def test_brier_nll_and_macro_f1_match_definitions():
    rng = np.random.default_rng(1)
    probs = softmax(rng.normal(size=(200, 7)))
    labels = rng.integers(0, 7, 200)
    onehot = np.eye(7)[labels]
    assert brier_score(probs, labels) == pytest.approx(np.mean(((probs - onehot) ** 2).sum(1)))
    assert negative_log_likelihood(probs, labels) == pytest.approx(-np.mean(np.log(probs[np.arange(200), labels])))
    pred = probs.argmax(1)
    assert macro_f1(pred, labels) == pytest.approx(f1_score(labels, pred, average="macro"))
    m = classification_metrics(probs, labels)
    assert set(m) == {"nll", "ece", "brier", "macro_f1", "accuracy"}
    assert m["accuracy"] == pytest.approx(np.mean(pred == labels))


def test_apply_calibration_bias_and_temperatures():
    z = np.array([[2.0, 0.0, -1.0]])
    cal = Calibration(temperature=2.0, logit_bias=[0.0, 1.0, 0.0])
    assert apply_calibration(z, cal) == pytest.approx(softmax((z + [0, 1, 0]) / 2.0))
    per = Calibration(temperature=1.0, per_class_temperature=[1.0, 2.0, 4.0])
    assert apply_calibration(z[0], per) == pytest.approx(softmax(z[0] / np.array([1.0, 2.0, 4.0])))
    assert apply_calibration(z, None) == pytest.approx(softmax(z))


def test_select_temperature_recovers_the_generating_temperature():
    """Labels drawn from softmax(z / 2): the NLL-optimal temperature is close to 2."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, size=(20000, 7))
    p = softmax(z / 2.0)
    labels = np.array([rng.choice(7, p=row) for row in p])
    t = select_temperature(z, labels, DEFAULT_GRID)
    assert 1.85 <= t <= 2.15
    assert not on_grid_edge(t, DEFAULT_GRID)


def test_lexicographic_rule_tie_breaks():
    rows = [
        {"temperature": 0.8, "nll": 1.0000, "ece": 0.050, "macro_f1": 0.5},
        {"temperature": 1.2, "nll": 1.0005, "ece": 0.0204, "macro_f1": 0.5},  # within 1e-3 NLL
        {"temperature": 1.5, "nll": 1.0008, "ece": 0.0200, "macro_f1": 0.4},  # best ECE, lower F1
        {"temperature": 2.0, "nll": 1.0020, "ece": 0.0100, "macro_f1": 0.9},  # NLL too far: dropped first
    ]
    # NLL keeps 0.8, 1.2, 1.5; ECE min 0.0200 keeps 1.2 and 1.5 (0.0204 is within 1e-3); F1 picks 1.2.
    assert select_from_sweep(rows) == 1.2
    tie = [{"temperature": t, "nll": 1.0, "ece": 0.01, "macro_f1": 0.5} for t in (0.7, 1.2, 1.4)]
    assert select_from_sweep(tie) == 1.2  # closest to 1


def test_per_class_temperature_improves_nll_when_classes_differ():
    rng = np.random.default_rng(3)
    z = rng.normal(0, 3, size=(6000, 3))
    true_t = np.array([0.7, 1.5, 3.0])
    labels = np.array([rng.choice(3, p=row) for row in softmax(z / true_t)])
    t_global = select_temperature(z, labels)
    per = fit_per_class_temperature(z, labels, t_global)
    nll_g = negative_log_likelihood(softmax(z / t_global), labels)
    nll_p = negative_log_likelihood(softmax(z / np.array(per)), labels)
    assert nll_p < nll_g


def test_calibration_json_roundtrip_and_refusals(tmp_path):
    cal = Calibration(temperature=1.7, per_class_temperature=[1.0] * 7, classes=list(FER7), grid=[1.0, 1.7],
                      split="val", selection_rule="lexicographic")
    path = save_calibration(tmp_path / "calibration.json", cal)
    back = load_calibration(path, FER7)
    assert back.temperature == 1.7 and back.per_class_temperature == [1.0] * 7 and back.split == "val"
    with pytest.raises(ClassListMismatch, match="different order"):
        load_calibration(path, list(reversed(FER7)))
    (tmp_path / "bad.json").write_text('{"temperature": -1}')
    with pytest.raises(ArtifactError, match="bad.json: temperature must be a positive"):
        load_calibration(tmp_path / "bad.json")
    (tmp_path / "short.json").write_text('{"temperature": 1, "thresholds": [0.5, 0.5]}')
    with pytest.raises(ArtifactError, match="thresholds must be a list of 7"):
        load_calibration(tmp_path / "short.json", FER7)


def test_reliability_metrics_file(tmp_path):
    rng = np.random.default_rng(2)
    z = rng.normal(0, 2, size=(500, 7))
    labels = rng.integers(0, 7, 500)
    grid = [0.5, 1.0, 2.0]
    rep = reliability_report(z, labels, grid, 2.0, "val", FER7)
    path = save_reliability_metrics(tmp_path, rep)
    back = load_reliability_metrics(path)
    assert [r["temperature"] for r in back["grid"]] == grid
    assert sum(b["count"] for b in back["bins_after"]) == 500
    assert len(back["bins_before"]) == 15
