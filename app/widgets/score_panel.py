"""Live transition-fair metrics (app.live_stats.LiveScore: incremental, equal to score_session and fer-score)."""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QWidget

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


class ScorePanel(QGroupBox):
    def __init__(self, parent: QWidget | None = None):
        super().__init__("Score (live, transition-fair)", parent)
        form = QFormLayout(self)
        form.setContentsMargins(8, 6, 8, 6)
        form.setVerticalSpacing(2)
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

    def show_score(self, score: dict | None, final: bool = False) -> None:
        self.last = score
        self.setTitle("Score (final, session saved)" if final else "Score (live, transition-fair)")
        for key, _, fmt in ROWS:
            v = None if score is None else score.get(key)
            self.values[key].setText("n/a" if v is None else fmt(v))
