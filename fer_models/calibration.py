"""Temperature scaling and reliability metrics, defined once (DESIGN.md §5).

Training fits calibration with these functions and the app applies it with the
same ones, so a temperature chosen offline means exactly the same thing live.
The earlier scripts computed ECE three different ways; this is the only copy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.classes import check_same_classes
from fer_models.errors import ArtifactError
from fer_models.files import read_json, resolve_file, write_json

N_BINS = 15
SELECTION_RULE = "lexicographic: nll within 1e-3 of min, then ece within 1e-3 of min, then max macro_f1, then closest to T=1"
DEFAULT_GRID: tuple[float, ...] = tuple(float(t) for t in np.round(np.concatenate([
    np.arange(0.25, 1.0, 0.05), np.arange(1.0, 3.0, 0.05), np.arange(3.0, 10.0001, 0.25)]), 4))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


# ----------------------------------------------------------------------------- metrics

def _check_probs_labels(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if p.ndim != 2 or y.ndim != 1 or len(p) != len(y):
        raise ValueError(f"expected probs (N, K) and labels (N,), got {p.shape} and {y.shape}")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1] - 1}]")
    return p, y


def negative_log_likelihood(probs: np.ndarray, labels: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-likelihood of the true class."""
    p, y = _check_probs_labels(probs, labels)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], eps, 1.0))))


def nll_from_logits(logits: np.ndarray, labels: np.ndarray) -> float:
    """NLL computed in log space (exact even for very confident logits)."""
    y = np.asarray(labels).astype(np.int64)
    lp = log_softmax(logits)
    return float(-np.mean(lp[np.arange(len(y)), y]))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE with ``n_bins`` equal-width bins of top-1 confidence, weighted |accuracy - confidence|.

    Bin b holds confidences in (b/n, (b+1)/n]; a confidence of exactly 0 goes to the first bin.
    """
    p, y = _check_probs_labels(probs, labels)
    if len(y) == 0:
        return 0.0
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> list[dict[str, float]]:
    """Per-bin count, accuracy and mean confidence, for reliability diagrams."""
    p, y = _check_probs_labels(probs, labels)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        mask = bins == b
        n = int(mask.sum())
        out.append({
            "lower": b / n_bins,
            "upper": (b + 1) / n_bins,
            "count": n,
            "accuracy": float(correct[mask].mean()) if n else None,
            "confidence": float(conf[mask].mean()) if n else None,
        })
    return out


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over samples of the squared error summed over classes."""
    p, y = _check_probs_labels(probs, labels)
    onehot = np.zeros_like(p)
    onehot[np.arange(len(y)), y] = 1.0
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def macro_f1(pred: np.ndarray, labels: np.ndarray, n_classes: int | None = None) -> float:
    """Macro-F1 over the classes present in the labels or the predictions (scikit-learn's default)."""
    pred = np.asarray(pred).astype(np.int64)
    y = np.asarray(labels).astype(np.int64)
    present = np.union1d(np.unique(y), np.unique(pred))
    if len(present) == 0:
        return 0.0
    f1s = []
    for c in present:
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        denom = 2 * tp + fp + fn
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s))


def per_class_f1(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> list[float]:
    """F1 of every class index 0..n_classes-1 (0 where a class is absent from both)."""
    pred = np.asarray(pred).astype(np.int64)
    y = np.asarray(labels).astype(np.int64)
    out = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (y == c))
        denom = 2 * tp + np.sum((pred == c) & (y != c)) + np.sum((pred != c) & (y == c))
        out.append(float(2 * tp / denom) if denom else 0.0)
    return out


