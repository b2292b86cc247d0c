"""A message strip at the top of the window: problems are said in the window, not in a console."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

STYLES = {
    "info": ("#1f3a52", "#cfe8ff"),
    "warning": ("#4a3b12", "#ffe7a3"),
    "error": ("#5a1f1f", "#ffd6d6"),
}


class MessageBanner(QFrame):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.label, 1)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        close.clicked.connect(self.hide)
        lay.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.level = ""
        self.hide()

    def show_message(self, text: str, level: str = "info") -> None:
        bg, fg = STYLES.get(level, STYLES["info"])
        self.setStyleSheet(f"MessageBanner {{ background: {bg}; border-radius: 6px; }} QLabel {{ color: {fg}; }}")
        self.label.setText(text)
        self.level = level
        self.show()

    def text(self) -> str:
        return "" if self.isHidden() else self.label.text()

    def clear(self) -> None:
        self.level = ""
        self.label.clear()
        self.hide()
