"""``fer-score``: transition-fair scoring of one per_frame.csv from the command line."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from fer_models.files import read_json
from fer_models.errors import ArtifactError
from fer_models.scoring import DEFAULT_SCORING, ScoreAccumulator, ScoringInputError, append_demo_summary
from fer_models.session_log import SCORE_COLUMNS, checked_header


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fer-score", description=__doc__)
    ap.add_argument("per_frame", type=Path, help="per_frame.csv of a session (this app's or the earlier scripts')")
    d = DEFAULT_SCORING
    ap.add_argument("--min-hold-ms", type=float, default=d.min_hold_ms,
                    help=f"shortest scored label segment ({d.min_hold_ms:g})")
    ap.add_argument("--exclusion-ms", type=float, default=d.exclusion_ms,
                    help=f"frames excluded after/before a change ({d.exclusion_ms:g})")
    ap.add_argument("--lock-ms", type=float, default=d.lock_ms,
                    help=f"stable prediction needed to count as locked ({d.lock_ms:g})")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--append-summary", type=Path, metavar="CSV", help="append a row to demo_results_summary.csv")
    return ap


def score_file(path: Path, min_hold_ms: float = DEFAULT_SCORING.min_hold_ms,
               exclusion_ms: float = DEFAULT_SCORING.exclusion_ms, lock_ms: float = DEFAULT_SCORING.lock_ms) -> dict:
    """Score a per-frame log; errors name the file and the CSV line.

    The CSV is streamed row by row through a ScoreAccumulator, reading only time_sec,
    pred_label and manual_label, so memory does not grow with the log (the result equals
    ``score_session`` on the same columns).
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "file not found")
    acc = ScoreAccumulator(min_hold_ms, exclusion_ms, lock_ms)
    add = acc.add
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = checked_header(reader, path, SCORE_COLUMNS)
            width = len(header)
            it, ip, im = (header.index(c) for c in SCORE_COLUMNS)
            for lineno, values in enumerate(reader, start=2):
                if not values:
                    continue
                if len(values) != width:
                    raise ArtifactError(path, f"line {lineno}: expected {width} fields, found {len(values)}")
                try:
                    t = float(values[it])
                except ValueError:
                    raise ArtifactError(path, f"line {lineno}: time_sec {values[it]!r} is not a number") from None
                try:
                    add(t, values[ip], values[im])
                except ScoringInputError as exc:
                    msg = str(exc).split(": ", 1)[1] if ": " in str(exc) else str(exc)
                    raise ArtifactError(path, f"line {lineno}: {msg}") from None
    except UnicodeDecodeError as exc:
        raise ArtifactError(path, f"not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise ArtifactError(path, f"line {reader.line_num}: not readable as CSV ({exc})") from exc
    except OSError as exc:
        raise ArtifactError(path, f"cannot read ({exc.strerror or exc})") from exc
    return acc.result()


def session_settings(per_frame: Path) -> dict:
    """Model id and smoothing parameters from the session's settings.json, when it has one."""
    path = per_frame.parent / "settings.json"
    if not path.is_file():
        return {}
    try:
        data = read_json(path)
    except ArtifactError:
        return {}
    smoothing = data.get("smoothing", {}) if isinstance(data, dict) else {}
    out = {k: smoothing.get(k) for k in ("alpha", "delta", "window", "window_ms", "min_count")}
    out["model_id"] = data.get("model_id", "") if isinstance(data, dict) else ""
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.append_summary is not None and args.append_summary.is_dir():
        print(f"fer-score: error: --append-summary {args.append_summary}: is a directory; give the CSV file to "
              f"append to, e.g. {args.append_summary / 'demo_results_summary.csv'}", file=sys.stderr)
        return 2
    try:
        result = score_file(args.per_frame, args.min_hold_ms, args.exclusion_ms, args.lock_ms)
    except ArtifactError as exc:
        print(f"fer-score: error: {exc}", file=sys.stderr)
        return 2
    if args.append_summary:
        row = {"scored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "session": args.per_frame.parent.name, "per_frame_csv": str(args.per_frame),
               "min_hold_ms": args.min_hold_ms, "exclusion_ms": args.exclusion_ms, "lock_ms": args.lock_ms,
               **session_settings(args.per_frame), **result}
        try:
            append_demo_summary(args.append_summary, row)
        except ArtifactError as exc:
            print(f"fer-score: error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"fer-score: error: {args.append_summary}: cannot append the summary row "
                  f"({exc.strerror or exc})", file=sys.stderr)
            return 2
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            shown = "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else value)
            print(f"{key:>24}: {shown}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
