"""One recording session on disk: logs, settings, model card copy, and its final score.

Qt-free so the headless replay and the app (app/controller.py) record sessions the same way.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import platformdirs

from app.app_config import APP_NAME
from app.live_stats import LiveScore
from fer_models.classes import UNSTABLE
from fer_models.files import write_json
from fer_models.errors import ArtifactError, ArtifactWriteError
from fer_models.model_folder import FerModel
from fer_models.pipeline import FrameResult, PipelineSettings
from fer_models.scoring import DEFAULT_SCORING, ScoringParams, append_demo_summary, apply_lag, score_session
from fer_models.scoring_cli import score_file
from fer_models.session_log import SessionLogger, logged_float


def as_logged_time(time_sec: float) -> float:
    """``time_sec`` as fer-score reads it back from per_frame.csv, so the live score equals fer-score's."""
    return logged_float(time_sec)


def _num(v: float) -> float | int:
    return int(v) if float(v).is_integer() else v


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


SESSION_FILES = ("per_frame.csv", "events.csv", "actions.csv", "settings.json", "score.json", "model_card.json")


def existing_session_files(folder: Path) -> list[str]:
    """The session files (per_frame.csv, events.csv, ...) that ``folder`` already holds."""
    return [name for name in SESSION_FILES if (Path(folder) / name).exists()]


