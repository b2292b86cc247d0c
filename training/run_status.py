"""``fer-train status RUN...``: where each training run stands, read from its files alone.

Planning two cores over many working periods needs the same few figures each time: epochs done of
those planned, the best val accuracy so far, what an epoch costs, and what the rest will cost at that
pace. They come from args.json (epochs planned), history.csv (one row per finished epoch),
partial.pt (how far into the next epoch the last checkpoint inside an epoch got: training/
partial_checkpoint.py) and summary.json (written after the final evaluation). The pace is the *median* epoch time: an epoch that held a SIGSTOP pause or shared
the cores with a third job is one outlier among many, not the rate.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

from fer_models.files import read_json_object
from training.gate_items import finite_float, read_csv_rows

COLUMNS = ("run", "state", "epochs", "last val", "best val (epoch)", "median min/epoch", "hours left")


def partial_fraction(run: Path, steps_per_epoch: Any) -> float | None:
    """How much of the epoch in progress partial.pt holds (0-1), or None without one. The file is
    memory-mapped, so only its small ``partial`` entry is read, not its weights."""
    path = run / "partial.pt"
    if not path.is_file() or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        return None
    import torch

    try:
        step = int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["partial"]["next_step"])
    except Exception:  # a file being replaced or cut short: the status simply leaves it out
        return None
    return min(max(step / steps_per_epoch, 0.0), 1.0)


def run_status(run_dir: str | Path) -> dict[str, Any]:
    """The figures of one run folder (teacher, student, adapted model): see the module docstring."""
    run = Path(run_dir)
    args = read_json_object(run / "args.json", missing_ok=True)
    history = run / "history.csv"
    rows = read_csv_rows(history)[1] if history.is_file() else []
    planned = args.get("epochs")
    planned = int(planned) if isinstance(planned, (int, float)) else None
    vals = [finite_float(r.get("val_acc")) for r in rows]
    secs = [s for s in (finite_float(r.get("seconds")) for r in rows) if s is not None]
    scored = [(v, i) for i, v in enumerate(vals) if v is not None]
    best, best_epoch = max(scored, key=lambda t: (t[0], -t[1])) if scored else (None, None)
    finished = (run / "summary.json").is_file()
    state = "finished" if finished else ("not started" if not rows else "unfinished")
    median_s = statistics.median(secs) if secs else None
    part = None if finished else partial_fraction(run, args.get("steps_per_epoch"))
    left = None
    if not finished and planned is not None and median_s is not None:
        left = max(planned - len(rows) - (part or 0.0), 0) * median_s / 3600.0
    return {"run": run.name, "path": str(run), "state": state, "epochs_done": len(rows), "epochs_planned": planned,
            "last_val_acc": vals[-1] if vals else None, "best_val_acc": best,
            "best_epoch": None if best_epoch is None else best_epoch + 1,  # 1-based, as the logs count
            "median_epoch_s": median_s, "hours_left": left, "partial_epoch": part}


def status_table(runs: Sequence[dict[str, Any]]) -> str:
    """A markdown table of ``run_status`` rows (dashes where a figure does not exist yet)."""
    def f(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(" --- " for _ in COLUMNS) + "|"]
    for r in runs:
        done = f"{r['epochs_done']}" + (f" (+{r['partial_epoch']:.0%})" if r.get("partial_epoch") else "")
        epochs = f"{done} / {r['epochs_planned'] if r['epochs_planned'] is not None else '?'}"
        best = "-" if r["best_val_acc"] is None else f"{r['best_val_acc']:.4f} ({r['best_epoch']})"
        median = None if r["median_epoch_s"] is None else r["median_epoch_s"] / 60.0
        lines.append("| " + " | ".join([r["run"], r["state"], epochs, f(r["last_val_acc"], ".4f"), best,
                                        f(median, ".1f"), f(r["hours_left"], ".1f")]) + " |")
    return "\n".join(lines) + "\n"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("status", help="epochs done, best val and time left of training runs (from their files)")
    p.add_argument("run_dirs", nargs="+", help="run folders (others, e.g. ensembles, are skipped)")
    p.add_argument("--json", action="store_true", help="one JSON object per run instead of the table")
    p.set_defaults(func=_run_cli)


def _run_cli(args: Any) -> int:
    runs = [run_status(d) for d in args.run_dirs
            if Path(d).is_dir() and ((Path(d) / "args.json").is_file() or (Path(d) / "history.csv").is_file())]
    if args.json:
        for r in runs:
            print(json.dumps(r))
    else:
        print(status_table(runs), end="")
        left = [r["hours_left"] for r in runs if r["hours_left"] is not None]
        if left:
            print(f"\n{len(left)} unfinished runs: {sum(left):.1f} core-hours left at their median pace")
    return 0
