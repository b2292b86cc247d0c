"""The whole video as a strip: labelled segments, the playhead; click or drag to seek.

One strip per rater (A, B): ``title`` is drawn at the left, and the strip of the rater being labelled
(``active``) gets a bright frame.
"""

from __future__ import annotations

from typing import Callable, Sequence

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.widgets.colors import class_color
from fer_models.session_log import LabelInterval


class VideoLabelBar(QWidget):
    seek_requested = Signal(int)  # frame index

    TITLE_W = 64

    def __init__(self, classes: Sequence[str], title: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.classes = list(classes)
        self.title = title
        self.active = True
        self.frame_count = 0
        self.fps = 30.0
        self.position = 0
        self.held = ""
        self._intervals: Callable[[], Sequence[LabelInterval]] = lambda: ()
        self.setMinimumHeight(30)
        self.setMaximumHeight(34)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("Manual labels of the video; click or drag to seek")

    def set_video(self, frame_count: int, fps: float, intervals: Callable[[], Sequence[LabelInterval]]) -> None:
        self.frame_count, self.fps, self._intervals = frame_count, fps, intervals
        self.update()

    def set_active(self, active: bool) -> None:
        self.active = bool(active)
        self.update()

    def set_position(self, frame: int, held: str = "") -> None:
        self.position, self.held = frame, held
        self.update()

    def _duration_ms(self) -> float:
        return max(1.0, self.frame_count * 1000.0 / self.fps)

    def _area(self) -> QRectF:
        left = 2 + (self.TITLE_W if self.title else 0)
        return QRectF(left, 4, self.width() - left - 2, self.height() - 8)

    def _frame_at_x(self, x: float) -> int:
        area = self._area()
        frac = min(1.0, max(0.0, (x - area.left()) / max(1.0, area.width())))
        return min(max(0, self.frame_count - 1), int(frac * self.frame_count))

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.frame_count and event.button() == Qt.MouseButton.LeftButton:
            self.seek_requested.emit(self._frame_at_x(event.position().x()))

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self.frame_count and event.buttons() & Qt.MouseButton.LeftButton:
            self.seek_requested.emit(self._frame_at_x(event.position().x()))

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        area = self._area()
        p.fillRect(self.rect(), QColor("#1d1f23"))
        if self.title:
            p.setPen(QColor("#e8eaed") if self.active else QColor("#7d838b"))
            p.drawText(QRectF(2, 0, self.TITLE_W - 6, self.height()),
                       Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, self.title)
        p.fillRect(area, QColor("#2b2e33"))
        dur = self._duration_ms()
        for r in self._intervals():
            x0 = area.left() + area.width() * r.start_ms / dur
            x1 = area.left() + area.width() * min(r.end_ms, dur) / dur
            p.fillRect(QRectF(x0, area.top(), max(1.0, x1 - x0), area.height()), class_color(r.label, self.classes))
        if self.title and self.active:
            p.setPen(QPen(QColor("#e8eaed"), 1))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(area.adjusted(-1, -1, 1, 1))
        if self.frame_count:
            x = area.left() + area.width() * self.position / self.frame_count
            p.setPen(QPen(QColor("#ffffff"), 2))
            p.drawLine(int(x), 0, int(x), self.height())
            if self.held:
                p.setPen(QPen(class_color(self.held, self.classes), 3))
                p.drawLine(int(x) - 4, 1, int(x) + 4, 1)
        p.end()
