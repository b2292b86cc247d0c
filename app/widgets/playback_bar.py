"""Video controls for file sources: play/pause, frame steps, speed, position, label-file buttons."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)


def format_ms(ms: float) -> str:
    s = max(0.0, ms) / 1000.0
    return f"{int(s // 60):02d}:{s % 60:06.3f}"


class PlaybackBar(QWidget):
    play_toggled = Signal()
    step_requested = Signal(int)
    speed_changed = Signal(float)
    label_mode_changed = Signal(bool)
    load_labels = Signal()
    save_labels = Signal()
    delete_segment = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)

        def tool(text: str, tip: str) -> QToolButton:
            b = QToolButton()
            b.setText(text)
            b.setToolTip(tip)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setMinimumWidth(34)
            lay.addWidget(b)
            return b

        self.back_btn = tool("◀|", "Previous frame (,)")
        self.play_btn = tool("▶", "Play / pause (space)")
        self.fwd_btn = tool("|▶", "Next frame (.)")
        self.back_btn.clicked.connect(lambda: self.step_requested.emit(-1))
        self.fwd_btn.clicked.connect(lambda: self.step_requested.emit(1))
        self.play_btn.clicked.connect(self.play_toggled.emit)
        self.speed = QComboBox()
        self.speed.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(SPEEDS.index(1.0))
        self.speed.currentIndexChanged.connect(lambda i: self.speed_changed.emit(float(self.speed.itemData(i))))
        self.speed.setToolTip("Playback speed")
        lay.addWidget(self.speed)
        self.pos_label = QLabel("—")
        self.pos_label.setMinimumWidth(360)
        lay.addWidget(self.pos_label)
        lay.addStretch(1)
        self.label_mode = QCheckBox("Video-label mode")
        self.label_mode.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.label_mode.setChecked(True)
        self.label_mode.setToolTip("Labels are tied to video time: a key labels the frame on screen and every "
                                   "frame played after it; re-label by playing over a segment again")
        self.label_mode.toggled.connect(self.label_mode_changed.emit)
        lay.addWidget(self.label_mode)
        for text, sig, tip in (("Load labels…", self.load_labels, "Load start_ms,end_ms,label"),
                               ("Save labels…", self.save_labels, "Save start_ms,end_ms,label"),
                               ("Delete segment", self.delete_segment, "Remove the label segment under the playhead")):
            b = QPushButton(text)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.setToolTip(tip)
            b.clicked.connect(sig.emit)
            lay.addWidget(b)

    def set_speed(self, speed: float) -> None:
        i = self.speed.findData(speed)
        if i >= 0:
            self.speed.blockSignals(True)
            self.speed.setCurrentIndex(i)
            self.speed.blockSignals(False)

    def set_playing(self, playing: bool) -> None:
        self.play_btn.setText("❚❚" if playing else "▶")

    def set_position(self, frame: int, frame_count: int, ms: float, duration_ms: float, label: str) -> None:
        total = f" / {format_ms(duration_ms)}" if duration_ms else ""
        frames = f" / {frame_count}" if frame_count else ""
        self.pos_label.setText(f"{format_ms(ms)}{total}   frame {frame}{frames}   label: {label or '—'}")


class RaterBox(QComboBox):
    """Says which rater is being labelled and switches it (key ``r`` does the same).

    Rater A's labels are the session's manual labels (per_frame.csv, video_labels.csv); rater B's are a
    second track of the same video (video_labels_b.csv). The label keys and buttons, Load/Save labels and
    Delete segment work on the rater shown here.
    """

    rater_changed = Signal(str)  # "A" or "B"

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.addItem("Labelling: rater A", "A")
        self.addItem("Labelling: rater B", "B")
        self.setToolTip("Which rater the label keys, Load/Save labels and Delete segment work on (r). Rater A's "
                        "labels are the session's manual labels; rater B's are a second track of the same video, "
                        "saved as video_labels_b.csv")
        self.currentIndexChanged.connect(lambda i: self.rater_changed.emit(str(self.itemData(i))))

    def set_rater(self, rater: str) -> None:
        """Show the rater being labelled without emitting."""
        i = self.findData(rater)
        if i >= 0 and i != self.currentIndex():
            self.blockSignals(True)
            self.setCurrentIndex(i)
            self.blockSignals(False)
