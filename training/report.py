"""``fer-train report``: the results table of docs/results.md, read from run folders (``--out DIR``: the
full HTML + PDF report of training/report_doc.py).

Figures in the docs are copied from the artifacts the runs wrote (args.json,
summary.json, calibration.json, ensemble.json), never typed by hand, so a table
can always be regenerated and checked against the folders it names. Teachers,
students and ensembles all carry calibration.json with before/after metrics on
val and test (T fitted on val); that file is the one required input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from fer_models.errors import ArtifactError
from fer_models.files import atomic_write_text, read_json_object

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


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="results table (markdown), or with --out DIR the full HTML + PDF report")
    p.add_argument("run_dirs", type=Path, nargs="+",
                   help="run / ensemble folders (holding calibration.json); with --out DIR also student runs, "
                        "demo session folders and NL/NegL folders, sorted into stages by their files")
    p.add_argument("--out", type=Path, default=None,
                   help="a folder: write report.html, report.pdf and figures/ there; a path ending in .md: write "
                        "the markdown table there (default: print the table)")
    p.add_argument("--summary", type=Path, default=None,
                   help="results_summary_students.csv (default: looked for next to the student runs)")
    p.add_argument("--latency", type=Path, default=None, help="latency.csv (default: next to the runs)")
    p.add_argument("--demo-summary", type=Path, default=None,
                   help="demo_results_summary.csv (default: in or next to each session folder)")
    p.add_argument("--export", type=Path, action="append", default=[], metavar="DIR",
                   help="an export folder (fp32/, fp16/) besides RUN/export")
    p.add_argument("--index", type=Path, default=None, help="index for the alignment checks (default: args.json's)")
    p.add_argument("--notes", type=Path, default=None,
                   help="optional notes file: '# Done', '# Next steps', '# Risks' headings with '- ' items")
    p.add_argument("--title", default=None, help="report title")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    out = args.out
    if out is not None and out.suffix.lower() != ".md":
        from training.report_doc import build_report

        html_path, pdf_path = build_report(args.run_dirs, out, summary=args.summary, latency=args.latency,
                                           demo_summary=args.demo_summary, exports=args.export, index=args.index,
                                           notes=args.notes, title=args.title)
        print(f"-> {html_path}\n-> {pdf_path}")
        return 0
    table = markdown_table(args.run_dirs)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, table)
        print(f"-> {out}")
    else:
        print(table, end="")
    return 0
