"""``fer-train report``: the results table of docs/results.md, read from run folders (``--out DIR``: the
full HTML + PDF report of training/report_doc.py). The rows are ``training.report_table``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fer_models.files import atomic_write_text
from training.report_table import markdown_table


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
