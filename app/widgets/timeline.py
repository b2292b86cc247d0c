"""Scrolling timeline of the predicted (smoothed) label against the manual label.

Shows the last ``span_s`` seconds of session time; each processed frame owns the
time until the next one (capped, so pauses show as gaps). With a second model a
third lane, "Model B", shows its labels of the same frames under the first model's.
"""

from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.widgets.colors import class_color

MAX_GAP_S = 0.5


class LabelTimeline(QWidget):
    def __init__(self, classes: Sequence[str], span_s: float = 20.0, parent: QWidget | None = None):
        super().__init__(parent)
        self.classes = list(classes)
        self.span_s = span_s
        self._points: Sequence = ()
        self.second_name = ""  # the second model's lane title; "" hides the lane
        self.setMinimumHeight(74)
        self.setMaximumHeight(120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_second(self, name: str) -> None:
        """Show (name) or hide ("") the second model's lane."""
        self.second_name = name
        self.setMinimumHeight(104 if name else 74)
        self.update()

    def set_points(self, points: Sequence) -> None:
        """``points``: objects with t_sec, pred and manual (LiveSession.timeline)."""
        self._points = points
        self.update()

    def _runs(self, attr: str, t_from: float, pts: list) -> list[tuple[float, float, str]]:
        runs: list[tuple[float, float, str]] = []
        for i, pt in enumerate(pts):
            end = pts[i + 1].t_sec if i + 1 < len(pts) else pt.t_sec + 1 / 30
            end = min(end, pt.t_sec + MAX_GAP_S)
            start = max(pt.t_sec, t_from)
            if end <= start:
                continue
            label = getattr(pt, attr, None)
            if label is None:  # no value on this frame (the second model was not running)
                continue
            if runs and runs[-1][2] == label and abs(runs[-1][1] - start) < 1e-6:
                runs[-1] = (runs[-1][0], end, label)
            else:
                runs.append((start, end, label))
        return runs

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#1d1f23"))
        left, right = 64, self.width() - 8
        names = [("Predicted", "pred")] + ([("Model B", "pred_b")] if self.second_name else []) + [("Manual", "manual")]
        lane_h = (self.height() - 22 - 4 * len(names)) / len(names)
        lanes = tuple((name, attr, 4.0 + i * (lane_h + 4)) for i, (name, attr) in enumerate(names))
        p.setPen(QColor("#c8ccd2"))
        right_mid = Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight
        for name, _, y in lanes:
            p.drawText(QRectF(4, y, left - 8, lane_h), right_mid, name)
        pts_all = self._points
        t_end = pts_all[-1].t_sec if len(pts_all) else 0.0
        t_from = max(0.0, t_end - self.span_s) if t_end > self.span_s else 0.0
        t_to = t_from + self.span_s
        scale = (right - left) / self.span_s
        pts = []
        for pt in reversed(pts_all):  # only the visible tail (plus the run that enters from the left)
            pts.append(pt)
            if pt.t_sec < t_from:
                break
        pts.reverse()
        for _, attr, y in lanes:
            p.fillRect(QRectF(left, y, right - left, lane_h), QColor("#26292e"))
            for a, b, label in self._runs(attr, t_from, pts):
                if attr == "manual" and not label:
                    continue
                color = class_color(label, self.classes)
                p.fillRect(QRectF(left + (a - t_from) * scale, y, max(1.0, (b - a) * scale), lane_h), color)
        # time axis
        p.setPen(QPen(QColor("#7d838b")))
        y_axis = lanes[-1][2] + lane_h + 4
        step = 5 if self.span_s <= 40 else 10
        first = int(t_from // step + 1) * step if t_from > 0 else 0
        t = float(first)
        while t <= t_to + 1e-9:
            x = left + (t - t_from) * scale
            p.drawLine(int(x), int(y_axis), int(x), int(y_axis + 4))
            p.drawText(QRectF(x - 30, y_axis + 2, 60, 14), Qt.AlignmentFlag.AlignCenter, f"{t:.0f}s")
            t += step
        p.end()
