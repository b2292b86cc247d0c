"""The live view: the frame with the face box, 5 landmarks, label and optional overlays.

Overlays are painted on the widget over a converted RGB copy of the frame; the
array the model processed is never drawn on (the earlier demo drew the box into
the frame it then cropped).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from app.widgets.colors import class_color
from fer_models.pipeline import FrameResult

LANDMARK_COLORS = ("#4dd0e1", "#4dd0e1", "#ffd54f", "#f06292", "#f06292")  # eyes, nose, mouth corners


def bgr_to_qimage(frame_bgr: np.ndarray) -> QImage:
    """A QImage that owns its own pixels (a copy: painting on it cannot reach the frame)."""
    if frame_bgr.ndim == 2:
        rgb = np.ascontiguousarray(np.repeat(frame_bgr[:, :, None], 3, axis=2))
    else:
        rgb = np.ascontiguousarray(frame_bgr[:, :, 2::-1])
    h, w = rgb.shape[:2]
    return QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class VideoView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(480, 360)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._image: QImage | None = None
        self._result: FrameResult | None = None
        self._classes: list[str] = []
        self.overlay = True
        self._shares: Mapping[str, float] = {}
        self._manual = ""
        self.manual_title = "Manual"  # "Rater B" while rater B is being labelled
        self._placeholder = "Open a camera or a video file to start."

    # -- inputs ----------------------------------------------------------------------------
    def show_frame(self, frame_bgr: np.ndarray, result: FrameResult | None, classes: Sequence[str],
                   manual_label: str = "", shares: Mapping[str, float] | None = None) -> None:
        if frame_bgr is not None and frame_bgr.size:
            self._image = bgr_to_qimage(frame_bgr)
        self._result = result
        self._classes = list(classes)
        self._manual = manual_label
        self._shares = shares or {}
        self.update()

    def set_manual_label(self, label: str) -> None:
        self._manual = label
        self.update()

    def set_placeholder(self, text: str) -> None:
        self._placeholder = text
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        self._image = None
        self._result = None
        if placeholder is not None:
            self._placeholder = placeholder
        self.update()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt name
        self.setFocus()
        super().mousePressEvent(event)

    # -- painting --------------------------------------------------------------------------
    def _image_rect(self) -> QRectF:
        assert self._image is not None
        iw, ih = self._image.width(), self._image.height()
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt name
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("#15171b"))
        if self._image is None:
            p.setPen(QColor("#9aa0a6"))
            f = p.font()
            f.setPointSizeF(13)
            p.setFont(f)
            p.drawText(self.rect().adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self._placeholder)
            p.end()
            return
        target = self._image_rect()
        p.drawImage(target, self._image)
        scale = target.width() / self._image.width()
        r = self._result
        if r is not None and r.face is not None:
            self._paint_face(p, target, scale, r)
        elif r is not None:
            self._pill(p, QPointF(target.left() + 12, target.top() + 12), "no face", QColor("#55595f"))
        if self.overlay and r is not None:
            self._paint_overlay(p, target, r)
        self._paint_manual(p, target)
        p.end()

    def _paint_face(self, p: QPainter, target: QRectF, scale: float, r: FrameResult) -> None:
        assert r.face is not None
        x, y, w, h = r.face.box
        box = QRectF(target.left() + x * scale, target.top() + y * scale, w * scale, h * scale)
        color = class_color(r.label, self._classes) if r.label else QColor("#e8eaed")
        p.setPen(QPen(color, 3))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRoundedRect(box, 6, 6)
        p.setPen(Qt.PenStyle.NoPen)
        for (lx, ly), hexc in zip(r.face.landmarks, LANDMARK_COLORS):
            p.setBrush(QColor(hexc))
            p.drawEllipse(QPointF(target.left() + lx * scale, target.top() + ly * scale), 4, 4)
        text = f"{r.label}  {r.confidence:.0%}" if r.label and r.confidence is not None else "(unstable)"
        self._pill(p, QPointF(box.left(), max(target.top() + 4, box.top() - 38)), text,
                   color if r.label else QColor("#55595f"), big=True)

    def _pill(self, p: QPainter, at: QPointF, text: str, color: QColor, big: bool = False) -> None:
        f = QFont(self.font())
        f.setPointSizeF(15 if big else 11)
        f.setBold(True)
        p.setFont(f)
        fm = p.fontMetrics()
        rect = QRectF(at.x(), at.y(), fm.horizontalAdvance(text) + 20, fm.height() + 10)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(color)
        p.drawRoundedRect(rect, 8, 8)
        p.setPen(QColor("#111111") if color.lightness() > 140 else QColor("#ffffff"))
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_manual(self, p: QPainter, target: QRectF) -> None:
        text = f"{self.manual_title}: {self._manual or '—'}"
        f = QFont(self.font())
        f.setPointSizeF(11)
        f.setBold(True)
        p.setFont(f)
        width = p.fontMetrics().horizontalAdvance(text) + 20
        self._pill(p, QPointF(target.right() - width - 12, target.top() + 12), text,
                   class_color(self._manual, self._classes) if self._manual else QColor(40, 42, 46, 200))

    def _paint_overlay(self, p: QPainter, target: QRectF, r: FrameResult) -> None:
        """Calibrated probabilities of this frame and the session's share of time per predicted class."""
        classes = self._classes
        row_h, bar_w, name_w = 17, 110, 64
        panel_h = 2 * (len(classes) * row_h + 24) + 8
        panel = QRectF(target.left() + 12, target.bottom() - panel_h - 12, name_w + bar_w + 58, panel_h)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(15, 16, 19, 185))
        p.drawRoundedRect(panel, 8, 8)
        f = QFont(self.font())
        f.setPointSizeF(9)
        p.setFont(f)
        y = panel.top() + 6
        probs = [float(v) for v in r.probs] if r.probs is not None else [0.0] * len(classes)
        shares = [float(self._shares.get(c, 0.0)) for c in classes]
        for title, values in (("Probability (calibrated)", probs), ("Share of session time", shares)):
            p.setPen(QColor("#c8ccd2"))
            p.drawText(QRectF(panel.left() + 8, y, panel.width() - 16, 18), Qt.AlignmentFlag.AlignLeft, title)
            y += 20
            for i, c in enumerate(classes):
                v = values[i]
                p.setPen(QColor("#e8eaed"))
                p.drawText(QRectF(panel.left() + 8, y, name_w, row_h), Qt.AlignmentFlag.AlignVCenter, c)
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(255, 255, 255, 30))
                p.drawRect(QRectF(panel.left() + 8 + name_w, y + 3, bar_w, row_h - 6))
                p.setBrush(class_color(c, classes))
                p.drawRect(QRectF(panel.left() + 8 + name_w, y + 3, bar_w * max(0.0, min(1.0, v)), row_h - 6))
                p.setPen(QColor("#e8eaed"))
                p.drawText(QRectF(panel.left() + 12 + name_w + bar_w, y, 40, row_h), Qt.AlignmentFlag.AlignVCenter,
                           f"{v:.0%}")
                y += row_h
            y += 4
