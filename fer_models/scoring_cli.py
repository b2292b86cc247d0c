"""``fer-score``: transition-fair scoring of one per_frame.csv from the command line.

Also: ``--lag-ms L`` scores with the manual labels shifted for an annotator reaction lag,
``--estimate-lag`` scans lags for the best fit (``--plot PNG`` draws the curve), ``--agree-with
B.csv`` scores only where a second rater agrees with the log's manual labels, and ``--agreement
A.csv B.csv`` compares two raters' label tracks (DESIGN.md §5).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from fer_models.files import read_json
from fer_models.errors import ArtifactError
from fer_models.scoring import (DEFAULT_SCORING, ScoreAccumulator, ScoringInputError, agreed_labels, apply_lag,
                                append_demo_summary, score_lags)
from fer_models.session_log import SCORE_COLUMNS, LabelInterval, checked_header, read_label_intervals


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fer-score", description=__doc__)
    ap.add_argument("per_frame", type=Path, nargs="?",
                    help="per_frame.csv of a session (this app's or the earlier scripts'); not with --agreement")
    d = DEFAULT_SCORING
    ap.add_argument("--min-hold-ms", type=float, default=d.min_hold_ms,
                    help=f"shortest scored label segment ({d.min_hold_ms:g})")
    ap.add_argument("--exclusion-ms", type=float, default=d.exclusion_ms,
                    help=f"frames excluded after/before a change ({d.exclusion_ms:g})")
    ap.add_argument("--lock-ms", type=float, default=d.lock_ms,
                    help=f"stable prediction needed to count as locked ({d.lock_ms:g})")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--append-summary", type=Path, metavar="CSV", help="append a row to demo_results_summary.csv "
                    "(its lag_ms column records --lag-ms; not with --estimate-lag or --agree-with)")
    ap.add_argument("--lag-ms", type=float, default=None, metavar="L",
                    help="annotator reaction lag: score each row against the label held L ms later (default 0)")
    ap.add_argument("--estimate-lag", action="store_true",
                    help="scan lags (--lag-range) and report the one with the best accuracy and the curve")
    ap.add_argument("--lag-range", default="0:1000:50", metavar="START:STOP:STEP",
                    help="lags scanned by --estimate-lag, in ms, STOP included (0:1000:50)")
    ap.add_argument("--plot", type=Path, metavar="PNG",
                    help="with --estimate-lag: draw accuracy, macro-F1, lock rate and time-to-lock against the lag")
    ap.add_argument("--agree-with", type=Path, metavar="B.csv",
                    help="a second rater's start_ms,end_ms,label file of the same video: score only the rows where "
                         "the log's manual label equals B's (the consensus track; see docs/app.md)")
    ap.add_argument("--agreement", nargs=2, type=Path, metavar=("A.csv", "B.csv"),
                    help="two-rater agreement of two start_ms,end_ms,label files (no per_frame.csv then)")
    return ap


MAX_LAGS = 2001


def parse_lag_range(text: str) -> list[float]:
    """``START:STOP:STEP`` (ms, STOP included when reached) as a list of lags; ValueError when malformed."""
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"--lag-range {text!r}: expected START:STOP:STEP, e.g. 0:1000:50")
    try:
        start, stop, step = (float(x) for x in parts)
    except ValueError:
        raise ValueError(f"--lag-range {text!r}: START, STOP and STEP must be numbers") from None
    if not all(math.isfinite(v) for v in (start, stop, step)):
        raise ValueError(f"--lag-range {text!r}: START, STOP and STEP must be finite")
    if step <= 0 or stop < start:
        raise ValueError(f"--lag-range {text!r}: needs STEP > 0 and STOP >= START")
    n = int((stop - start) / step + 1e-9) + 1
    if n > MAX_LAGS:
        raise ValueError(f"--lag-range {text!r}: {n} lags; at most {MAX_LAGS}")
    out = []
    for k in range(n):
        v = round(start + k * step, 6)
        out.append(int(v) if float(v).is_integer() else v)
    return out


def _iter_rows(path: Path):
    """(csv line number, time_sec, pred_label, manual_label) of each data row, streamed; ArtifactError on bad CSV."""
    if not path.is_file():
        raise ArtifactError(path, "file not found")
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
                yield lineno, t, values[ip], values[im]
    except UnicodeDecodeError as exc:
        raise ArtifactError(path, f"not UTF-8 text ({exc})") from exc
    except csv.Error as exc:
        raise ArtifactError(path, f"line {reader.line_num}: not readable as CSV ({exc})") from exc
    except OSError as exc:
        raise ArtifactError(path, f"cannot read ({exc.strerror or exc})") from exc


def _read_checked(path: Path, acc: ScoreAccumulator, keep: bool):
    """Feed every row to ``acc`` (which checks it: errors name the CSV line); with ``keep`` also return the columns."""
    add = acc.add
    cols = ([], [], []) if keep else None
    for lineno, t, p, m in _iter_rows(path):
        try:
            add(t, p, m)
        except ScoringInputError as exc:
            msg = str(exc).split(": ", 1)[1] if ": " in str(exc) else str(exc)
            raise ArtifactError(path, f"line {lineno}: {msg}") from None
        if keep:
            cols[0].append(t)
            cols[1].append(p)
            cols[2].append(m)
    return cols


def score_file(path: Path, min_hold_ms: float = DEFAULT_SCORING.min_hold_ms,
               exclusion_ms: float = DEFAULT_SCORING.exclusion_ms, lock_ms: float = DEFAULT_SCORING.lock_ms,
               lag_ms: float = 0.0, agree_with: Sequence[LabelInterval] | None = None) -> dict:
    """Score a per-frame log; errors name the file and the CSV line.

    With ``lag_ms == 0`` (the default) and no ``agree_with`` the CSV is streamed row by row through a
    ScoreAccumulator, reading only time_sec, pred_label and manual_label, so memory does not grow with
    the log (the result equals ``score_session`` on the same columns). With a lag the three columns
    are kept in memory and scored with their manual labels shifted by ``apply_lag`` (the same keys).
    With ``agree_with`` (a second rater's intervals) the manual labels become ``agreed_labels`` (after
    the lag, if any) and the result gains ``n_labelled_rows`` and ``n_agreeing_rows``.
    """
    path = Path(path)
    acc = ScoreAccumulator(min_hold_ms, exclusion_ms, lock_ms)
    if not lag_ms and agree_with is None:
        _read_checked(path, acc, keep=False)
        return acc.result()
    t, p, m = _read_checked(path, acc, keep=True)
    if agree_with is None:
        return score_lags(t, p, m, [lag_ms], min_hold_ms, exclusion_ms, lock_ms)["scores"][0]
    shifted = apply_lag(t, m, lag_ms)
    agreed = agreed_labels(t, shifted, agree_with, lag_ms)
    result = score_lags(t, p, agreed, [0], min_hold_ms, exclusion_ms, lock_ms)["scores"][0]
    result["n_labelled_rows"] = sum(1 for x in shifted if str(x).strip())
    result["n_agreeing_rows"] = sum(1 for x in agreed if str(x).strip())
    return result


def estimate_lag_file(path: Path, lags_ms, min_hold_ms: float = DEFAULT_SCORING.min_hold_ms,
                      exclusion_ms: float = DEFAULT_SCORING.exclusion_ms,
                      lock_ms: float = DEFAULT_SCORING.lock_ms) -> dict:
    """Read the log once and score it at every lag: ``{"best_lag_ms", "best", "curve"}``, ``best`` the
    full score at the best lag (with its ``lag_ms``; None when no lag scores anything)."""
    path = Path(path)
    acc = ScoreAccumulator(min_hold_ms, exclusion_ms, lock_ms)
    t, p, m = _read_checked(path, acc, keep=True)
    scan = score_lags(t, p, m, lags_ms, min_hold_ms, exclusion_ms, lock_ms)
    best = None
    if scan["best_lag_ms"] is not None:
        i = [c["lag_ms"] for c in scan["curve"]].index(scan["best_lag_ms"])
        best = {"lag_ms": scan["best_lag_ms"], **scan["scores"][i]}
    return {"best_lag_ms": scan["best_lag_ms"], "best": best, "curve": scan["curve"],
            "effect": lag_effect(scan["curve"], scan["best_lag_ms"])}


EFFECT_METRICS = ("accuracy", "macro_f1", "time_to_lock_median_ms", "lock_rate")


def lag_effect(curve: Sequence[dict], best_lag_ms) -> dict:
    """How each metric of the curve moves with the lag: its value at the reference lag (0 when scanned,
    else the first lag), at the best lag and the change between them, and its lowest and highest
    values with their lags (ties: the first lag). Null where the curve has no value."""
    lags = [c["lag_ms"] for c in curve]
    ref = 0 if 0 in lags else (lags[0] if lags else None)
    out: dict = {"reference_lag_ms": ref, "best_lag_ms": best_lag_ms}
    for key in EFFECT_METRICS:
        vals = [(c[key], c["lag_ms"]) for c in curve if c[key] is not None]
        at_ref = next((c[key] for c in curve if c["lag_ms"] == ref), None)
        at_best = next((c[key] for c in curve if c["lag_ms"] == best_lag_ms), None)
        lo = min(vals, key=lambda v: v[0]) if vals else None
        hi = max(vals, key=lambda v: v[0]) if vals else None
        out[key] = {"at_reference": at_ref, "at_best": at_best,
                    "change": (at_best - at_ref) if at_best is not None and at_ref is not None else None,
                    "min": None if lo is None else {"value": lo[0], "lag_ms": lo[1]},
                    "max": None if hi is None else {"value": hi[0], "lag_ms": hi[1]}}
    return out


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
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.agreement is not None:
        if args.per_frame is not None:
            return _fail("give either a per_frame.csv or --agreement A.csv B.csv, not both")
        return _main_agreement(args)
    if args.per_frame is None:
        return _fail("a per_frame.csv is required (or --agreement A.csv B.csv)")
    if args.lag_ms is not None and not math.isfinite(args.lag_ms):
        return _fail("--lag-ms must be a finite number")
    if args.estimate_lag and args.lag_ms is not None:
        return _fail("--estimate-lag scans --lag-range; do not give --lag-ms with it")
    if args.plot is not None and not args.estimate_lag:
        return _fail("--plot draws the --estimate-lag curve; give --estimate-lag with it")
    if args.append_summary is not None and (args.estimate_lag or args.agree_with is not None):
        return _fail("--append-summary records one plain score (demo_results_summary.csv has a lag_ms column but "
                     "none for a lag scan or a second rater); leave out --estimate-lag / --agree-with to append")
    if args.agree_with is not None and args.estimate_lag:
        return _fail("--agree-with scores one lag; give --lag-ms instead of --estimate-lag")
    if args.estimate_lag:
        try:
            lags = parse_lag_range(args.lag_range)
        except ValueError as exc:
            return _fail(str(exc))
        return _main_estimate(args, lags)
    if args.append_summary is not None and args.append_summary.is_dir():
        return _fail(f"--append-summary {args.append_summary}: is a directory; give the CSV file to "
                     f"append to, e.g. {args.append_summary / 'demo_results_summary.csv'}")
    try:
        other = read_label_intervals(args.agree_with) if args.agree_with is not None else None
        result = score_file(args.per_frame, args.min_hold_ms, args.exclusion_ms, args.lock_ms,
                            lag_ms=args.lag_ms or 0.0, agree_with=other)
    except ArtifactError as exc:
        return _fail(str(exc))
    if args.append_summary:
        row = {"scored_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "session": args.per_frame.parent.name, "per_frame_csv": str(args.per_frame),
               "min_hold_ms": args.min_hold_ms, "exclusion_ms": args.exclusion_ms, "lock_ms": args.lock_ms,
               **session_settings(args.per_frame), **result, "lag_ms": args.lag_ms or 0.0}
        try:
            append_demo_summary(args.append_summary, row)
        except ArtifactError as exc:
            return _fail(str(exc))
        except OSError as exc:
            return _fail(f"{args.append_summary}: cannot append the summary row "
                         f"({exc.strerror or exc})")
    if args.agree_with is not None:
        result = {"agree_with": str(args.agree_with), **result}
    if args.lag_ms is not None:  # only when asked for, so the plain output keeps its keys
        result = {"lag_ms": _num(args.lag_ms), **result}
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0


def _num(v: float):
    return int(v) if float(v).is_integer() else v


def _shown(value):
    return "n/a" if value is None else (f"{value:.4f}" if isinstance(value, float) else value)


def _print_table(result: dict) -> None:
    for key, value in result.items():
        print(f"{key:>24}: {_shown(value)}")


def _fail(message: str) -> int:
    """One line on stderr and exit code 2: how every refusal of fer-score ends."""
    print(f"fer-score: error: {message}", file=sys.stderr)
    return 2


def _main_estimate(args, lags) -> int:
    try:
        out = estimate_lag_file(args.per_frame, lags, args.min_hold_ms, args.exclusion_ms, args.lock_ms)
        if args.plot is not None:
            from fer_models.lag_plot import plot_lag_curve

            out["plot"] = str(plot_lag_curve(out["curve"], out["best_lag_ms"], args.plot,
                                             title=f"annotator lag scan: {args.per_frame}"))
    except ArtifactError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{'best_lag_ms':>24}: {_shown(out['best_lag_ms'])}")
    print(f"{'lag_ms':>8} {'accuracy':>9} {'macro_f1':>9} {'lock_med':>9} {'lock_rate':>9}")
    for c in out["curve"]:
        print(f"{c['lag_ms']:>8} {_shown(c['accuracy']):>9} {_shown(c['macro_f1']):>9} "
              f"{_shown(c['time_to_lock_median_ms']):>9} {_shown(c['lock_rate']):>9}")
    eff = out["effect"]
    for key in EFFECT_METRICS:
        e = eff[key]
        if e["min"] is None:
            continue
        change = "" if e["change"] is None else f" ({e['change']:+.4f})"
        print(f"{key:>24}: {_shown(e['at_reference'])} at {eff['reference_lag_ms']} ms -> {_shown(e['at_best'])} "
              f"at the best lag{change}; range {_shown(e['min']['value'])} ({e['min']['lag_ms']} ms) .. "
              f"{_shown(e['max']['value'])} ({e['max']['lag_ms']} ms)")
    if "plot" in out:
        print(f"{'plot':>24}: {out['plot']}")
    return 0


def _main_agreement(args) -> int:
    from fer_models.agreement import agreement_files

    if args.estimate_lag or args.lag_ms is not None or args.append_summary is not None \
            or args.agree_with is not None or args.plot is not None:
        return _fail("--agreement takes no --lag-ms, --estimate-lag, --plot, --agree-with or "
                     "--append-summary")
    a, b = args.agreement
    try:
        out = agreement_files(a, b)
    except ArtifactError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(out))
        return 0
    for key in ("a", "b", "start_ms", "end_ms", "n_samples", "observed_agreement", "kappa",
                "n_labelled_samples", "kappa_labelled"):
        print(f"{key:>24}: {_shown(out[key])}")
    for c, v in out["per_class"].items():
        print(f"{'agreement ' + c:>24}: {v['agreement']:.4f} ({v['n_both']}/{v['n_either']} samples)")
    print(f"{'disagreements':>24}: {len(out['disagreements'])}")
    for d in out["disagreements"]:
        print(f"{'':>24}  {d['start_ms']:g}-{d['end_ms']:g} ms: {d['a']} vs {d['b']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