def classification_metrics(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> dict[str, float]:
    """NLL, ECE, Brier, macro-F1 and accuracy of probabilities against integer labels."""
    p, y = _check_probs_labels(probs, labels)
    pred = p.argmax(axis=1)
    return {
        "nll": negative_log_likelihood(p, y),
        "ece": expected_calibration_error(p, y, n_bins),
        "brier": brier_score(p, y),
        "macro_f1": macro_f1(pred, y, p.shape[1]),
        "accuracy": float(np.mean(pred == y)) if len(y) else 0.0,
    }


# ----------------------------------------------------------------------------- calibration

@dataclass
class Calibration:
    """The contents of calibration.json (DESIGN.md §4).

    ``p = softmax((z + logit_bias) / T)`` with T scalar or per class; ``thresholds``
    act on the decision (``THRESHOLD_RULE``: ``apply_thresholds``, applied live by
    ``fer_models.pipeline``), not on the probabilities. ``predict_calibrated`` applies both.
    """

    temperature: float = 1.0
    per_class_temperature: list[float] | None = None
    thresholds: list[float] | None = None
    logit_bias: list[float] | None = None
    classes: list[str] | None = None
    grid: list[float] | None = None
    split: str | None = None
    selection_rule: str | None = None
    metrics_before: dict[str, float] | None = None
    metrics_after: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self, n_classes: int | None = None, where: str | Path | None = None) -> "Calibration":
        if not np.isfinite(self.temperature) or self.temperature <= 0:
            raise ArtifactError(where, f"temperature must be a positive number, got {self.temperature}")
        n = n_classes if n_classes is not None else (len(self.classes) if self.classes else None)
        for name in ("per_class_temperature", "thresholds", "logit_bias"):
            vec = getattr(self, name)
            if vec is None:
                continue
            arr = np.asarray(vec, dtype=np.float64)
            if arr.ndim != 1 or (n is not None and len(arr) != n):
                raise ArtifactError(where, f"{name} must be a list of {n} numbers, got {vec}")
            if not np.all(np.isfinite(arr)):
                raise ArtifactError(where, f"{name} has non-finite values: {vec}")
            if name == "per_class_temperature" and np.any(arr <= 0):
                raise ArtifactError(where, f"per_class_temperature must be positive, got {vec}")
            if name == "thresholds" and (np.any(arr < 0) or np.any(arr > 1)):
                raise ArtifactError(where, f"thresholds are probabilities and must lie in [0, 1], got {vec}")
        return self

    def effective_temperature(self) -> np.ndarray | float:
        if self.per_class_temperature is not None:
            return np.asarray(self.per_class_temperature, dtype=np.float64)
        return float(self.temperature)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d = {k: v for k, v in d.items() if v is not None}
        d.update(extra)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | Path | None = None) -> "Calibration":
        if not isinstance(data, dict) or "temperature" not in data:
            raise ArtifactError(where, "calibration must be an object with a 'temperature'")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: data[k] for k in known if k in data}
        try:
            kwargs["temperature"] = float(kwargs["temperature"])
        except (TypeError, ValueError) as exc:
            raise ArtifactError(where, f"temperature is not a number: {data['temperature']!r}") from exc
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra).validate(where=where)


def apply_calibration(logits: np.ndarray, calibration: Calibration | dict | None) -> np.ndarray:
    """Calibrated probabilities ``softmax((z + b) / T)`` for logits of shape (K,) or (N, K)."""
    if calibration is None:
        return softmax(logits)
    if isinstance(calibration, dict):
        calibration = Calibration.from_dict(calibration)
    z = np.asarray(logits, dtype=np.float64)
    if calibration.logit_bias is not None:
        z = z + np.asarray(calibration.logit_bias, dtype=np.float64)
    return softmax(z / calibration.effective_temperature())


