"""Sliders for the temporal smoothing and controls for the detector hygiene.

The panel never touches the pipeline: it emits the changed values as a dict
(``changed``) and is told the accepted settings back (``set_settings``), so
hotkeys, sliders and saved settings all go through one path, the controller's
``apply_settings`` (app/controller.py).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QSlider, QSpinBox,
    QVBoxLayout, QWidget,
)

from app.hotkeys import ALPHA_MAX, DELTA_MAX, WINDOW_MAX
from fer_models.pipeline import PipelineSettings


class ValueSlider(QWidget):
    """A horizontal slider over ``[lo, hi]`` in steps of ``step`` with its value shown."""

    value_changed = Signal(float)

    def __init__(self, lo: float, hi: float, step: float, decimals: int, parent: QWidget | None = None):
        super().__init__(parent)
        self.lo, self.step, self.decimals = lo, step, decimals
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, round((hi - lo) / step))
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys belong to the hotkeys
        self.label = QLabel()
        self.label.setMinimumWidth(38)
        self.label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.label)
        self.slider.valueChanged.connect(self._moved)

    def _to_value(self, pos: int) -> float:
        return round(self.lo + pos * self.step, self.decimals)

    def _moved(self, pos: int) -> None:
        v = self._to_value(pos)
        self.label.setText(f"{v:.{self.decimals}f}" if self.decimals else f"{int(v)}")
        self.value_changed.emit(v)

    def value(self) -> float:
        return self._to_value(self.slider.value())

    def set_value(self, v: float) -> None:
        """Show a value without emitting (it came from the settings, not from the user)."""
        self.slider.blockSignals(True)
        self.slider.setValue(round((v - self.lo) / self.step))
        self.slider.blockSignals(False)
        shown = self.value()
        self.label.setText(f"{shown:.{self.decimals}f}" if self.decimals else f"{int(shown)}")


CARD = "model card"
_TRI = {CARD: None, "on": True, "off": False}  # a crop option: follow the card, or force it


def _tri_text(value: bool | None) -> str:
    return next(k for k, v in _TRI.items() if v is value)


class TuningPanel(QWidget):
    changed = Signal(dict)  # field -> new value

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)

        smooth = QGroupBox("Temporal smoothing")
        form = QFormLayout(smooth)
        self.alpha = ValueSlider(0.0, ALPHA_MAX, 0.01, 2)
        self.delta = ValueSlider(0.0, DELTA_MAX, 0.01, 2)
        self.window = ValueSlider(1, WINDOW_MAX, 1, 0)
        self.min_count = ValueSlider(1, WINDOW_MAX, 1, 0)
        self.window_ms = QSpinBox()
        self.window_ms.setRange(0, 5000)
        self.window_ms.setSingleStep(50)
        self.window_ms.setSpecialValueText("off (frames)")
        self.window_ms.setSuffix(" ms")
        form.addRow("EMA alpha  [ ]", self.alpha)
        form.addRow("Hysteresis delta  - =", self.delta)
        form.addRow("Vote window  v b", self.window)
        form.addRow("Min count  n m", self.min_count)
        form.addRow("Vote window in ms", self.window_ms)
        outer.addWidget(smooth)

        det = QGroupBox("Detector hygiene")
        dform = QFormLayout(det)
        self.min_face = QSpinBox()
        self.min_face.setRange(16, 600)
        self.min_face.setSuffix(" px")
        self.score_threshold = QDoubleSpinBox()
        self.score_threshold.setRange(0.05, 0.95)
        self.score_threshold.setSingleStep(0.05)
        self.score_threshold.setDecimals(2)
        self.align_eyes = QComboBox()
        self.clahe = QComboBox()
        for combo in (self.align_eyes, self.clahe):
            combo.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            for text in _TRI:
                combo.addItem(text)
        self.margin_override = QCheckBox("override")
        self.margin_override.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.crop_margin = QDoubleSpinBox()
        self.crop_margin.setRange(-0.4, 2.0)
        self.crop_margin.setSingleStep(0.05)
        self.crop_margin.setDecimals(2)
        margin_row = QWidget()
        mlay = QHBoxLayout(margin_row)
        mlay.setContentsMargins(0, 0, 0, 0)
        mlay.addWidget(self.crop_margin, 1)
        mlay.addWidget(self.margin_override)
        dform.addRow("Min face size", self.min_face)
        dform.addRow("Score threshold", self.score_threshold)
        dform.addRow("Align eyes", self.align_eyes)
        dform.addRow("CLAHE", self.clahe)
        dform.addRow("Crop margin", margin_row)
        outer.addWidget(det)
        outer.addStretch(1)

        self.alpha.value_changed.connect(lambda v: self.changed.emit({"alpha": v}))
        self.delta.value_changed.connect(lambda v: self.changed.emit({"delta": v}))
        # min count above the window: the controller clamps it (PipelineSettings.clamped) and set_settings
        # moves the other slider
        self.window.value_changed.connect(lambda v: self.changed.emit({"window": int(v)}))
        self.min_count.value_changed.connect(lambda v: self.changed.emit({"min_count": int(v)}))
        self.window_ms.valueChanged.connect(lambda v: self.changed.emit({"window_ms": float(v) if v else None}))
        self.min_face.valueChanged.connect(lambda v: self.changed.emit({"min_face": int(v)}))
        self.score_threshold.valueChanged.connect(lambda v: self.changed.emit({"score_threshold": round(v, 2)}))
        self.align_eyes.currentIndexChanged.connect(
            lambda _: self.changed.emit({"align_eyes": _TRI[self.align_eyes.currentText()]}))
        self.clahe.currentIndexChanged.connect(lambda _: self.changed.emit({"clahe": _TRI[self.clahe.currentText()]}))
        self.crop_margin.valueChanged.connect(self._margin_changed)
        self.margin_override.toggled.connect(self._margin_changed)
        self._card_margin = 0.3

    def _margin_changed(self, *_: object) -> None:
        self.crop_margin.setEnabled(self.margin_override.isChecked())
        self.changed.emit({"crop_margin": round(self.crop_margin.value(), 2) if self.margin_override.isChecked()
                           else None})

    def set_card_margin(self, margin: float) -> None:
        """Show the model card's margin while it is not overridden."""
        self._card_margin = margin
        if not self.margin_override.isChecked():
            self.crop_margin.blockSignals(True)
            self.crop_margin.setValue(margin)
            self.crop_margin.blockSignals(False)

    def set_settings(self, s: PipelineSettings) -> None:
        """Show accepted settings without emitting ``changed``."""
        self.alpha.set_value(s.alpha)
        self.delta.set_value(s.delta)
        self.window.set_value(s.window)
        self.min_count.set_value(s.min_count)
        widgets = (self.window_ms, self.min_face, self.score_threshold, self.align_eyes, self.clahe,
                   self.crop_margin, self.margin_override)
        for w in widgets:
            w.blockSignals(True)
        self.window_ms.setValue(int(s.window_ms or 0))
        self.min_face.setValue(s.min_face)
        self.score_threshold.setValue(s.score_threshold)
        self.align_eyes.setCurrentText(_tri_text(s.align_eyes))
        self.clahe.setCurrentText(_tri_text(s.clahe))
        self.margin_override.setChecked(s.crop_margin is not None)
        self.crop_margin.setValue(s.crop_margin if s.crop_margin is not None else self._card_margin)
        self.crop_margin.setEnabled(s.crop_margin is not None)
        for w in widgets:
            w.blockSignals(False)
