"""``fer-score``: transition-fair scoring of one per_frame.csv from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from fer_models.classes import read_json
from fer_models.errors import ArtifactError
from fer_models.scoring import ScoringInputError, append_demo_summary, score_session
from fer_models.session_log import SCORE_COLUMNS, read_csv_table


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fer-score", description=__doc__)
    ap.add_argument("per_frame", type=Path, help="per_frame.csv of a session (this app's or the earlier scripts')")
    ap.add_argument("--min-hold-ms", type=float, default=600.0, help="shortest scored label segment (600)")
    ap.add_argument("--exclusion-ms", type=float, default=250.0, help="frames excluded after/before a change (250)")
    ap.add_argument("--lock-ms", type=float, default=500.0, help="stable prediction needed to count as locked (500)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--append-summary", type=Path, metavar="CSV", help="append a row to demo_results_summary.csv")
    return ap


def score_file(path: Path, min_hold_ms: float = 600, exclusion_ms: float = 250, lock_ms: float = 500) -> dict:
    """Score a per-frame log; errors name the file and the CSV line."""
    cols = read_csv_table(path, SCORE_COLUMNS)
    try:
        times = [float(v) for v in cols["time_sec"]]
    except ValueError:
        bad = next(i for i, v in enumerate(cols["time_sec"]) if not _is_float(v))
        raise ArtifactError(path, f"line {bad + 2}: time_sec {cols['time_sec'][bad]!r} is not a number") from None
    try:
        return score_session(times, cols["pred_label"], cols["manual_label"], min_hold_ms, exclusion_ms, lock_ms)
    except ScoringInputError as exc:
        line = f"line {exc.row + 2}: " if exc.row is not None else ""
        msg = str(exc).split(": ", 1)[1] if exc.row is not None and ": " in str(exc) else str(exc)
        raise ArtifactError(path, f"{line}{msg}") from None


def _is_float(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


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
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            shown = "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else value)
            print(f"{key:>24}: {shown}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