def temperature_sweep(logits: np.ndarray, labels: np.ndarray, grid: Sequence[float],
                      logit_bias: Sequence[float] | None = None) -> list[dict[str, float]]:
    """Metrics (nll, ece, brier, macro_f1, accuracy) at every temperature of the grid."""
    z = np.asarray(logits, dtype=np.float64)
    if logit_bias is not None:
        z = z + np.asarray(logit_bias, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    rows = []
    for t in grid:
        t = float(t)
        if t <= 0:
            raise ValueError(f"temperatures must be positive, got {t}")
        probs = softmax(z / t)
        m = classification_metrics(probs, y)
        m["nll"] = nll_from_logits(z / t, y)
        rows.append({"temperature": t, **m})
    return rows


def select_from_sweep(rows: Sequence[dict[str, float]], tol: float = 1e-3) -> float:
    """The lexicographic rule of DESIGN.md §5 applied to the rows of ``temperature_sweep``."""
    if not rows:
        raise ValueError("empty temperature grid")
    best_nll = min(r["nll"] for r in rows)
    keep = [r for r in rows if r["nll"] <= best_nll + tol]
    best_ece = min(r["ece"] for r in keep)
    keep = [r for r in keep if r["ece"] <= best_ece + tol]
    best_f1 = max(r["macro_f1"] for r in keep)
    keep = [r for r in keep if r["macro_f1"] >= best_f1]
    return float(min(keep, key=lambda r: (abs(r["temperature"] - 1.0), r["temperature"]))["temperature"])


def select_temperature(logits: np.ndarray, labels: np.ndarray, grid: Sequence[float] = DEFAULT_GRID) -> float:
    """Global temperature by the lexicographic rule (min NLL, then min ECE, then max macro-F1, then closest to 1)."""
    return select_from_sweep(temperature_sweep(logits, labels, grid))


def fit_per_class_temperature(logits: np.ndarray, labels: np.ndarray, start: float,
                              grid: Sequence[float] = DEFAULT_GRID, rounds: int = 3,
                              fit_classes: Sequence[int] | None = None) -> list[float]:
    """Per-class temperature vector by coordinate descent on NLL, starting from the global T.

    Each class's temperature scales only that class's logit; a few rounds over the grid
    are enough because NLL is smooth in each coordinate. ``fit_classes`` (default: all)
    names the classes whose temperature is fitted; the others keep ``start``. A class
    with no sample in the fit data should not be fitted: NLL would only push its probability
    down (usually to an edge of the grid), a fit to its absence, not a calibration.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    temps = np.full(z.shape[1], float(start))
    todo = range(z.shape[1]) if fit_classes is None else sorted({int(k) for k in fit_classes})
    for _ in range(rounds):
        for k in todo:
            best_t, best_nll = temps[k], None
            for t in grid:
                temps[k] = t
                nll = nll_from_logits(z / temps, y)
                if best_nll is None or nll < best_nll - 1e-12:
                    best_t, best_nll = float(t), nll
            temps[k] = best_t
    return [float(t) for t in temps]


# ----------------------------------------------------------------------------- per-class thresholds

NO_LABEL = -1  # a thresholded prediction that shows no class (the app's "(unstable)")
THRESHOLD_RULE = ("predict the argmax class c of the calibrated probabilities only if p_c >= thresholds[c]; "
                  "otherwise no label (an abstention: shown as (unstable) in the app, counted as a miss)")
THRESHOLD_GRID: tuple[float, ...] = tuple(float(t) for t in np.round(np.arange(0.0, 0.901, 0.025), 4))
THRESHOLD_SELECTION = ("coordinate ascent over the classes present in the fit split: each class's threshold is the "
                       "grid value with the highest macro-F1 (classes present in the labels, an abstention a miss) "
                       "among those keeping coverage >= min_coverage; ties go to the lower threshold")


def apply_thresholds(probs: np.ndarray, thresholds: Sequence[float] | None) -> np.ndarray:
    """Predicted class per row under ``THRESHOLD_RULE``: the argmax, or ``NO_LABEL`` below its class's threshold.

    This is the rule ``fer_models.pipeline`` applies live (to the smoothed probabilities):
    a threshold never moves a prediction to another class, it only withholds a weak one.
    """
    p = np.asarray(probs, dtype=np.float64)
    single = p.ndim == 1
    p2 = p[None] if single else p
    pred = p2.argmax(axis=1).astype(np.int64)
    if thresholds is not None:
        thr = np.asarray(thresholds, dtype=np.float64)
        if thr.shape != (p2.shape[1],):
            raise ValueError(f"thresholds must hold {p2.shape[1]} values, got {thr.shape}")
        pred = np.where(p2[np.arange(len(pred)), pred] >= thr[pred], pred, NO_LABEL)
    return pred[0] if single else pred


def abstaining_metrics(pred: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Accuracy, macro-F1 and coverage of predictions that may be ``NO_LABEL``.

    As in transition-fair scoring (DESIGN.md §5): an abstention is wrong, and macro-F1
    is over the classes present in ``labels`` (an abstention is a miss of the true class).
    None when there are no rows.
    """
    pred = np.asarray(pred).astype(np.int64)
    y = np.asarray(labels).astype(np.int64)
    if len(y) == 0:
        return {"accuracy": None, "macro_f1": None, "coverage": None}
    f1s = []
    for c in np.unique(y):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(np.mean(pred == y)), "macro_f1": float(np.mean(f1s)),
            "coverage": float(np.mean(pred != NO_LABEL))}


