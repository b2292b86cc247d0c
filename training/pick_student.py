"""``fer-train pick-student``: the student the app ships, by the rule of docs/decisions.md.

The rule was applied by hand (and once by a Python snippet inside a shell recipe) before; a
command makes it the same every time and testable: among the *distilled* configurations (KD or
DKD, with or without NL / NegL) that have at least three finished seeds of one recipe, the one
with the best mean val accuracy (ties: lower mean val NLL), and of it the seed with the best val
accuracy (ties: lower val NLL). Only ``metrics_val.json`` is read: PrivateTest never takes part in
a choice. The no-distillation baseline is reported beside the shipped model, never shipped, and a
configuration whose NL phase gate said NO-GO (``gate_nl_phase.json``) is not a candidate.
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from fer_models.errors import ArtifactError
from fer_models.files import read_json_object, write_json
from training.aggregate import check_same_recipe, run_config_name
from training.gate_items import finite_float

DISTILLED = ("kd", "dkd")


def _val(run: Path) -> tuple[float, float]:
    path = run / "metrics_val.json"
    val = read_json_object(path)
    acc, nll = finite_float(val.get("accuracy")), finite_float(val.get("nll"))
    if acc is None or nll is None:
        raise ArtifactError(path, "no finite accuracy / nll: re-run fer-train evaluate on this run")
    return acc, nll


def pick_student(runs: Sequence[str | Path], min_seeds: int = 3) -> tuple[Path, list[dict[str, Any]]]:
    """The chosen run folder, and one row per configuration seen (candidates and why others are not).

    Unfinished runs (no ``summary.json``) are left out and counted; a configuration needs
    ``min_seeds`` finished runs to compete. Runs of one configuration must share their recipe
    (``training.aggregate.check_same_recipe``) and all candidates one index, or the val figures
    would not be comparable.
    """
    by_config: dict[str, list[Path]] = defaultdict(list)
    info: dict[str, dict[str, Any]] = {}
    for run in map(Path, runs):
        args = read_json_object(run / "args.json")
        config = run_config_name(run)
        row = info.setdefault(config, {"config": config, "distill": args.get("distill"), "finished": 0,
                                       "unfinished": 0, "nl_gate": None})
        gate = read_json_object(run / "gate_nl_phase.json", missing_ok=True).get("status")
        if gate:
            row["nl_gate"] = gate if row["nl_gate"] in (None, "GO") else row["nl_gate"]
        if not (run / "summary.json").is_file():
            row["unfinished"] += 1
            continue
        row["finished"] += 1
        by_config[config].append(run)
    fingerprints: dict[str, Path] = {}
    candidates = []
    for config, row in info.items():
        members = by_config.get(config, [])
        if row["distill"] not in DISTILLED:
            row["status"] = "baseline (not shipped)"
        elif row["nl_gate"] == "NO-GO":
            row["status"] = "NL phase gate NO-GO"
        elif len(members) < min_seeds:
            row["status"] = f"{len(members)} of {min_seeds} seeds finished"
        else:
            row["status"] = "candidate"
        if not members:
            continue
        check_same_recipe(members, [config] * len(members))
        vals = [_val(r) for r in members]
        row["seeds"] = {r.name: {"val_accuracy": a, "val_nll": n} for r, (a, n) in zip(members, vals)}
        row["mean_val_accuracy"] = statistics.mean(a for a, _ in vals)
        row["mean_val_nll"] = statistics.mean(n for _, n in vals)
        row["std_val_accuracy"] = statistics.stdev(a for a, _ in vals) if len(vals) > 1 else None
        if row["status"] == "candidate":
            for r in members:
                fp = read_json_object(r / "args.json").get("index_fingerprint")
                fingerprints.setdefault(str(fp), r)
            candidates.append((-row["mean_val_accuracy"], row["mean_val_nll"], config))
    if len(fingerprints) > 1:
        shown = ", ".join(f"{fp[:12]} ({r})" for fp, r in fingerprints.items())
        raise ArtifactError(next(iter(fingerprints.values())), f"candidates were trained on different indexes: {shown}")
    rows = sorted(info.values(), key=lambda r: -r.get("mean_val_accuracy", -1.0))
    if not candidates:
        shown = "; ".join(f"{r['config']}: {r['status']}" for r in rows) or "no runs"
        parents = {Path(r).parent for r in runs}
        raise ArtifactError(parents.pop() if len(parents) == 1 else None,
                            f"no distilled configuration with {min_seeds} finished seeds ({shown})")
    best = min(candidates)[2]
    seeds = info[best]["seeds"]
    chosen = Path(min((-seeds[r.name]["val_accuracy"], seeds[r.name]["val_nll"], str(r)) for r in by_config[best])[2])
    info[best]["status"] = f"chosen: {chosen.name}"
    return chosen, rows


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.4f}"


def _main(args: Any) -> int:
    chosen, rows = pick_student(args.runs, args.min_seeds)
    print("| configuration | finished seeds | mean val acc | std | mean val NLL | status |", file=sys.stderr)
    print("| --- | ---: | ---: | ---: | ---: | --- |", file=sys.stderr)
    for r in rows:
        print(f"| {r['config']} | {r['finished']} | {_fmt(r.get('mean_val_accuracy'))} | "
              f"{_fmt(r.get('std_val_accuracy'))} | {_fmt(r.get('mean_val_nll'))} | {r['status']} |", file=sys.stderr)
    if args.record:
        write_json(args.record, {"rule": "distilled configuration with >= %d finished seeds, best mean val accuracy "
                                         "(ties: mean val NLL); its best-val seed (ties: val NLL)" % args.min_seeds,
                                 "chosen": str(chosen), "configurations": rows})
    print(chosen)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pick-student", help="print the student run to ship: best mean val of the distilled "
                                            "configurations with three seeds, its best-val seed")
    p.add_argument("runs", nargs="+", help="student run folders (unfinished ones are counted, not used)")
    p.add_argument("--min-seeds", type=int, default=3, help="finished seeds a configuration needs (default 3)")
    p.add_argument("--record", default=None, help="also write the decision table to this JSON file")
    p.set_defaults(func=_main)
