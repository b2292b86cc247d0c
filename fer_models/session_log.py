"""Session logs: per_frame.csv, events.csv, actions.csv (DESIGN.md §4).

The per-frame format starts with the columns of the earlier demo scripts so old
sessions can be re-scored. Every row is flushed as it is written: a crash loses at
most the row in flight, and the open label segment can be rebuilt from
per_frame.csv. Logs never hold pixels.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from fer_models.classes import FER7, UNSTABLE
from fer_models.errors import ArtifactError, ArtifactWriteError
from fer_models.files import atomic_write_text, read_text

STAGES = ("detect", "crop", "infer", "smooth", "total")
EVENTS_COLUMNS = ("label", "start_frame", "end_frame", "start_time_sec", "end_time_sec", "source")
ACTIONS_COLUMNS = ("time_sec", "kind", "value")
SCORE_COLUMNS = ("time_sec", "pred_label", "manual_label")


def per_frame_base_columns(classes: Sequence[str] = FER7) -> list[str]:
    """The leading columns shared with the earlier demo scripts' logs."""
    return ["frame_index", "time_sec", "manual_label", "pred_label"] + [f"prob_{c}" for c in classes]


def per_frame_app_columns(classes: Sequence[str] = FER7) -> list[str]:
    """The app's own trailing columns: face box, detector score, smoothed probabilities, latency, model id."""
    return (["face_x", "face_y", "face_w", "face_h", "det_score"]
            + [f"smooth_prob_{c}" for c in classes]
            + [f"ms_{s}" for s in STAGES] + ["model_id"])


def logged_float(value: float) -> float:
    """The value a float column holds after a write and a read (six decimals, not six digits).

    Fixed decimals keep time_sec exact to the microsecond however long a session runs.
    """
    return round(float(value), 6)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return repr(logged_float(value))
    return str(value)