def fit_per_class_thresholds(probs: np.ndarray, labels: np.ndarray, grid: Sequence[float] = THRESHOLD_GRID,
                             min_coverage: float = 0.9, fit_classes: Sequence[int] | None = None,
                             rounds: int = 3) -> list[float]:
    """Per-class thresholds under ``THRESHOLD_RULE`` by ``THRESHOLD_SELECTION``; unfitted classes get 0.

    Why macro-F1: raising class c's threshold turns its weakest predictions into abstentions;
    that removes false positives of c (good) and turns weak true positives into misses (bad),
    so macro-F1 rises only where c's low-confidence answers are mostly wrong. Accuracy
    could only fall (an abstention is wrong), hence the floor on coverage, so the app
    still shows a label most of the time. ``fit_classes`` defaults to the classes present
    in ``labels``: a class absent from the fit data gets no threshold (0).
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    if not 0.0 <= min_coverage <= 1.0:
        raise ValueError(f"min_coverage must lie in [0, 1], got {min_coverage}")
    grid = sorted(float(g) for g in grid)
    if not grid or grid[0] < 0 or grid[-1] > 1:
        raise ValueError(f"threshold grid must be probabilities in [0, 1], got {grid}")
    thr = np.zeros(p.shape[1])
    todo = sorted({int(k) for k in (np.unique(y) if fit_classes is None else fit_classes)})

    def score(t: np.ndarray) -> tuple[float, float]:
        m = abstaining_metrics(apply_thresholds(p, t), y)
        return float(m["macro_f1"] or 0.0), float(m["coverage"] or 0.0)

    for _ in range(rounds):
        changed = False
        for k in todo:
            best_v, (best_f1, _) = thr[k], score(thr)
            for v in grid:
                if v == thr[k]:
                    continue
                trial = thr.copy()
                trial[k] = v
                f1, cov = score(trial)
                if cov + 1e-12 < min_coverage:
                    continue
                if f1 > best_f1 + 1e-12 or (abs(f1 - best_f1) <= 1e-12 and v < best_v):
                    best_v, best_f1 = v, f1
            changed |= best_v != thr[k]
            thr[k] = best_v
        if not changed:
            break
    return [float(t) for t in thr]


def predict_calibrated(logits: np.ndarray, calibration: Calibration | dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated probabilities and the predicted class (``NO_LABEL`` under a threshold) of raw logits.

    Honours every field of calibration.json that acts on a frame: ``logit_bias``,
    ``temperature`` / ``per_class_temperature`` (``apply_calibration``) and ``thresholds``
    (``apply_thresholds``).
    """
    if isinstance(calibration, dict):
        calibration = Calibration.from_dict(calibration)
    probs = apply_calibration(logits, calibration)
    return probs, apply_thresholds(probs, calibration.thresholds if calibration is not None else None)


