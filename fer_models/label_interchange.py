"""Label tracks to and from ELAN (.eaf) and BORIS-style tabular events (``fer-labels``).

A *track* is one rater's ``start_ms,end_ms,label`` intervals of one video (fer_models.session_log:
``LabelInterval``, [start, end) in video milliseconds, FER7 labels). Several tracks travel together,
one per rater, named (a tier in ELAN, a subject in BORIS).

**ELAN** (EAF 3.0, the format ELAN 4.x-6.x reads and writes): one ``TIER`` per track (``TIER_ID`` the
rater's name, ``ANNOTATOR`` too) of the time-alignable linguistic type ``fer-label``; each interval is an
``ALIGNABLE_ANNOTATION`` between two ``TIME_SLOT``s of the shared ``TIME_ORDER``; the ``HEADER`` has
``TIME_UNITS="milliseconds"`` and, when the video is given, a ``MEDIA_DESCRIPTOR`` (absolute
``MEDIA_URL``, ``RELATIVE_MEDIA_URL`` from the .eaf, ``MIME_TYPE``), so ELAN opens the video with it.
Reading accepts any EAF 2.x/3.0 file: every tier with alignable annotations becomes a track (reference
tiers, which have no times of their own, are skipped and reported); an annotation whose time slot has
no time value (ELAN leaves those unaligned) is refused.

**BORIS** tabular events (Observations > Export events, TSV or CSV) as BORIS 8 writes them for a
media observation: ``Observation id, Observation date, Description, Observation duration,
Observation type, Source, Time offset (s), Media duration (s), FPS, Subject, Behavior, Behavioral
category, Behavior type, Time, Media file name, Image index, Image file path, Comment``, one row per
event, sorted by time. A label interval is a *state event*: a ``START`` row at its start and a ``STOP``
row at its end (``Behavior type``), ``Subject`` the rater, ``Behavior`` the label, ``Time`` in seconds.
Reading also takes the older layout whose column is ``Status`` instead of ``Behavior type`` and
files with metadata lines above the header; ``POINT`` events (no duration) are skipped and reported.

Both formats store milliseconds (EAF: integer ``TIME_VALUE``; BORIS: seconds with three decimals).
Boundaries are therefore rounded *down* to the millisecond on export. A boundary written by the app
sits at a frame's start time, so rounding it down keeps it after the previous frame's start at any
frame rate below 1000 fps: every frame keeps its label through a round trip. Tracks that are already
in whole milliseconds come back exactly. Labels are matched to FER7 without regard to case; an
unknown label, a malformed file, overlapping intervals on one track or an unpaired START/STOP is an
ArtifactError naming the file and the place.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

from fer_models.classes import FER7, canonical_class_name
from fer_models.errors import ArtifactError
from fer_models.files import atomic_write_text, read_text
from fer_models.session_log import LabelInterval, read_label_intervals, write_label_intervals

Tracks = dict[str, list[LabelInterval]]  # rater name -> intervals, in the order given

XSI = "http://www.w3.org/2001/XMLSchema-instance"
EAF_SCHEMA = "http://www.mpi.nl/tools/elan/EAFv3.0.xsd"
LINGUISTIC_TYPE = "fer-label"
MIME_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mpg": "video/mpeg", ".mpeg": "video/mpeg",
              ".mov": "video/quicktime", ".avi": "video/x-msvideo", ".mkv": "video/x-matroska",
              ".webm": "video/webm", ".wav": "audio/x-wav", ".mp3": "audio/mpeg"}

BORIS_COLUMNS = ("Observation id", "Observation date", "Description", "Observation duration", "Observation type",
                 "Source", "Time offset (s)", "Media duration (s)", "FPS", "Subject", "Behavior",
                 "Behavioral category", "Behavior type", "Time", "Media file name", "Image index",
                 "Image file path", "Comment")
NA = "NA"  # what BORIS writes for a value it does not have


# ----------------------------------------------------------------------------- shared

def ms_floor(value: float) -> int:
    """A boundary in whole milliseconds, rounded down (with 1 ns slack for float noise)."""
    return int(math.floor(float(value) + 1e-6))


def _labelled(intervals: Sequence[LabelInterval]) -> list[LabelInterval]:
    return sorted((r for r in intervals if r.label), key=lambda r: r.start_ms)


def _whole_ms(name: str, intervals: Sequence[LabelInterval], path: Path) -> list[tuple[int, int, str]]:
    """The track's intervals in whole milliseconds; refuses one that would vanish (shorter than 1 ms)."""
    out = []
    for r in _labelled(intervals):
        a, b = ms_floor(r.start_ms), ms_floor(r.end_ms)
        if a < 0:
            raise ArtifactError(path, f"track {name!r}: interval {r.start_ms:g}-{r.end_ms:g} ms starts before 0, "
                                      "which ELAN and BORIS cannot store")
        if b <= a:
            raise ArtifactError(path, f"track {name!r}: interval {r.start_ms:g}-{r.end_ms:g} ms ({r.label}) is "
                                      "shorter than the 1 ms these formats store")
        out.append((a, b, r.label))
    return out


