"""``fer-train``: one command, one subcommand per pipeline step.

Each step lives in its own module that contributes its parser (``add_parser``)
and its entry point; this file only assembles them. Modules are imported when
the parser is built, but torch itself is imported inside the steps that need it,
so ``fer-train index`` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from fer_models.errors import FerError

# name of the module under ``training`` that defines add_parser(subparsers); order = help order
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "index", "teacher", "evaluate", "softlabels", "alignment", "calibrate", "ensemble",
    "student", "export", "check_model", "crossdomain", "bench", "aggregate", "report", "gate", "nl_testbed",
    "ckplus_index", "mine", "adapt", "calibrate_domain", "fairness", "session_video", "run_status", "bn_recalibration",
    "pick_student",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fer-train", description="FER training pipeline (DESIGN.md §2-§5).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"training.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fer-train`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except FerError as exc:
        print(f"fer-train {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover - python -m training.cli (used by torchrun)
    sys.exit(main())
