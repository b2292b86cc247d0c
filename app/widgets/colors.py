"""One colour per class, shared by the video overlay, the charts, the timeline and the label bar."""

from __future__ import annotations

from PySide6.QtGui import QColor

from fer_models.classes import FER7

CLASS_HEX: dict[str, str] = {
    "Angry": "#e15759",
    "Disgust": "#59a14f",
    "Fear": "#b07aa1",
    "Happy": "#edc948",
    "Sad": "#4e79a7",
    "Surprise": "#f28e2b",
    "Neutral": "#a0a7b0",
}
UNSTABLE_HEX = "#55595f"
FALLBACK_HEX = ("#76b7b2", "#ff9da7", "#9c755f", "#bab0ac")


def class_color(label: str | None, classes=FER7) -> QColor:
    """The colour of a class; grey for no / unstable label."""
    if not label:
        return QColor(UNSTABLE_HEX)
    if label in CLASS_HEX:
        return QColor(CLASS_HEX[label])
    i = list(classes).index(label) if label in classes else len(label)
    return QColor(FALLBACK_HEX[i % len(FALLBACK_HEX)])