def _check_names(tracks: Mapping[str, Sequence[LabelInterval]], path: Path) -> None:
    if not tracks:
        raise ArtifactError(path, "no label track to export")
    for name in tracks:
        if not name or not name.strip():
            raise ArtifactError(path, "a track needs a non-empty name (the rater)")


def _to_track(path: Path, where: str, items: list[tuple[float, float, str, str]],
              classes: Sequence[str]) -> list[LabelInterval]:
    """(start_ms, end_ms, value, place) -> checked intervals: known labels, end after start, no overlap."""
    out = []
    for start, end, value, place in items:
        if not value.strip():
            continue  # an empty annotation labels nothing
        try:
            label = canonical_class_name(value, classes)
        except ValueError:
            raise ArtifactError(path, f"{where}, {place}: unknown label {value!r}; expected one of "
                                      f"{list(classes)} (any case)") from None
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            raise ArtifactError(path, f"{where}, {place}: end {end:g} ms is not after start {start:g} ms")
        out.append((LabelInterval(float(start), float(end), label), place))
    out.sort(key=lambda x: x[0].start_ms)
    for (prev, p_place), (cur, c_place) in zip(out, out[1:]):
        if cur.start_ms < prev.end_ms:
            raise ArtifactError(path, f"{where}: {c_place} ({cur.label} {cur.start_ms:g}-{cur.end_ms:g} ms) overlaps "
                                      f"{p_place} ({prev.label} {prev.start_ms:g}-{prev.end_ms:g} ms); one rater's "
                                      "labels cannot overlap")
    return [r for r, _ in out]


# ----------------------------------------------------------------------------- ELAN

def _media_descriptor(header: ET.Element, media: Path, eaf_path: Path) -> None:
    media = Path(media)
    absolute = media if media.is_absolute() else (Path.cwd() / media)
    try:
        relative = os.path.relpath(absolute, eaf_path.resolve().parent)
    except ValueError:  # another drive on Windows: no relative path
        relative = None
    attrs = {"MEDIA_URL": absolute.resolve().as_uri(), "MIME_TYPE": MIME_TYPES.get(media.suffix.lower(), "video/*")}
    if relative is not None:
        rel = Path(relative).as_posix()
        attrs["RELATIVE_MEDIA_URL"] = rel if rel.startswith(".") else f"./{rel}"
    ET.SubElement(header, "MEDIA_DESCRIPTOR", attrs)