def fit_per_class_calibration(logits: np.ndarray, labels: np.ndarray, grid: Sequence[float] = DEFAULT_GRID,
                              threshold_grid: Sequence[float] = THRESHOLD_GRID, min_coverage: float = 0.9,
                              thresholds: bool = True) -> dict[str, Any]:
    """Global T, then per-class temperatures, then per-class thresholds, all on one (fit) split.

    The order matters: thresholds compare calibrated probabilities, so they are chosen on
    the probabilities of the final temperatures. Only classes present in ``labels`` are
    fitted; the others keep the global T and threshold 0 (listed in ``unfitted_classes``).
    Returns the fields of a ``Calibration`` (temperature, per_class_temperature, thresholds)
    plus the sweep and the fitted / unfitted class indices.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64)
    present = [int(k) for k in np.unique(y)]
    sweep = temperature_sweep(z, y, grid)
    t = select_from_sweep(sweep)
    temps = fit_per_class_temperature(z, y, t, grid, fit_classes=present)
    thr = None
    if thresholds:
        thr = fit_per_class_thresholds(softmax(z / np.asarray(temps)), y, threshold_grid, min_coverage, present)
    return {"temperature": float(t), "per_class_temperature": temps, "thresholds": thr, "sweep": sweep,
            "fitted_classes": present, "unfitted_classes": [k for k in range(z.shape[1]) if k not in present],
            "edge_classes": [k for k in present if on_grid_edge(temps[k], grid)]}


def on_grid_edge(value: float, grid: Sequence[float]) -> bool:
    """True when a chosen temperature sits on the first or last grid point (a clamp, not a fit)."""
    return bool(np.isclose(value, min(grid)) or np.isclose(value, max(grid)))


# ----------------------------------------------------------------------------- files

def load_calibration(path: str | Path, classes: Sequence[str] | None = None) -> Calibration:
    """Read calibration.json, checking per-class vectors against ``classes`` when given."""
    path = resolve_file(path, "calibration.json")
    cal = Calibration.from_dict(read_json(path), where=path)  # type: ignore[arg-type]
    if classes is not None:
        if cal.classes is not None:
            check_same_classes(classes, cal.classes, path)
        cal.validate(len(classes), path)
    return cal


def save_calibration(path: str | Path, calibration: Calibration) -> Path:
    path = resolve_file(path, "calibration.json")
    calibration.validate()
    return write_json(path, calibration.to_dict())


def reliability_report(logits: np.ndarray, labels: np.ndarray, grid: Sequence[float], chosen: float,
                       split: str, classes: Sequence[str] | None = None) -> dict[str, Any]:
    """The contents of reliability_metrics.json: the whole sweep plus the chosen T's bins."""
    rows = temperature_sweep(logits, labels, grid)
    z = np.asarray(logits, dtype=np.float64)
    return {
        "split": split,
        "classes": list(classes) if classes else None,
        "n_bins": N_BINS,
        "chosen_temperature": float(chosen),
        "grid": rows,
        "bins_before": reliability_bins(softmax(z), labels),
        "bins_after": reliability_bins(softmax(z / chosen), labels),
    }


def save_reliability_metrics(path: str | Path, report: dict[str, Any]) -> Path:
    path = resolve_file(path, "reliability_metrics.json")
    return write_json(path, report)


def load_reliability_metrics(path: str | Path) -> dict[str, Any]:
    path = resolve_file(path, "reliability_metrics.json")
    data = read_json(path)
    if not isinstance(data, dict) or "grid" not in data:
        raise ArtifactError(path, "expected an object with a 'grid' list of per-temperature metrics")
    for row in data["grid"]:
        missing = {"temperature", "nll", "ece", "brier", "macro_f1", "accuracy"} - set(row)
        if missing:
            raise ArtifactError(path, f"grid row lacks {sorted(missing)}")
    return data
