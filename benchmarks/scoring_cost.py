"""Cost of transition-fair scoring: the live panel's update, and fer-score on a long per_frame.csv.

Usage: python benchmarks/scoring_cost.py [--minutes 5,60,120] [--rows 232740] [--updates 30] [--no-file]

1. Live update: a synthetic 30 FPS session (label runs of 0.3-8 s, some unlabelled, predictions
   that follow the label late, flicker and go unstable) is fed to app.live_stats.LiveScore, the
   incremental scorer the window uses. At each mark (minutes of session) it times one update: adding
   the latest second of rows (30) and computing the current result, median and max over
   ``--updates`` consecutive seconds. For comparison it times the former full re-score
   (``score_session`` over every row so far) at the same marks. The two results are checked equal.
2. fer-score: writes a ``--rows`` per_frame.csv with the app's full column set, then scores it in a
   fresh subprocess (wall time and the child's peak RSS, VmHWM), once with fer-score's
   streaming ``score_file`` and once the former way (the whole CSV read into columns, then
   ``score_session``), and checks both give the same numbers.

Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.live_stats import LiveScore  # noqa: E402
from fer_models.classes import FER7, UNSTABLE  # noqa: E402
from fer_models.scoring import score_session  # noqa: E402
from fer_models.session_log import STAGES, per_frame_app_columns, per_frame_base_columns  # noqa: E402

FPS = 30.0


def synthetic_rows(n: int, seed: int = 0):
    """(time_sec, pred_label, manual_label) of a 30 FPS session, as the app logs them."""
    rng = random.Random(seed)
    manual: list[str] = []
    while len(manual) < n:
        label = "" if rng.random() < 0.3 else rng.choice(FER7)
        manual += [label] * int(rng.uniform(0.3, 8.0) * FPS)
    lag = int(0.3 * FPS)
    for i in range(n):
        t = round(i / FPS + rng.uniform(-0.002, 0.002), 6) if i else 0.0
        r = rng.random()
        if r < 0.06:
            pred = UNSTABLE
        elif r < 0.09:
            pred = rng.choice(FER7)
        else:
            pred = manual[max(0, i - lag)] or rng.choice(("Neutral", UNSTABLE))
        yield max(t, 0.0), pred, manual[i]


def _monotonic(rows):
    last = 0.0
    for t, p, m in rows:
        last = max(last, t)
        yield last, p, m


def live_update_cost(minutes: list[float], updates: int) -> tuple[dict, dict]:
    marks = sorted(minutes)
    total = int(marks[-1] * 60 * FPS) + (updates + 1) * int(FPS)
    times, preds, manuals = (list(c) for c in zip(*_monotonic(synthetic_rows(total))))  # as the recorder keeps them
    live = LiveScore()
    per_sec = int(FPS)
    update, rescore = {}, {}
    k = 0
    for mark in marks:
        target = int(mark * 60 * FPS)
        while k < target:
            live.add(times[k], preds[k], manuals[k])
            k += 1
        wall, cpu = [], []
        for _ in range(updates):
            w0, c0 = time.perf_counter(), time.process_time()
            for j in range(k, k + per_sec):
                live.add(times[j], preds[j], manuals[j])
            result = live.result()
            wall.append((time.perf_counter() - w0) * 1000.0)
            cpu.append((time.process_time() - c0) * 1000.0)
            k += per_sec
        full = []
        for _ in range(3 if mark <= 30 else 1):
            start = time.perf_counter()
            reference = score_session(times[:k], preds[:k], manuals[:k])
            full.append((time.perf_counter() - start) * 1000.0)
        if reference != result:
            raise SystemExit(f"incremental and full scores differ at {mark} min:\n{result}\n{reference}")
        update[f"{mark:g}"] = {"rows": k, "median_ms": round(statistics.median(wall), 3),
                               "max_ms": round(max(wall), 3), "cpu_max_ms": round(max(cpu), 3)}
        rescore[f"{mark:g}"] = round(min(full), 1)
    return update, rescore


def write_per_frame(path: Path, n: int) -> None:
    cols = per_frame_base_columns(FER7) + per_frame_app_columns(FER7)
    rng = random.Random(1)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i, (t, pred, manual) in enumerate(_monotonic(synthetic_rows(n))):
            probs = [round(rng.random() / 7, 6) for _ in FER7]
            face = [round(200 + rng.random() * 40, 6), round(120 + rng.random() * 40, 6), 180.0, 180.0,
                    round(0.9 + rng.random() * 0.1, 6)]
            ms = [round(rng.random() * 3, 6) for _ in STAGES]
            w.writerow([i, t, manual, pred, *probs, *face, *probs, *ms, "mnv3-48-demo"])


CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
mode, path = sys.argv[1], Path(sys.argv[2])
start = time.perf_counter()
if mode == "stream":
    from fer_models.scoring_cli import score_file
    result = score_file(path)
else:  # the former fer-score: read every column of the CSV, then score the three lists
    from fer_models.scoring import score_session
    from fer_models.session_log import SCORE_COLUMNS, read_csv_table
    cols = read_csv_table(path, SCORE_COLUMNS)
    result = score_session([float(v) for v in cols["time_sec"]], cols["pred_label"], cols["manual_label"])
seconds = time.perf_counter() - start
try:  # this process's own high-water mark (ru_maxrss can carry the parent's size over fork + exec)
    peak_kb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
except (OSError, IndexError, ValueError):
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": seconds, "peak_rss_mb": peak_kb / 1024, "result": result}}))
"""