def check_new_session_dir(folder: str | Path, option: str = "--out") -> Path:
    """Refuse, without writing anything, a folder a new session cannot go to; a new or empty folder passes.

    Refused: a path that is a file, a folder that holds a session (its logs would be appended to: time going
    backwards, events mixed, settings and score overwritten) and any other non-empty folder (its files are
    not ours to mix with). ``option`` is the command-line option the message tells the user to change.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ArtifactError(folder, f"exists and is not a folder; choose another {option}")
    if folder.is_dir():
        found = existing_session_files(folder)
        if found:
            raise ArtifactError(folder, f"already holds a session ({', '.join(found)}); choose another {option} "
                                        "(a new or empty folder), the old session is left as it is")
        try:
            entries = sorted(p.name for p in folder.iterdir())
        except OSError as exc:
            raise ArtifactWriteError.from_os_error(folder, exc, "cannot read the session folder") from exc
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ArtifactError(folder, f"is not empty ({shown}); choose another {option} (a new or empty folder)")
        return folder
    above = folder.parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if above.exists() and not above.is_dir():
        raise ArtifactError(folder, f"cannot be created: {above} is a file, not a folder; choose another {option}")
    return folder


def prepare_session_dir(folder: str | Path, option: str = "--out") -> Path:
    """``check_new_session_dir``, then create the folder (an existing empty one is used); errors name the path."""
    folder = check_new_session_dir(folder, option)
    if folder.is_dir():
        return folder
    try:
        folder.mkdir(parents=True)
    except OSError as exc:
        raise ArtifactWriteError.from_os_error(folder, exc, "cannot create the session folder") from exc
    return folder


class SessionRecorder:
    """Owns a session folder: per-frame rows, label events, actions, settings.json and the model card copy.

    A folder that already holds a session is refused before anything is written: it is never appended to.
    """

    def __init__(self, folder: Path, model: FerModel, settings: PipelineSettings, source: str,
                 scoring: ScoringParams = DEFAULT_SCORING, lag_ms: float = 0.0, summary_name: str | None = None):
        self.folder = Path(folder)
        found = existing_session_files(self.folder) if self.folder.is_dir() else []
        if found:
            raise ArtifactError(self.folder, f"already holds a session ({', '.join(found)}); a new session needs "
                                             "a new or empty folder")
        self.model = model
        self.final_score: dict | None = None
        self.settings = settings
        self.source = source
        self.logger = SessionLogger(self.folder, model.classes)
        self.manual_label = ""
        # the score columns of every logged row, kept in memory for the live score (no re-reading the CSV)
        self._score_time: list[float] = []
        self._score_pred: list[str] = []
        self._score_manual: list[str] = []
        self.scoring = scoring  # the thresholds of the live score, the final score and the summary row
        self._live_score = LiveScore(scoring)  # the same rows, scored incrementally (flat cost per update)
        # the annotator lag (DESIGN.md §5) the live and final scores use; recorded in score.json and the summary
        self.lag_ms = float(lag_ms)
        self.summary_name = summary_name  # the summary row's "session" (default: the folder's name)
        try:
            self._copy_card(model)
            self.write_settings()
            self.logger.log_action(0.0, "session_start", datetime.now(timezone.utc).isoformat(timespec="seconds"))
            self.logger.log_action(0.0, "source", source)
            self.logger.log_action(0.0, "model", f"{model.model_id} ({model.folder})")
            self.logger.log_action(0.0, "provider", model.provider)
        except Exception:
            try:
                self.logger.close()
            except ArtifactError:
                pass  # the error being raised already says what is wrong with this folder
            raise
        self.closed = False

    def _copy_card(self, model: FerModel) -> None:
        dst = self.folder / "model_card.json"
        try:
            shutil.copyfile(model.folder / "model_card.json", dst)
        except OSError as exc:
            raise ArtifactWriteError.from_os_error(dst, exc, "cannot copy the model card") from exc

    def write_settings(self) -> None:
        write_json(self.folder / "settings.json", {
            "model_id": self.model.model_id, "model_folder": str(self.model.folder),
            "provider": self.model.provider, "source": self.source,
            "smoothing": self.settings.smoothing(), "pipeline": self.settings.to_dict(),
        })

    def set_model(self, model: FerModel, time_sec: float) -> None:
        self.model = model
        self._copy_card(model)
        self.logger.log_action(time_sec, "model", f"{model.model_id} ({model.folder})")
        self.write_settings()

    def set_settings(self, settings: PipelineSettings, time_sec: float) -> None:
        old = self.settings.to_dict()
        for key, value in settings.to_dict().items():
            if old.get(key) != value:
                self.logger.log_action(time_sec, f"set_{key}", value)
        self.settings = settings
        self.write_settings()

    def set_lag(self, lag_ms: float, time_sec: float) -> None:
        """Score with this annotator lag from now on (live score, score.json, summary row); logged."""
        lag = float(lag_ms)
        if lag != self.lag_ms:
            self.lag_ms = lag
            self.logger.log_action(time_sec, "set_lag_ms", lag)

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
        self._live_score.add(self._score_time[-1], self._score_pred[-1], self.manual_label)

    @property
    def n_frames(self) -> int:
        return len(self._score_time)

    def score_live(self, params: ScoringParams | None = None, **overrides: float) -> dict:
        """Score the rows logged so far from memory; equal to ``score()`` / fer-score on the same rows.

        ``params`` (default: the session's ``scoring``) or single ``min_hold_ms`` / ``exclusion_ms`` /
        ``lock_ms`` overrides choose other thresholds; those, and a nonzero ``lag_ms``, are scored from
        the rows kept in memory (``score_session`` over the lagged labels, as ``fer-score --lag-ms``).
        """
        p = replace(params or self.scoring, **overrides)
        if p == self._live_score.params and not self.lag_ms:
            return self._live_score.result()
        manual = apply_lag(self._score_time, self._score_manual, self.lag_ms) if self.lag_ms else self._score_manual
        result = score_session(self._score_time, self._score_pred, manual, p.min_hold_ms, p.exclusion_ms, p.lock_ms)
        return self._with_lag(result)

    def _with_lag(self, result: dict) -> dict:
        """A nonzero lag leads the result, as in ``fer-score --lag-ms L --json``; lag 0 keeps the plain keys."""
        return {"lag_ms": _num(self.lag_ms), **result} if self.lag_ms else result

    def score(self, params: ScoringParams | None = None) -> dict:
        """Score what has been written so far, with the same function as fer-score (the CSV streamed)."""
        p = params or self.scoring
        return self._with_lag(score_file(self.folder / "per_frame.csv", p.min_hold_ms, p.exclusion_ms, p.lock_ms,
                                         lag_ms=self.lag_ms))

    def close(self, time_sec: float, summary_csv: Path | None = None) -> dict | None:
        """End the session: finish the open label segment, score, write score.json, then append the summary row.

        score.json is written before the summary row, so a summary that cannot be written (raised as an
        ArtifactError naming it) loses nothing of the session; ``final_score`` holds the score either way.
        ``summary_csv`` defaults to demo_results_summary.csv beside the session folder (the window's
        sessions folder).
        """
        if self.closed:
            return None
        self.closed = True
        try:
            self.logger.log_action(time_sec, "session_end", "")
        finally:
            self.logger.close()
        result = self.score()
        write_json(self.folder / "score.json", result)
        self.final_score = result
        summary_csv = Path(summary_csv) if summary_csv else (self.folder.parent / "demo_results_summary.csv")
        s = self.settings
        append_demo_summary(summary_csv, {
            "scored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "session": self.summary_name or self.folder.name,
            "per_frame_csv": str(self.folder / "per_frame.csv"), "model_id": self.model.model_id,
            "alpha": s.alpha, "delta": s.delta, "window": s.window, "window_ms": s.window_ms,
            "min_count": s.min_count, **self.scoring.to_dict(), **result, "lag_ms": self.lag_ms})
        return result
