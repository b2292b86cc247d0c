"""One recording session on disk: logs, settings, model card copy, and its final score.

Qt-free so the headless replay and the window record sessions the same way.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import platformdirs

from fer_models.classes import UNSTABLE, write_json
from fer_models.model_folder import FerModel
from fer_models.pipeline import FrameResult, PipelineSettings
from fer_models.scoring import append_demo_summary, score_session
from fer_models.session_log import SCORE_COLUMNS, SessionLogger, logged_float, read_csv_table

APP_NAME = "ferlab"


def as_logged_time(time_sec: float) -> float:
    """``time_sec`` as fer-score reads it back from per_frame.csv, so the live score equals fer-score's."""
    return logged_float(time_sec)


def user_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def new_session_dir(root: Path | None = None) -> Path:
    """A fresh, time-stamped folder under the user data directory (or ``root``)."""
    root = root or user_data_dir() / "sessions"
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = root / stamp
    n = 1
    while folder.exists():
        n += 1
        folder = root / f"{stamp}-{n}"
    folder.mkdir(parents=True)
    return folder


class SessionRecorder:
    """Owns a session folder: per-frame rows, label events, actions, settings.json and the model card copy."""

    def __init__(self, folder: Path, model: FerModel, settings: PipelineSettings, source: str):
        self.folder = Path(folder)
        self.model = model
        self.settings = settings
        self.source = source
        self.logger = SessionLogger(self.folder, model.classes)
        self.manual_label = ""
        # the score columns of every logged row, kept in memory for the live score (no re-reading the CSV)
        self._score_time: list[float] = []
        self._score_pred: list[str] = []
        self._score_manual: list[str] = []
        shutil.copyfile(model.folder / "model_card.json", self.folder / "model_card.json")
        self.write_settings()
        self.logger.log_action(0.0, "session_start", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        self.logger.log_action(0.0, "source", source)
        self.logger.log_action(0.0, "model", f"{model.model_id} ({model.folder})")
        self.logger.log_action(0.0, "provider", model.provider)
        self.closed = False

    def write_settings(self) -> None:
        write_json(self.folder / "settings.json", {
            "model_id": self.model.model_id, "model_folder": str(self.model.folder),
            "provider": self.model.provider, "source": self.source,
            "smoothing": self.settings.smoothing(), "pipeline": self.settings.to_dict(),
        })

    def set_model(self, model: FerModel, time_sec: float) -> None:
        self.model = model
        shutil.copyfile(model.folder / "model_card.json", self.folder / "model_card.json")
        self.logger.log_action(time_sec, "model", f"{model.model_id} ({model.folder})")
        self.write_settings()

    def set_settings(self, settings: PipelineSettings, time_sec: float) -> None:
        old = self.settings.to_dict()
        for key, value in settings.to_dict().items():
            if old.get(key) != value:
                self.logger.log_action(time_sec, f"set_{key}", value)
        self.settings = settings
        self.write_settings()

    def set_manual_label(self, label: str, time_sec: float, source: str = "hotkey") -> None:
        if label == self.manual_label:
            return
        self.manual_label = label
        self.logger.note_label_source(source)
        self.logger.log_action(time_sec, "manual_label", label or "(none)")

    def log_action(self, time_sec: float, kind: str, value: Any = "") -> None:
        self.logger.log_action(time_sec, kind, value)

    def log_frame(self, frame_index: int, time_sec: float, result: FrameResult) -> None:
        self.logger.log_frame(frame_index, time_sec, self.manual_label, result.label, result.probs,
                              result.log_columns(self.model.classes, self.model.model_id))
        self._score_time.append(as_logged_time(time_sec))
        self._score_pred.append(result.label or UNSTABLE)
        self._score_manual.append(self.manual_label)

    @property
    def n_frames(self) -> int:
        return len(self._score_time)

    def score_live(self, min_hold_ms: float = 600, exclusion_ms: float = 250, lock_ms: float = 500) -> dict:
        """Score the rows logged so far from memory; equal to ``score()`` / fer-score on the same rows."""
        return score_session(self._score_time, self._score_pred, self._score_manual, min_hold_ms, exclusion_ms,
                             lock_ms)

    def score(self, min_hold_ms: float = 600, exclusion_ms: float = 250, lock_ms: float = 500) -> dict:
        """Score what has been written so far, with the same function as fer-score."""
        cols = read_csv_table(self.folder / "per_frame.csv", SCORE_COLUMNS)
        return score_session([float(t) for t in cols["time_sec"]], cols["pred_label"], cols["manual_label"],
                             min_hold_ms, exclusion_ms, lock_ms)

    def close(self, time_sec: float, summary_csv: Path | None = None) -> dict | None:
        """End the session: finish the open label segment, score, and append the summary row."""
        if self.closed:
            return None
        self.logger.log_action(time_sec, "session_end", "")
        self.logger.close()
        self.closed = True
        result = self.score()
        summary_csv = summary_csv or (self.folder.parent / "demo_results_summary.csv")
        s = self.settings
        append_demo_summary(summary_csv, {
            "scored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "session": self.folder.name,
            "per_frame_csv": str(self.folder / "per_frame.csv"), "model_id": self.model.model_id,
            "alpha": s.alpha, "delta": s.delta, "window": s.window, "window_ms": s.window_ms,
            "min_count": s.min_count, "min_hold_ms": 600, "exclusion_ms": 250, "lock_ms": 500, **result})
        write_json(self.folder / "score.json", result)
        return result