def eaf_text(tracks: Mapping[str, Sequence[LabelInterval]], path: str | Path = "labels.eaf",
             media: str | Path | None = None, author: str = "fer-labels") -> str:
    """The EAF 3.0 document of ``tracks`` (see the module docstring); ``path`` is where it will live."""
    path = Path(path)
    _check_names(tracks, path)
    ET.register_namespace("xsi", XSI)
    date = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
    root = ET.Element("ANNOTATION_DOCUMENT", {"AUTHOR": author, "DATE": date, "FORMAT": "3.0", "VERSION": "3.0",
                                              f"{{{XSI}}}noNamespaceSchemaLocation": EAF_SCHEMA})
    header = ET.SubElement(root, "HEADER", {"MEDIA_FILE": "", "TIME_UNITS": "milliseconds"})
    if media is not None:
        _media_descriptor(header, Path(media), path)
    whole = {name: _whole_ms(name, ivs, path) for name, ivs in tracks.items()}
    times = sorted({v for ivs in whole.values() for a, b, _ in ivs for v in (a, b)})
    slot = {v: f"ts{i + 1}" for i, v in enumerate(times)}
    n_annotations = sum(len(v) for v in whole.values())
    ET.SubElement(header, "PROPERTY", {"NAME": "lastUsedAnnotationId"}).text = str(n_annotations)
    order = ET.SubElement(root, "TIME_ORDER")
    for v in times:
        ET.SubElement(order, "TIME_SLOT", {"TIME_SLOT_ID": slot[v], "TIME_VALUE": str(v)})
    k = 0
    for name, ivs in whole.items():
        tier = ET.SubElement(root, "TIER", {"ANNOTATOR": name, "LINGUISTIC_TYPE_REF": LINGUISTIC_TYPE,
                                            "TIER_ID": name})
        for a, b, label in ivs:
            k += 1
            ann = ET.SubElement(ET.SubElement(tier, "ANNOTATION"), "ALIGNABLE_ANNOTATION",
                                {"ANNOTATION_ID": f"a{k}", "TIME_SLOT_REF1": slot[a], "TIME_SLOT_REF2": slot[b]})
            ET.SubElement(ann, "ANNOTATION_VALUE").text = label
    ET.SubElement(root, "LINGUISTIC_TYPE", {"GRAPHIC_REFERENCES": "false", "LINGUISTIC_TYPE_ID": LINGUISTIC_TYPE,
                                            "TIME_ALIGNABLE": "true"})
    for stereotype, text in (
            ("Time_Subdivision", "Time subdivision of parent annotation's time interval, no time gaps allowed "
                                 "within this interval"),
            ("Symbolic_Subdivision", "Symbolic subdivision of a parent annotation. Annotations refering to the "
                                     "same parent are ordered"),
            ("Symbolic_Association", "1-1 association with a parent annotation"),
            ("Included_In", "Time alignable annotations within the parent annotation's time interval, gaps are "
                            "allowed")):
        ET.SubElement(root, "CONSTRAINT", {"DESCRIPTION": text, "STEREOTYPE": stereotype})
    ET.indent(root, space="    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_eaf(path: str | Path, tracks: Mapping[str, Sequence[LabelInterval]], media: str | Path | None = None,
              author: str = "fer-labels") -> Path:
    """Write ``tracks`` as an ELAN .eaf (atomically); returns the path."""
    path = Path(path)
    return atomic_write_text(path, eaf_text(tracks, path, media, author))


