"""The results table of docs/results.md: one row per run folder, read from the artifacts the runs wrote.

Figures in the docs are copied from the artifacts the runs wrote (args.json,
summary.json, calibration.json, ensemble.json), never typed by hand, so a table
can always be regenerated and checked against the folders it names. Teachers,
students and ensembles all carry calibration.json with before/after metrics on
val and test (T fitted on val); that file is the one required input. Used by the
markdown table of ``fer-train report`` and by the full report (training/report_doc.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from fer_models.errors import ArtifactError
from fer_models.files import read_json_object

COLUMNS = ("run", "model", "input px", "epochs", "wall min", "val acc", "val macro-F1", "test acc",
           "test macro-F1", "T (val)", "test NLL before/after", "test ECE before/after", "test Brier before/after")


def _read(path: Path, required: bool) -> dict[str, Any]:
    if required and not path.is_file():
        raise ArtifactError(path, "missing; run `fer-train calibrate` on this folder first")
    return read_json_object(path, missing_ok=True)


def _metric(cal: dict[str, Any], when: str, split: str, key: str, path: Path) -> float:
    try:
        return float(cal[f"metrics_{when}"][split][key])
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(path, f"no metrics_{when}.{split}.{key}; recalibrate with the current fer-train") from exc


def run_row(run_dir: str | Path) -> dict[str, Any]:
    """One table row: what was trained, for how long, and the calibrated val/test figures."""
    run_dir = Path(run_dir)
    cal_path = run_dir / "calibration.json"
    cal = _read(cal_path, required=True)
    args = _read(run_dir / "args.json", required=False)
    summary = _read(run_dir / "summary.json", required=False)
    ens = _read(run_dir / "ensemble.json", required=False)
    if ens:
        members = ens.get("members") or (ens.get("config") or {}).get("members") or []
        names = [f"{m.get('name')} {float(m.get('weight', 0)):.2f}" for m in members if isinstance(m, dict)]
        model = "ensemble: " + ", ".join(names)
        input_px, epochs, wall = "-", "-", None
    else:
        distill = args.get("distill")
        model = str(args.get("backbone", "?")) + (f" ({distill})" if distill else "")
        input_px = args.get("input_size", "?")
        epochs = summary.get("epochs", args.get("epochs", "?"))
        wall = summary.get("wall_seconds")
        if _read(run_dir / "metrics_val.json", required=False).get("tta") == "flip":
            model += " + flip TTA"  # a teacher scored on each face and its mirror (fer-train evaluate --tta)

    def m(when: str, split: str, key: str) -> float:
        return _metric(cal, when, split, key, cal_path)

    return {
        "run": run_dir.name, "model": model, "input px": input_px, "epochs": epochs,
        "wall min": "-" if wall is None else f"{float(wall) / 60:.0f}",
        "val acc": f"{m('before', 'val', 'accuracy'):.3f}", "val macro-F1": f"{m('before', 'val', 'macro_f1'):.3f}",
        "test acc": f"{m('before', 'test', 'accuracy'):.3f}",
        "test macro-F1": f"{m('before', 'test', 'macro_f1'):.3f}",
        "T (val)": f"{float(cal['temperature']):.2f}" if "temperature" in cal else "?",
        "test NLL before/after": f"{m('before', 'test', 'nll'):.3f} / {m('after', 'test', 'nll'):.3f}",
        "test ECE before/after": f"{m('before', 'test', 'ece'):.3f} / {m('after', 'test', 'ece'):.3f}",
        "test Brier before/after": f"{m('before', 'test', 'brier'):.3f} / {m('after', 'test', 'brier'):.3f}",
    }


def markdown_table(run_dirs: Sequence[str | Path]) -> str:
    """A GitHub markdown table with one row per run folder, in the order given."""
    rows = [run_row(d) for d in run_dirs]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join(" --- " for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"
