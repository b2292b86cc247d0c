"""The clickable label bar: one button per class (with its key) plus "no label"."""

from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QPushButton, QWidget

from app.widgets.colors import class_color


class LabelBar(QWidget):
    label_clicked = Signal(str)  # "" = no label

    def __init__(self, classes: Sequence[str], parent: QWidget | None = None):
        super().__init__(parent)
        self.classes = list(classes)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        self._group = QButtonGroup(self)
        self._group.setExclusive(True)
        self.buttons: dict[str, QPushButton] = {}
        for key, label in [("0", "")] + [(str(i + 1), c) for i, c in enumerate(self.classes)]:
            text = f"{key}  {label or 'No label'}"
            b = QPushButton(text)
            b.setCheckable(True)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys must keep reaching the window
            b.setMinimumHeight(30)
            color = class_color(label, self.classes).name()
            fg = "#111" if label and class_color(label, self.classes).lightness() > 140 else "#fff"
            b.setStyleSheet(
                f"QPushButton {{ border: 2px solid {color}; border-radius: 6px; padding: 3px 8px; }}"
                f"QPushButton:checked {{ background: {color}; color: {fg}; font-weight: bold; }}")
            b.clicked.connect(lambda _=False, lab=label: self.label_clicked.emit(lab))
            self._group.addButton(b)
            layout.addWidget(b)
            self.buttons[label] = b
        self.set_current("")

    def set_current(self, label: str) -> None:
        b = self.buttons.get(label)
        if b is not None and not b.isChecked():
            b.setChecked(True)

    def current(self) -> str:
        for label, b in self.buttons.items():
            if b.isChecked():
                return label
        return ""