def read_eaf(path: str | Path, classes: Sequence[str] = FER7, notes: list[str] | None = None) -> Tracks:
    """Every alignable tier of an .eaf as a track (tier id -> intervals); ``notes`` gets what was skipped."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "file not found")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ArtifactError(path, f"not a readable XML file ({exc})") from None
    except OSError as exc:
        raise ArtifactError(path, f"cannot read ({exc.strerror or exc})") from None
    if root.tag != "ANNOTATION_DOCUMENT":
        raise ArtifactError(path, f"not an ELAN .eaf: the root element is <{root.tag}>, not <ANNOTATION_DOCUMENT>")
    header = root.find("HEADER")
    units = header.get("TIME_UNITS", "milliseconds") if header is not None else "milliseconds"
    if units != "milliseconds":
        raise ArtifactError(path, f"TIME_UNITS {units!r}: only milliseconds (ELAN's only unit for video) are read")
    slots: dict[str, float | None] = {}
    for ts in root.iter("TIME_SLOT"):
        sid = ts.get("TIME_SLOT_ID")
        if not sid:
            raise ArtifactError(path, "a TIME_SLOT has no TIME_SLOT_ID")
        value = ts.get("TIME_VALUE")
        try:
            slots[sid] = float(value) if value is not None else None
        except ValueError:
            raise ArtifactError(path, f"TIME_SLOT {sid}: TIME_VALUE {value!r} is not a number") from None
    tracks: Tracks = {}
    for tier in root.findall("TIER"):
        tid = tier.get("TIER_ID")
        if not tid:
            raise ArtifactError(path, "a TIER has no TIER_ID")
        if tid in tracks:
            raise ArtifactError(path, f"two tiers are named {tid!r}")
        aligned = tier.findall("ANNOTATION/ALIGNABLE_ANNOTATION")
        refs = tier.findall("ANNOTATION/REF_ANNOTATION")
        if refs and not aligned:
            if notes is not None:
                notes.append(f"tier {tid!r}: {len(refs)} reference annotations without times of their own, skipped")
            continue
        items = []
        for ann in aligned:
            aid = ann.get("ANNOTATION_ID", "?")
            place = f"annotation {aid}"
            times = []
            for ref in ("TIME_SLOT_REF1", "TIME_SLOT_REF2"):
                sid = ann.get(ref)
                if sid not in slots:
                    raise ArtifactError(path, f"tier {tid!r}, {place}: {ref} {sid!r} names no TIME_SLOT")
                if slots[sid] is None:
                    raise ArtifactError(path, f"tier {tid!r}, {place}: time slot {sid} has no TIME_VALUE (an "
                                              "unaligned boundary); align it in ELAN first")
                times.append(slots[sid])
            value = ann.findtext("ANNOTATION_VALUE") or ""
            items.append((times[0], times[1], value, place))
        tracks[tid] = _to_track(path, f"tier {tid!r}", items, classes)
    if not tracks:
        raise ArtifactError(path, "holds no tier with time-aligned annotations")
    return tracks


# ----------------------------------------------------------------------------- BORIS

def _seconds(ms: int) -> str:
    return f"{ms / 1000.0:.3f}"


def boris_text(tracks: Mapping[str, Sequence[LabelInterval]], path: str | Path = "events.tsv",
               media: str | Path | None = None, fps: float | None = None, duration_s: float | None = None,
               observation_id: str | None = None, delimiter: str | None = None) -> str:
    """BORIS tabular events (see the module docstring): TSV, or CSV when ``path`` ends in .csv."""
    path = Path(path)
    _check_names(tracks, path)
    delimiter = delimiter or ("," if path.suffix.lower() == ".csv" else "\t")
    whole = {name: _whole_ms(name, ivs, path) for name, ivs in tracks.items()}
    events = []  # (time ms, order, subject, label, status): a STOP sorts before a START at the same time
    for name, ivs in whole.items():
        for a, b, label in ivs:
            events.append((a, 1, name, label, "START"))
            events.append((b, 0, name, label, "STOP"))
    events.sort(key=lambda e: (e[0], e[1]))
    end_ms = max((e[0] for e in events), default=0)
    media_name = str(media) if media is not None else NA
    obs_id = observation_id or (Path(media).stem if media is not None else path.stem)
    date = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    w.writerow(BORIS_COLUMNS)
    for ms, _, subject, label, status in events:
        frame = str(int(math.floor(ms / 1000.0 * fps + 1e-6))) if fps else NA
        w.writerow([obs_id, date, "exported by fer-labels", _seconds(end_ms), "Media file(s)",
                    f"player #1:{media_name}" if media is not None else NA, "0.000",
                    f"{duration_s:.3f}" if duration_s else NA, f"{fps:.3f}" if fps else NA, subject, label, "",
                    status, _seconds(ms), media_name, frame, NA, ""])
    return buf.getvalue()


def write_boris(path: str | Path, tracks: Mapping[str, Sequence[LabelInterval]], media: str | Path | None = None,
                fps: float | None = None, duration_s: float | None = None,
                observation_id: str | None = None) -> Path:
    """Write ``tracks`` as BORIS tabular events (TSV; CSV for a .csv path), atomically; returns the path."""
    path = Path(path)
    return atomic_write_text(path, boris_text(tracks, path, media, fps, duration_s, observation_id))


def _find_header(rows: list[list[str]], path: Path) -> tuple[int, dict[str, int]]:
    """The header row of the events table (it may follow metadata lines) and its column positions."""
    for i, row in enumerate(rows):
        cols = {c.strip().lower(): j for j, c in enumerate(row)}
        if "behavior" in cols and "time" in cols and ("behavior type" in cols or "status" in cols):
            return i, cols
    raise ArtifactError(path, "no BORIS events header found: expected a row with the columns Behavior, Time and "
                              "Behavior type (or Status), as BORIS's Export events writes")


def read_boris(path: str | Path, classes: Sequence[str] = FER7, notes: list[str] | None = None) -> Tracks:
    """BORIS tabular events (TSV or CSV) as tracks, one per subject (START/STOP pairs per subject and
    behavior); ``notes`` gets what was skipped (POINT events)."""
    path = Path(path)
    text = read_text(path)
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = "\t" if "\t" in first or path.suffix.lower() in (".tsv", ".txt") else ","
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise ArtifactError(path, f"not readable as {'TSV' if delimiter == chr(9) else 'CSV'} ({exc})") from None
    head, cols = _find_header(rows, path)
    status_col = cols.get("behavior type", cols.get("status"))
    subject_col = cols.get("subject")
    per_subject: dict[str, list[tuple[float, float, str, str]]] = {}
    open_events: dict[tuple[str, str], tuple[float, int]] = {}
    points = 0
    for lineno, row in enumerate(rows[head + 1:], start=head + 2):
        if not row or all(not c.strip() for c in row):
            continue
        need = max(cols["behavior"], cols["time"], status_col, subject_col or 0)
        if len(row) <= need:
            raise ArtifactError(path, f"line {lineno}: {len(row)} fields, the header has {len(rows[head])}")
        status = row[status_col].strip().upper()
        behavior = row[cols["behavior"]].strip()
        subject = row[subject_col].strip() if subject_col is not None else ""
        subject = subject or "No focal subject"  # BORIS's name for events without a subject
        try:
            t_ms = float(row[cols["time"]]) * 1000.0
        except ValueError:
            raise ArtifactError(path, f"line {lineno}: Time {row[cols['time']]!r} is not a number of seconds") from None
        if not math.isfinite(t_ms):
            raise ArtifactError(path, f"line {lineno}: Time {row[cols['time']]!r} is not a finite number")
        per_subject.setdefault(subject, [])
        key = (subject, behavior.lower())
        if status == "POINT":
            points += 1
        elif status == "START":
            if key in open_events:
                raise ArtifactError(path, f"line {lineno}: START of {behavior!r} ({subject}) while the START of line "
                                          f"{open_events[key][1]} is not stopped")
            open_events[key] = (t_ms, lineno)
        elif status == "STOP":
            if key not in open_events:
                raise ArtifactError(path, f"line {lineno}: STOP of {behavior!r} ({subject}) without a START before it")
            start, start_line = open_events.pop(key)
            per_subject[subject].append((start, t_ms, behavior, f"lines {start_line}-{lineno}"))
        else:
            raise ArtifactError(path, f"line {lineno}: event type {row[status_col]!r}; expected START, STOP or POINT")
    if open_events:
        (subject, _), (_, lineno) = next(iter(open_events.items()))
        raise ArtifactError(path, f"line {lineno}: START of a state event ({subject}) that is never stopped")
    if points and notes is not None:
        notes.append(f"{points} POINT events (no duration) skipped: only state events are label intervals")
    tracks = {name: _to_track(path, f"subject {name!r}", items, classes) for name, items in per_subject.items()}
    if not any(tracks.values()):
        raise ArtifactError(path, "holds no state event (START/STOP pair)")
    return tracks


# ----------------------------------------------------------------------------- by file name

def format_of(path: str | Path) -> str:
    """``eaf`` for .eaf, ``boris`` for .tsv / .csv / .txt; ArtifactError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix == ".eaf":
        return "eaf"
    if suffix in (".tsv", ".csv", ".txt"):
        return "boris"
    raise ArtifactError(path, f"unknown label file type {suffix!r}: use .eaf (ELAN) or .tsv / .csv (BORIS events)")