def fer_score_cost(path: Path, mode: str) -> dict:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO)), mode, str(path)],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    r["process_seconds"] = time.perf_counter() - start  # with interpreter start and imports
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="5,60,120", help="session lengths to measure at (5,60,120)")
    ap.add_argument("--updates", type=int, default=30, help="timed one-second updates per mark (30)")
    ap.add_argument("--rows", type=int, default=232740, help="rows of the generated per_frame.csv (232740)")
    ap.add_argument("--no-file", action="store_true", help="skip the fer-score part")
    args = ap.parse_args()
    minutes = [float(m) for m in args.minutes.split(",")]

    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    update, rescore = live_update_cost(minutes, args.updates)
    print(f"live update = add the latest second ({int(FPS)} rows) + current result; "
          f"median / max of {args.updates} updates")
    print(f"{'session':>9} {'rows':>8} {'update median':>14} {'max':>8} {'max CPU':>8} {'old full re-score':>18}")
    for mark in minutes:
        key = f"{mark:g}"
        u = update[key]
        print(f"{mark:>6g} min {u['rows']:>8} {u['median_ms']:>11.3f} ms {u['max_ms']:>5.2f} ms "
              f"{u['cpu_max_ms']:>5.2f} ms {rescore[key]:>15.1f} ms")
    medians = [update[f"{m:g}"]["median_ms"] for m in minutes]
    report = {"update_ms": update, "old_rescore_ms": rescore,
              "update_under_5ms": max(u["max_ms"] for u in update.values()) < 5.0,
              "update_flat": max(medians) < 2 * min(medians) + 0.2}

    if not args.no_file:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "per_frame.csv"
            start = time.perf_counter()
            write_per_frame(path, args.rows)
            size_mb = path.stat().st_size / 2**20
            print(f"fer-score on a generated per_frame.csv: {args.rows} rows, {size_mb:.0f} MB "
                  f"(written in {time.perf_counter() - start:.1f} s)")
            new = fer_score_cost(path, "stream")
            old = fer_score_cost(path, "old")
        if new["result"] != old["result"]:
            raise SystemExit(f"streamed and former fer-score differ:\n{new['result']}\n{old['result']}")
        print(f"{'':>10} {'scoring s':>9} {'process s':>9} {'peak RSS':>9}")
        for name, r in (("streamed", new), ("former", old)):
            print(f"{name:>10} {r['seconds']:>9.2f} {r['process_seconds']:>9.2f} {r['peak_rss_mb']:>6.0f} MB")
        report["fer_score"] = {"rows": args.rows, "file_mb": round(size_mb, 1),
                               "seconds": round(new["seconds"], 2),
                               "process_seconds": round(new["process_seconds"], 2),
                               "peak_rss_mb": round(new["peak_rss_mb"], 1),
                               "former_seconds": round(old["seconds"], 2),
                               "former_process_seconds": round(old["process_seconds"], 2),
                               "former_peak_rss_mb": round(old["peak_rss_mb"], 1)}
        report["fer_score_under_150mb"] = new["peak_rss_mb"] < 150
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
