"""``fer-train gate nl-phase RUN... --baseline PLAIN...``: the gate between the NL / NegL phases.

Issue 14's phases (NL+KD smoke -> NL full run -> + NegL -> NL+NegL+DKD) each start only when the
previous one passed: finite losses, memory flat, and val accuracy not below the plain student's by
more than one standard deviation of its seeds. The smoke phase has its own checks (``nl-negl``,
on the testbed's files); this stage judges *full* student runs from their history.csv, whose
safety-rail columns (``training.loop.safety_columns``) every run since 2026-12-01 writes:

- **finite**: every train_loss, val_loss, grad_norm_mean and grad_norm_max is a finite number (a
  run without the gradient-norm columns predates them and cannot be judged: NO-GO, "not logged");
- **memory flat**: the process's peak resident memory (and CUDA max allocated, when logged) grows
  by at most ``--memory-bound-mb`` (64 MB) from the second epoch to any later one (the first epoch
  is the warm-up: allocator pools, loader workers), and the optimizer state keeps one size. A
  resumed run restarts the process, so its peak can drop; only growth is judged. At least three
  epochs are needed;
- **val vs plain**: the run's best val accuracy (the epoch best.pt keeps) is at least the mean
  minus one standard deviation (ddof 1) of the baselines' best val accuracies. The baselines must
  be the plain students of the same recipe: the same index fingerprint, backbone, input size,
  stem, last stride and epochs (checked from args.json), at least two of them (one seed has no spread).

Every judged run gets ``gate_nl_phase.json`` (the items, the numbers, the baselines and the
decision), so the decision stays with the run it allowed or stopped.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Sequence

from fer_models.errors import ArtifactError
from fer_models.files import read_json, write_json
from training.gate_items import check_item, read_csv_rows

RECORD_FILE = "gate_nl_phase.json"
DEFAULT_BOUND_MB = 64.0
MIN_BASELINES = 2
MIN_EPOCHS = 3
SAME_RECIPE = ("backbone", "input_size", "stem_stride", "last_stride", "epochs")
FINITE_COLUMNS = ("train_loss", "val_loss", "grad_norm_mean", "grad_norm_max")


def read_history(run: Path) -> list[dict[str, str]]:

    _, rows = read_csv_rows(run / "history.csv")
    if not rows:
        raise ArtifactError(run / "history.csv", "has no epoch rows")
    return rows


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return float("nan")


def check_finite(run: Path) -> tuple[bool, str, Path]:
    path = run / "history.csv"
    rows = read_history(run)
    if any(_float(r.get("grad_norm_mean")) is None for r in rows):
        return False, (f"{path}: not logged: epochs without grad_norm_* (written before the safety columns "
                       "existed); rerun or resume it with this version"), path
    for r in rows:
        for col in FINITE_COLUMNS:
            v = _float(r.get(col))
            if v is None or not math.isfinite(v):
                return False, f"{path}: epoch {r.get('epoch')}: {col} = {r.get(col)!r} is not finite", path
    top = max(float(r["grad_norm_max"]) for r in rows)
    return True, f"{path}: {len(rows)} epochs, losses and gradient norms finite (largest norm {top:.3g})", path


def memory_growth(rows: Sequence[dict[str, str]], column: str) -> float | None:
    """Largest rise of ``column`` from the second epoch's value to any later epoch's (None: not logged)."""
    vals = [_float(r.get(column)) for r in rows[1:]]
    if not vals or any(v is None or not math.isfinite(v) for v in vals):
        return None
    return max(v - vals[0] for v in vals)


def check_memory(run: Path, bound_mb: float) -> tuple[bool, str, Path]:
    path = run / "history.csv"
    rows = read_history(run)
    if len(rows) < MIN_EPOCHS:
        return False, f"{path}: {len(rows)} epochs; {MIN_EPOCHS} or more needed to judge growth", path
    rss = memory_growth(rows, "peak_rss_mb")
    if rss is None:
        return False, f"{path}: not logged: peak_rss_mb missing in some epoch after the first", path
    parts, ok = [f"peak RSS +{rss:.1f} MB"], rss <= bound_mb
    gpu = memory_growth(rows, "gpu_peak_mb")
    if gpu is not None:
        parts.append(f"GPU peak +{gpu:.1f} MB")
        ok = ok and gpu <= bound_mb
    states = {r.get("optimizer_state_mb") for r in rows}
    if len(states) != 1:
        ok = False
        parts.append(f"optimizer state changed size: {sorted(states)} MB")
    else:
        parts.append(f"optimizer state {states.pop()} MB throughout")
    return ok, (f"{path}: after the first epoch " + ", ".join(parts) +
                f" ({'within' if ok else 'beyond'} the {bound_mb:g} MB bound)"), path


def _args(run: Path) -> dict[str, Any]:
    data = read_json(run / "args.json")
    if not isinstance(data, dict):
        raise ArtifactError(run / "args.json", "expected a JSON object")
    return data


def best_val(run: Path) -> float:
    vals = [_float(r.get("val_acc")) for r in read_history(run)]
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    if not vals:
        raise ArtifactError(run / "history.csv", "no finite val_acc")
    return max(vals)


def check_val(run: Path, baselines: Sequence[Path]) -> tuple[bool, str, Path]:
    path = run / "history.csv"
    if len(baselines) < MIN_BASELINES:
        return False, (f"{len(baselines)} baseline run(s) given; the plain student's spread needs at least "
                       f"{MIN_BASELINES} seeds (--baseline, repeated)"), path
    mine = _args(run)
    for b in baselines:
        theirs = _args(b)
        if theirs.get("index_fingerprint") != mine.get("index_fingerprint"):
            return False, f"{b}: baseline trained on another index than {run}", b / "args.json"
        other = [k for k in SAME_RECIPE if theirs.get(k) != mine.get(k)]
        if other:
            return False, (f"{b}: baseline of another recipe: " +
                           ", ".join(f"{k} {theirs.get(k)!r} vs {mine.get(k)!r}" for k in other)), b / "args.json"
    base = [best_val(b) for b in baselines]
    mean, sd = statistics.mean(base), statistics.stdev(base)
    v = best_val(run)
    ok = v >= mean - sd
    return ok, (f"best val {v:.4f} {'>=' if ok else '<'} plain mean - 1 sd = {mean:.4f} - {sd:.4f} = "
                f"{mean - sd:.4f} ({len(base)} seeds: {', '.join(f'{x:.4f}' for x in base)})"), path


def gate_nl_phase(runs: Sequence[Path], baselines: Sequence[Path], bound_mb: float | None = None) -> list[Any]:
    """The items of every run; each run's own items are written to RUN/gate_nl_phase.json."""

    bound = DEFAULT_BOUND_MB if bound_mb is None else float(bound_mb)
    st, items = "nl-phase", []
    for run in runs:
        name = str(run)
        mine = [check_item(st, name, "finite", lambda run=run: check_finite(run)),
                check_item(st, name, "memory flat", lambda run=run: check_memory(run, bound)),
                check_item(st, name, "val vs plain", lambda run=run: check_val(run, baselines))]
        write_json(run / RECORD_FILE, {
            "stage": st, "status": "GO" if all(i.ok for i in mine) else "NO-GO",
            "memory_bound_mb": bound, "baselines": [str(b) for b in baselines],
            "items": [i.to_dict() for i in mine]})
        items += mine
    return items