def read_tracks(path: str | Path, classes: Sequence[str] = FER7, notes: list[str] | None = None) -> Tracks:
    return (read_eaf if format_of(path) == "eaf" else read_boris)(path, classes, notes)


def write_tracks(path: str | Path, tracks: Mapping[str, Sequence[LabelInterval]], media: str | Path | None = None,
                 fps: float | None = None, duration_s: float | None = None) -> Path:
    if format_of(path) == "eaf":
        return write_eaf(path, tracks, media)
    return write_boris(path, tracks, media, fps, duration_s)


def safe_file_stem(name: str) -> str:
    """A tier or subject name as a file name (letters, digits, ``-``, ``_``, ``.``)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return stem or "track"


# ----------------------------------------------------------------------------- fer-labels

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fer-labels", description="Label tracks (start_ms,end_ms,label) to and from "
                                 "ELAN .eaf and BORIS tabular events (.tsv / .csv).")
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="start_ms,end_ms,label files -> one .eaf (a tier each) or BORIS events "
                                       "(a subject each)")
    ex.add_argument("out", type=Path, help="the file to write: .eaf, .tsv or .csv")
    ex.add_argument("tracks", type=Path, nargs="+", help="one start_ms,end_ms,label file per rater")
    ex.add_argument("--names", nargs="+", help="rater names, one per track (default: the file names)")
    ex.add_argument("--media", type=Path, help="the video the labels belong to (linked in the .eaf, named in BORIS "
                                               "rows; its frame rate gives BORIS's FPS and Image index)")
    ex.add_argument("--force", action="store_true", help="overwrite an existing output file")
    im = sub.add_parser("import", help=".eaf or BORIS events -> one start_ms,end_ms,label file per tier / subject")
    im.add_argument("source", type=Path, help="an .eaf, or BORIS tabular events (.tsv / .csv)")
    im.add_argument("--out-dir", type=Path, required=True, help="where the label files go (<tier>.csv each)")
    im.add_argument("--tier", action="append", help="only this tier or subject (repeatable)")
    im.add_argument("--force", action="store_true", help="overwrite existing label files")
    return ap


def _video_info(media: Path) -> tuple[float | None, float | None]:
    """fps and duration (s) of a video, or (None, None) when OpenCV cannot tell."""
    import cv2

    cap = cv2.VideoCapture(str(media))
    try:
        if not cap.isOpened():
            return None, None
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        frames = cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0
    finally:
        cap.release()
    if not fps or not math.isfinite(fps) or fps > 1000:
        return None, None
    return float(fps), (float(frames) / fps if frames > 0 else None)


def _export(args) -> dict:
    names = args.names or [p.stem for p in args.tracks]
    if len(names) != len(args.tracks):
        raise ArtifactError(args.out, f"--names gives {len(names)} names for {len(args.tracks)} tracks")
    if len(set(names)) != len(names):
        raise ArtifactError(args.out, f"two tracks share a name ({names}); give --names")
    if args.out.exists() and not args.force:
        raise ArtifactError(args.out, "exists; choose another output file or pass --force")
    format_of(args.out)
    tracks = {name: read_label_intervals(p) for name, p in zip(names, args.tracks)}
    fps = duration = None
    if args.media is not None:
        if not args.media.is_file():
            raise ArtifactError(args.media, "video file not found")
        fps, duration = _video_info(args.media)
    path = write_tracks(args.out, tracks, args.media, fps, duration)
    return {"out": str(path), "format": format_of(path),
            "tracks": {n: len(_labelled(v)) for n, v in tracks.items()}}


def _import(args) -> dict:
    notes: list[str] = []
    tracks = read_tracks(args.source, notes=notes)
    if args.tier:
        missing = [t for t in args.tier if t not in tracks]
        if missing:
            raise ArtifactError(args.source, f"no tier or subject {missing}; it holds {list(tracks)}")
        tracks = {t: tracks[t] for t in args.tier}
    targets = {name: args.out_dir / f"{safe_file_stem(name)}.csv" for name in tracks}
    if len(set(targets.values())) != len(targets):
        raise ArtifactError(args.out_dir, f"tiers {list(tracks)} map to the same file names; use --tier")
    clash = [str(p) for p in targets.values() if p.exists()]
    if clash and not args.force:
        raise ArtifactError(Path(clash[0]), "exists; choose another --out-dir or pass --force")
    written = {name: str(write_label_intervals(targets[name], ivs)) for name, ivs in tracks.items()}
    return {"source": str(args.source), "format": format_of(args.source), "files": written,
            "intervals": {n: len(v) for n, v in tracks.items()}, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = _export(args) if args.command == "export" else _import(args)
    except ArtifactError as exc:
        print(f"fer-labels: error: {exc}", file=sys.stderr)
        return 2
    for note in out.get("notes", []):
        print(f"fer-labels: note: {note}", file=sys.stderr)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
