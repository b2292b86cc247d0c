"""A PNG of an annotator-lag scan (``fer-score --estimate-lag --plot``), drawn with OpenCV.

fer_models depends on numpy and OpenCV only (matplotlib is in the training extra, and the app's
pyqtgraph needs Qt), so the chart is drawn with cv2: accuracy, macro-F1 and lock rate against the
lag on a 0-1 axis (left), the median time-to-lock on its own axis in ms (right, dashed), and the
best lag marked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from fer_models.errors import ArtifactWriteError
from fer_models.files import atomic_write_bytes

W, H = 960, 560
LEFT, RIGHT, TOP, BOTTOM = 80, 90, 60, 96
SERIES = (("accuracy", "accuracy", (180, 119, 31)), ("macro_f1", "macro-F1", (14, 127, 255)),
          ("lock_rate", "lock rate", (44, 160, 44)))
LOCK_COLOR = (40, 39, 214)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(1, ticks)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5, color=(40, 40, 40),
          anchor: str = "left") -> None:
    (w, h), _ = cv2.getTextSize(text, FONT, scale, 1)
    x, y = org
    if anchor == "center":
        x -= w // 2
    elif anchor == "right":
        x -= w
    cv2.putText(img, text, (int(x), int(y + h / 2)), FONT, scale, color, 1, cv2.LINE_AA)


def _dashed(img: np.ndarray, pts: list[tuple[int, int]], color, dash: int = 8) -> None:
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) // dash))
        for k in range(0, n, 2):
            a, b = k / n, min(1.0, (k + 1) / n)
            cv2.line(img, (int(x0 + (x1 - x0) * a), int(y0 + (y1 - y0) * a)),
                     (int(x0 + (x1 - x0) * b), int(y0 + (y1 - y0) * b)), color, 2, cv2.LINE_AA)


def lag_curve_image(curve: Sequence[dict], best_lag_ms, title: str = "annotator lag scan") -> np.ndarray:
    """The chart as a BGR image (H x W x 3)."""
    img = np.full((H, W, 3), 255, np.uint8)
    x0, x1, y0, y1 = LEFT, W - RIGHT, TOP, H - BOTTOM
    lags = [float(c["lag_ms"]) for c in curve]
    lo, hi = (min(lags), max(lags)) if lags else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 50.0, hi + 50.0

    def px(lag: float) -> int:
        return int(round(x0 + (lag - lo) / (hi - lo) * (x1 - x0)))

    def py(v: float) -> int:  # 0..1 axis
        return int(round(y1 - v * (y1 - y0)))

    locks = [c["time_to_lock_median_ms"] for c in curve if c.get("time_to_lock_median_ms") is not None]
    lock_top = max(locks) * 1.1 if locks and max(locks) > 0 else 1000.0
    lock_step = _nice_step(lock_top)
    lock_top = math.ceil(lock_top / lock_step) * lock_step

    def py_lock(v: float) -> int:
        return int(round(y1 - v / lock_top * (y1 - y0)))

    # grid and axes
    for k in range(11):
        y = py(k / 10)
        cv2.line(img, (x0, y), (x1, y), (235, 235, 235) if k % 5 else (205, 205, 205), 1)
        if k % 2 == 0:
            _text(img, f"{k / 10:.1f}", (x0 - 8, y), anchor="right")
    step = _nice_step(hi - lo, 8)
    t = math.ceil(lo / step) * step
    while t <= hi + 1e-9:
        x = px(t)
        cv2.line(img, (x, y1), (x, y1 + 5), (90, 90, 90), 1)
        _text(img, f"{t:g}", (x, y1 + 18), anchor="center")
        t += step
    v = 0.0
    while v <= lock_top + 1e-9:
        y = py_lock(v)
        cv2.line(img, (x1, y), (x1 + 5, y), LOCK_COLOR, 1)
        _text(img, f"{v:g}", (x1 + 9, y), color=LOCK_COLOR)
        v += lock_step
    cv2.rectangle(img, (x0, y0), (x1, y1), (90, 90, 90), 1)
    _text(img, "annotator lag (ms): labels moved earlier by this much", ((x0 + x1) // 2, y1 + 40), anchor="center")
    _text(img, "score (0-1)", (x0, y0 - 14))
    _text(img, "time to lock, median (ms)", (x1, y0 - 14), color=LOCK_COLOR, anchor="right")
    _text(img, title[:110], (W // 2, 20), scale=0.55, anchor="center")

    if best_lag_ms is not None:
        xb = px(float(best_lag_ms))
        for y in range(y0, y1, 10):
            cv2.line(img, (xb, y), (xb, min(y1, y + 5)), (120, 120, 120), 1)
        _text(img, f"best {best_lag_ms:g} ms", (xb + 6, y0 + 28), color=(60, 60, 60))

    # series, each drawn only through the lags where it is defined
    for key, name, color in SERIES:
        pts = [(px(float(c["lag_ms"])), py(float(c[key]))) for c in curve if c.get(key) is not None]
        if len(pts) > 1:
            cv2.polylines(img, [np.asarray(pts, np.int32)], False, color, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(img, p, 3, color, -1, cv2.LINE_AA)
    lock_pts = [(px(float(c["lag_ms"])), py_lock(float(c["time_to_lock_median_ms"]))) for c in curve
                if c.get("time_to_lock_median_ms") is not None]
    _dashed(img, lock_pts, LOCK_COLOR)
    for p in lock_pts:
        cv2.circle(img, p, 3, LOCK_COLOR, -1, cv2.LINE_AA)

    # legend, one row under the axis so it hides no data
    entries = (*SERIES, ("", "time to lock (right axis, dashed)", LOCK_COLOR))
    widths = [34 + cv2.getTextSize(name, FONT, 0.5, 1)[0][0] + 24 for _, name, _ in entries]
    lx, ly = (W - sum(widths)) // 2, H - 22
    for (_, name, color), w in zip(entries, widths):
        cv2.line(img, (lx, ly), (lx + 26, ly), color, 2, cv2.LINE_AA)
        _text(img, name, (lx + 34, ly))
        lx += w
    return img


def plot_lag_curve(curve: Sequence[dict], best_lag_ms, path: str | Path, title: str = "annotator lag scan") -> Path:
    """Write the chart as a PNG (atomically); ArtifactWriteError naming the file when it cannot be written."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ArtifactWriteError(path, "the plot is a PNG: give a file name ending in .png")
    ok, data = cv2.imencode(".png", lag_curve_image(curve, best_lag_ms, title))
    if not ok:
        raise ArtifactWriteError(path, "OpenCV cannot encode the plot")
    return atomic_write_bytes(path, data.tobytes())
