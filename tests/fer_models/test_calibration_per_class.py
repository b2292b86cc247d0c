"""Per-class temperatures and thresholds: the rule, the fit, absent classes, and calibration.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_models.calibration import (NO_LABEL, Calibration, abstaining_metrics, apply_calibration, apply_thresholds,
                                    fit_per_class_calibration, fit_per_class_temperature, fit_per_class_thresholds,
                                    load_calibration, nll_from_logits, predict_calibrated, save_calibration, softmax)
from fer_models.classes import FER7
from fer_models.errors import ArtifactError


def test_threshold_rule_withholds_a_weak_argmax_and_never_moves_it():
    p = np.array([[0.5, 0.3, 0.2], [0.4, 0.35, 0.25], [0.1, 0.2, 0.7]])
    assert apply_thresholds(p, None).tolist() == [0, 0, 2]
    assert apply_thresholds(p, [0.45, 0.0, 0.0]).tolist() == [0, NO_LABEL, 2]  # not moved to class 1
    assert apply_thresholds(p, [0.0, 0.0, 0.7]).tolist() == [0, 0, 2]  # p >= thr keeps it
    assert apply_thresholds(p[1], [0.45, 0.0, 0.0]) == NO_LABEL
    with pytest.raises(ValueError, match="3 values"):
        apply_thresholds(p, [0.1, 0.2])


def test_abstaining_metrics_by_hand():
    y = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, NO_LABEL, 1, 0, NO_LABEL])
    m = abstaining_metrics(pred, y)
    assert m["accuracy"] == pytest.approx(2 / 5) and m["coverage"] == pytest.approx(3 / 5)
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 1, fn 1 -> 2/3; class 2: tp 0, fn 1 -> 0
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)
    assert abstaining_metrics(np.array([], int), np.array([], int))["accuracy"] is None


def _weak_class_zero(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities where class 0 is over-predicted: its confident answers are right, its weak ones wrong."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    p = np.zeros((n, 3))
    for i, c in enumerate(y):
        if c == 0 or rng.random() < 0.6:
            conf = rng.uniform(0.7, 0.95)
            p[i, c] = conf
            p[i, [k for k in range(3) if k != c]] = (1 - conf) / 2
        else:  # a wrong, weak answer of class 0
            p[i, 0] = rng.uniform(0.4, 0.5)
            p[i, c] = rng.uniform(0.3, 0.4)
            p[i, 3 - c if c != 0 else 1] = 1 - p[i, 0] - p[i, c]
    return p, y


def test_thresholds_raise_macro_f1_within_the_coverage_floor():
    p, y = _weak_class_zero()
    base = abstaining_metrics(apply_thresholds(p, None), y)
    thr = fit_per_class_thresholds(p, y, min_coverage=0.6)
    after = abstaining_metrics(apply_thresholds(p, thr), y)
    assert 0.5 <= thr[0] <= 0.7  # between the weak (<= 0.5) and the confident (>= 0.7) answers of class 0
    assert thr[1] == thr[2] == 0.0  # nothing to gain there: the lowest threshold wins the tie
    assert after["macro_f1"] > base["macro_f1"] + 0.05 and after["coverage"] >= 0.6
    # a coverage floor of 1 forbids every abstention
    assert fit_per_class_thresholds(p, y, min_coverage=1.0) == [0.0, 0.0, 0.0]
    # a tighter floor allows less: coverage never goes below it
    tight = fit_per_class_thresholds(p, y, min_coverage=0.95)
    assert abstaining_metrics(apply_thresholds(p, tight), y)["coverage"] >= 0.95


def _per_class_miscalibrated(n: int = 4000, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z_true = rng.normal(0, 1.5, (n, 4))
    y = np.array([rng.choice(4, p=softmax(r)) for r in z_true])
    temps = np.array([1.0, 2.0, 0.5, 1.0])
    return z_true * temps, y, temps  # class 1 over-, class 2 under-confident by these factors


def test_per_class_fit_recovers_class_temperatures_and_beats_the_global_one():
    z, y, temps = _per_class_miscalibrated()
    fit = fit_per_class_calibration(z, y, thresholds=False)
    got = np.asarray(fit["per_class_temperature"])
    assert got[1] / got[0] == pytest.approx(temps[1] / temps[0], rel=0.25)
    assert got[2] / got[0] == pytest.approx(temps[2] / temps[0], rel=0.25)
    assert nll_from_logits(z / got, y) < nll_from_logits(z / fit["temperature"], y) - 0.005
    assert fit["thresholds"] is None and fit["unfitted_classes"] == []


def test_a_class_absent_from_the_fit_split_keeps_the_global_temperature_and_no_threshold():
    z, y, _ = _per_class_miscalibrated()
    keep = y != 3
    fit = fit_per_class_calibration(z[keep], y[keep], min_coverage=0.8)
    assert fit["unfitted_classes"] == [3] and fit["fitted_classes"] == [0, 1, 2]
    assert fit["per_class_temperature"][3] == fit["temperature"]
    assert fit["thresholds"][3] == 0.0
    # left to itself, NLL would push the absent class's temperature away from the global one
    free = fit_per_class_temperature(z[keep], y[keep], fit["temperature"])
    assert free[3] != fit["temperature"]


def test_predict_calibrated_honours_temperatures_bias_and_thresholds():
    z = np.array([[2.0, 1.0, 0.0], [0.2, 0.1, 0.0]])
    cal = {"temperature": 1.0, "per_class_temperature": [2.0, 1.0, 1.0], "thresholds": [0.5, 0.0, 0.0],
           "logit_bias": [0.0, 0.5, 0.0]}
    probs, pred = predict_calibrated(z, cal)
    expect = softmax((z + [0.0, 0.5, 0.0]) / np.array([2.0, 1.0, 1.0]))
    assert probs == pytest.approx(expect)
    assert pred.tolist() == apply_thresholds(expect, [0.5, 0.0, 0.0]).tolist()
    assert probs == pytest.approx(apply_calibration(z, Calibration.from_dict(cal)))
    assert predict_calibrated(z, None)[1].tolist() == [0, 0]


def test_calibration_json_round_trip_and_refusals(tmp_path):
    cal = Calibration(temperature=1.3, per_class_temperature=[1.1] * 7, thresholds=[0.0, 0.3] + [0.0] * 5,
                      classes=list(FER7), split="val", extra={"threshold_rule": "x"})
    save_calibration(tmp_path, cal)
    back = load_calibration(tmp_path, FER7)
    assert back.thresholds == cal.thresholds and back.per_class_temperature == cal.per_class_temperature
    data = json.loads((tmp_path / "calibration.json").read_text())
    data["thresholds"] = [0.0, 1.3] + [0.0] * 5
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"calibration\.json.*thresholds are probabilities"):
        load_calibration(tmp_path, FER7)
    data["thresholds"] = [0.1] * 6
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="thresholds must be a list of 7"):
        load_calibration(tmp_path, FER7)
