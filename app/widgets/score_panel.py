"""Live transition-fair metrics (app.live_stats.LiveScore: incremental, equal to score_session and fer-score)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QSpinBox, QWidget

from fer_models.scoring import DEFAULT_SCORING

ROWS = (
    ("accuracy", "Accuracy", lambda v: f"{v:.1%}"),
    ("macro_f1", "Macro-F1", lambda v: f"{v:.3f}"),
    ("jitter_per_min", "Jitter / min", lambda v: f"{v:.1f}"),
    ("time_to_lock_ms_median", "Time to lock (median)", lambda v: f"{v:.0f} ms"),
    ("lock_rate", "Lock rate", lambda v: f"{v:.0%}"),
    ("n_scored_frames", "Scored frames", lambda v: f"{v}"),
    ("n_segments", "Scored segments", lambda v: f"{v}"),
)


LAG_MAX_MS = 2000
LAG_STEP_MS = 50


class ScorePanel(QGroupBox):
    lag_changed = Signal(float)  # the annotator lag (ms) the user set

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Score (live, transition-fair)", parent)
        form = QFormLayout(self)
        form.setContentsMargins(8, 6, 8, 6)
        form.setVerticalSpacing(2)
        self.lag = QSpinBox()
        self.lag.setRange(0, LAG_MAX_MS)
        self.lag.setSingleStep(LAG_STEP_MS)
        self.lag.setSuffix(" ms")
        self.lag.setSpecialValueText("0 ms (none)")
        self.lag.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # digits typed elsewhere are label keys
        self.lag.setToolTip("Annotator reaction lag: score each frame against the manual label held this much later "
                            "(labels move earlier). Used for the live and the final score; recorded in score.json "
                            "and the lag_ms column of demo_results_summary.csv. fer-score --estimate-lag finds it.")
        self.lag.valueChanged.connect(lambda v: self.lag_changed.emit(float(v)))
        form.addRow("Annotator lag", self.lag)
        self.values: dict[str, QLabel] = {}
        for key, title, _ in ROWS:
            lab = QLabel("n/a")
            lab.setObjectName(f"score_{key}")
            self.values[key] = lab
            form.addRow(title, lab)
        self.note = QLabel(f"Hold a manual label (keys 1-7) for at least {DEFAULT_SCORING.min_hold_ms / 1000:g} s "
                           "to score.")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #9aa0a6")
        form.addRow(self.note)
        self.last: dict | None = None

    def set_lag(self, lag_ms: float) -> None:
        """Show the lag in force without emitting."""
        self.lag.blockSignals(True)
        self.lag.setValue(int(round(lag_ms)))
        self.lag.blockSignals(False)

    def show_score(self, score: dict | None, final: bool = False) -> None:
        self.last = score
        self.setTitle("Score (final, session saved)" if final else "Score (live, transition-fair)")
        for key, _, fmt in ROWS:
            v = None if score is None else score.get(key)
            self.values[key].setText("n/a" if v is None else fmt(v))