def read_csv_header(path: str | Path) -> list[str]:
    """The first row of a CSV file (empty for an empty file), errors naming the file."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ArtifactError(path, f"cannot read its header ({exc})") from exc


def checked_header(reader, path: str | Path, required: Sequence[str]) -> list[str]:
    """The header row of an open ``csv.reader`` (names stripped), refused by name when empty or
    when a required column is missing."""
    header = next(reader, None)
    if not header:
        raise ArtifactError(path, "empty file (no header row)")
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise ArtifactError(path, f"missing required columns {missing}; found {header}")
    return header


class CsvLogWriter:
    """Append-only CSV writer with a fixed header that flushes every row."""

    def __init__(self, path: str | Path, columns: Sequence[str], fsync: bool = False):
        self.path = Path(path)
        self.columns = list(columns)
        self._fsync = fsync
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactWriteError.from_os_error(self.path.parent, exc, "cannot create the folder") from exc
        if self.path.is_dir():
            raise ArtifactError(self.path, "is a folder, not a CSV file")
        new = not self.path.exists() or self.path.stat().st_size == 0
        if not new:
            existing = read_csv_header(self.path)
            if existing != self.columns:
                raise ArtifactError(self.path, f"exists with other columns {existing}; refusing to append {self.columns}")
        try:
            self._fh = open(self.path, "a", newline="", encoding="utf-8")
        except OSError as exc:
            raise ArtifactWriteError.from_os_error(self.path, exc, "cannot open for writing") from exc
        self._writer = csv.writer(self._fh)
        if new:
            self._write(self.columns)

    def _write(self, values: Iterable[Any]) -> None:
        try:
            self._writer.writerow([_fmt(v) for v in values])
            self._fh.flush()
            if self._fsync:
                os.fsync(self._fh.fileno())
        except OSError as exc:  # disk full, disk gone: name the file, keep what was flushed before
            raise ArtifactWriteError.from_os_error(self.path, exc, "cannot write") from exc

    def write(self, row: dict[str, Any] | Sequence[Any]) -> None:
        if isinstance(row, dict):
            unknown = set(row) - set(self.columns)
            if unknown:
                raise KeyError(f"{self.path.name}: unknown columns {sorted(unknown)}")
            self._write(row.get(c) for c in self.columns)
        else:
            if len(row) != len(self.columns):
                raise ValueError(f"{self.path.name}: expected {len(self.columns)} values, got {len(row)}")
            self._write(row)

    def close(self) -> None:
        if not self._fh.closed:
            try:
                self._fh.close()
            except OSError as exc:
                raise ArtifactWriteError.from_os_error(self.path, exc, "cannot finish writing") from exc

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def __enter__(self) -> "CsvLogWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LabelSegment:
    label: str
    start_frame: int
    end_frame: int
    start_time_sec: float
    end_time_sec: float
    source: str


class SessionLogger:
    """Writes one session folder's three logs and turns held manual labels into events.

    The manual label is whatever is held when a frame is logged; a segment ends at
    the last frame that carried its label, so events.csv always agrees with
    per_frame.csv.
    """

    def __init__(self, folder: str | Path, classes: Sequence[str] = FER7, app_columns: bool = True,
                 clock_start: float | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.classes = list(classes)
        cols = per_frame_base_columns(classes) + (per_frame_app_columns(classes) if app_columns else [])
        self.per_frame = CsvLogWriter(self.folder / "per_frame.csv", cols)
        self.events = CsvLogWriter(self.folder / "events.csv", EVENTS_COLUMNS)
        self.actions = CsvLogWriter(self.folder / "actions.csv", ACTIONS_COLUMNS)
        self._open: LabelSegment | None = None
        self._label_source = "hotkey"
        self.finished_segments: list[LabelSegment] = []
        self.n_frames = 0
        self.last_time_sec = 0.0

    # -- manual labels ---------------------------------------------------------------
    def note_label_source(self, source: str) -> None:
        """Where the next label change comes from (hotkey, click, video, gt-file...)."""
        self._label_source = source

    def _track(self, frame_index: int, time_sec: float, manual_label: str) -> None:
        if self._open is not None and self._open.label != manual_label:
            self._close_open()
        if manual_label and self._open is None:
            self._open = LabelSegment(manual_label, frame_index, frame_index, time_sec, time_sec, self._label_source)
        elif self._open is not None:
            self._open.end_frame, self._open.end_time_sec = frame_index, time_sec

    def _close_open(self) -> None:
        seg = self._open
        if seg is None:
            return
        self.events.write([seg.label, seg.start_frame, seg.end_frame, round(seg.start_time_sec, 6),
                           round(seg.end_time_sec, 6), seg.source])
        self.finished_segments.append(seg)
        self._open = None

    # -- rows --------------------------------------------------------------------------
    def log_frame(self, frame_index: int, time_sec: float, manual_label: str | None, pred_label: str | None,
                  probs: Sequence[float] | None, extra: dict[str, Any] | None = None) -> None:
        manual = manual_label or ""
        row: dict[str, Any] = {
            "frame_index": int(frame_index),
            "time_sec": round(float(time_sec), 6),
            "manual_label": manual,
            "pred_label": pred_label if pred_label else UNSTABLE,
        }
        if probs is not None:
            row.update({f"prob_{c}": float(v) for c, v in zip(self.classes, probs)})
        if extra:
            row.update(extra)
        self.per_frame.write(row)
        self._track(int(frame_index), float(time_sec), manual)
        self.n_frames += 1
        self.last_time_sec = float(time_sec)

    def log_action(self, time_sec: float, kind: str, value: Any = "") -> None:
        self.actions.write([round(float(time_sec), 6), kind, value])

    def close(self) -> None:
        """Finish the open label segment and close every file (idempotent).

        Every file is closed even when one fails (disk full); the first failure is raised after.
        """
        first: Exception | None = None
        if not self.events.closed:
            try:
                self._close_open()
            except ArtifactError as exc:
                first = exc
        for w in (self.per_frame, self.events, self.actions):
            try:
                w.close()
            except ArtifactError as exc:
                first = first or exc
        if first is not None:
            raise first


# ----------------------------------------------------------------------------- readers

def read_csv_table(path: str | Path, required: Sequence[str]) -> dict[str, list[str]]:
    """Read a CSV into columns, refusing missing columns or ragged rows with the file and line named."""
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text(path)))
    header = checked_header(reader, path, required)
    cols: dict[str, list[str]] = {h: [] for h in header}
    for lineno, values in enumerate(reader, start=2):
        if not values:
            continue
        if len(values) != len(header):
            raise ArtifactError(path, f"line {lineno}: expected {len(header)} fields, found {len(values)}")
        for h, v in zip(header, values):
            cols[h].append(v)
    return cols


def read_per_frame(path: str | Path, classes: Sequence[str] = FER7, require_probs: bool = True) -> dict[str, list[str]]:
    """Read a per_frame.csv (this app's or the earlier scripts'), validating its columns."""
    required = per_frame_base_columns(classes) if require_probs else list(SCORE_COLUMNS)
    return read_csv_table(path, required)


def read_events(path: str | Path) -> list[LabelSegment]:
    cols = read_csv_table(path, EVENTS_COLUMNS)
    out = []
    for i in range(len(cols["label"])):
        try:
            out.append(LabelSegment(cols["label"][i], int(cols["start_frame"][i]), int(cols["end_frame"][i]),
                                    float(cols["start_time_sec"][i]), float(cols["end_time_sec"][i]),
                                    cols["source"][i]))
        except ValueError as exc:
            raise ArtifactError(path, f"line {i + 2}: {exc}") from exc
    return out


def read_actions(path: str | Path) -> list[tuple[float, str, str]]:
    cols = read_csv_table(path, ACTIONS_COLUMNS)
    return [(float(t), k, v) for t, k, v in zip(cols["time_sec"], cols["kind"], cols["value"])]


# ----------------------------------------------------------------------------- ground-truth label files

@dataclass(frozen=True)
class LabelInterval:
    start_ms: float
    end_ms: float
    label: str


def read_label_intervals(path: str | Path, classes: Sequence[str] = FER7) -> list[LabelInterval]:
    """Read a ``start_ms,end_ms,label`` file (video time); overlapping or unknown labels are refused."""
    from fer_models.classes import canonical_class_name

    cols = read_csv_table(path, ("start_ms", "end_ms", "label"))
    out: list[LabelInterval] = []
    for i, (a, b, lab) in enumerate(zip(cols["start_ms"], cols["end_ms"], cols["label"])):
        line = i + 2
        try:
            start, end = float(a), float(b)
        except ValueError:
            raise ArtifactError(path, f"line {line}: start_ms/end_ms must be numbers, got {a!r}, {b!r}") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ArtifactError(path, f"line {line}: start_ms and end_ms must be finite numbers, got {a!r}, {b!r}")
        if end <= start:
            raise ArtifactError(path, f"line {line}: end_ms {end} is not after start_ms {start}")
        if end <= 0:
            raise ArtifactError(path, f"line {line}: interval [{start}, {end}) ms lies wholly before video time 0, "
                                      "so it would never label a frame")
        try:
            name = canonical_class_name(lab, classes) if lab.strip() else ""
        except ValueError:
            raise ArtifactError(path, f"line {line}: unknown label {lab!r}; expected one of {list(classes)}") from None
        out.append(LabelInterval(start, end, name))
    out.sort(key=lambda r: r.start_ms)
    for prev, cur in zip(out, out[1:]):
        if cur.start_ms < prev.end_ms:
            raise ArtifactError(path, f"intervals overlap: {prev} and {cur}")
    return out


def write_label_intervals(path: str | Path, intervals: Sequence[LabelInterval]) -> Path:
    """Write a ``start_ms,end_ms,label`` file atomically, intervals sorted by start."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(("start_ms", "end_ms", "label"))
    for r in sorted(intervals, key=lambda r: r.start_ms):
        writer.writerow([_fmt(v) for v in (round(r.start_ms, 3), round(r.end_ms, 3), r.label)])
    return atomic_write_text(path, buf.getvalue())


def label_at(intervals: Sequence[LabelInterval], t_ms: float) -> str:
    """The label whose [start_ms, end_ms) holds ``t_ms``, else the empty label."""
    for r in intervals:
        if r.start_ms <= t_ms < r.end_ms:
            return r.label
        if r.start_ms > t_ms:
            break
    return ""
