"""Bar chart of this frame's calibrated probabilities next to the smoothed (EMA) ones (pyqtgraph)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from app.widgets.colors import class_color

pg.setConfigOptions(antialias=True)


class ProbabilityChart(pg.PlotWidget):
    def __init__(self, classes: Sequence[str], parent: QWidget | None = None):
        super().__init__(parent=parent, background="#1d1f23")
        self.setMinimumHeight(170)
        self.classes: list[str] = []
        self.plotItem.setMenuEnabled(False)
        self.plotItem.hideButtons()
        self.setMouseEnabled(x=False, y=False)
        self.setYRange(0, 1, padding=0.02)
        self.getAxis("left").setTicks([[(0, "0"), (0.5, ".5"), (1, "1")]])
        self.getAxis("left").setWidth(24)
        self.plotItem.showGrid(y=True, alpha=0.15)
        self.setTitle("<span style='color:#c8ccd2;font-size:9pt'>outlined: calibrated · solid: smoothed</span>")
        self._calibrated: pg.BarGraphItem | None = None
        self._smoothed: pg.BarGraphItem | None = None
        self.set_classes(classes)

    def set_classes(self, classes: Sequence[str]) -> None:
        self.classes = list(classes)
        x = np.arange(len(self.classes), dtype=float)
        for item in (self._calibrated, self._smoothed):
            if item is not None:
                self.removeItem(item)
        brushes = [pg.mkBrush(class_color(c, self.classes)) for c in self.classes]
        light = []
        for c in self.classes:
            col = class_color(c, self.classes)
            col.setAlpha(90)
            light.append(pg.mkBrush(col))
        zeros = np.zeros(len(self.classes))
        self._calibrated = pg.BarGraphItem(x=x - 0.19, height=zeros, width=0.36, brushes=light,
                                           pens=[pg.mkPen(class_color(c, self.classes), width=1) for c in self.classes])
        self._smoothed = pg.BarGraphItem(x=x + 0.19, height=zeros, width=0.36, brushes=brushes,
                                         pen=pg.mkPen(None))
        self.addItem(self._calibrated)
        self.addItem(self._smoothed)
        self.getAxis("bottom").setTicks([[(i, c[:4]) for i, c in enumerate(self.classes)]])
        self.setXRange(-0.6, len(self.classes) - 0.4, padding=0)

    def set_values(self, calibrated: np.ndarray | None, smoothed: np.ndarray | None) -> None:
        n = len(self.classes)
        cal = np.zeros(n) if calibrated is None else np.asarray(calibrated, dtype=float)
        smo = np.zeros(n) if smoothed is None else np.asarray(smoothed, dtype=float)
        assert self._calibrated is not None and self._smoothed is not None
        self._calibrated.setOpts(height=cal)
        self._smoothed.setOpts(height=smo)

    def values(self) -> tuple[np.ndarray, np.ndarray]:
        """The heights shown (for tests)."""
        assert self._calibrated is not None and self._smoothed is not None
        return (np.asarray(self._calibrated.opts["height"], dtype=float),
                np.asarray(self._smoothed.opts["height"], dtype=float))
