"""``fer-demo``: the desktop app, or a headless replay with ``--replay VIDEO``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fer-demo", description="Real-time facial-expression demo and labeling.")
    ap.add_argument("--model", type=Path, help="model folder (default: the bundled model)")
    ap.add_argument("--replay", type=Path, metavar="VIDEO", help="run the pipeline on a video without a window")
    ap.add_argument("--out", type=Path, help="session folder for --replay: a new or empty folder (an existing "
                                             "session is never appended to)")
    ap.add_argument("--labels", type=Path,
                    help="manual labels in video time (start_ms,end_ms,label) for --replay or --video")
    ap.add_argument("--summary", type=Path, metavar="CSV",
                    help="for --replay: append the session's row to this demo_results_summary.csv "
                         "(default: demo_results_summary.csv inside the --out folder)")
    ap.add_argument("--max-frames", type=int, help="stop a replay after this many frames")
    ap.add_argument("--camera", type=int, help="open this camera index at start")
    ap.add_argument("--video", type=Path, help="open this video file at start")
    ap.add_argument("--provider", default="auto", help="onnxruntime provider: auto, cpu, cuda, directml")
    ap.add_argument("--self-test", action="store_true",
                    help="headless check of the install: load the model and detector, classify a bundled face, "
                         "start Qt offscreen; exit 0 only when all of it works")
    gui = ap.add_argument_group("window")
    gui.add_argument("--sessions-dir", type=Path, help="where session folders go (default: the user data folder)")
    gui.add_argument("--screenshot", type=Path, metavar="PNG",
                     help="save a picture of the window after --screenshot-delay seconds, then quit")
    gui.add_argument("--screenshot-delay", type=float, default=4.0, help="seconds before --screenshot (4)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.summary is not None and not args.replay:
        print("fer-demo: error: --summary applies to --replay only (the window appends to "
              "demo_results_summary.csv in its sessions folder)", file=sys.stderr)
        return 2
    if args.self_test:
        from app.self_test import print_report, run_self_test

        report = run_self_test(args.model, args.provider)
        print_report(report)
        return 0 if report["ok"] else 1
    if args.replay:
        return _replay(args)
    from app.platform_check import install_qt_message_filter, xcb_problem

    problem = xcb_problem()
    if problem:  # Qt would abort the process with a core dump; say what to install instead
        print(problem, file=sys.stderr)
        return 3
    install_qt_message_filter()
    from app.main_window import run_gui

    return run_gui(args)


def _replay(args: argparse.Namespace) -> int:
    """``--replay``: every refusal is one line naming the file, never a traceback; warnings go to stderr."""
    if args.out is None:
        print("fer-demo: error: --replay needs --out SESSION_DIR", file=sys.stderr)
        return 2
    if args.max_frames is not None and args.max_frames < 1:
        print(f"fer-demo: error: --max-frames must be at least 1, got {args.max_frames}", file=sys.stderr)
        return 2
    from app.replay import replay_video
    from fer_models.errors import FerError
    from fer_models.model_folder import load_app_model
    from resources import default_model_dir

    try:
        model = load_app_model(args.model or default_model_dir(), providers=args.provider)
        res = replay_video(args.replay, args.out, model, args.labels, max_frames=args.max_frames,
                           summary_csv=args.summary)
    except FerError as exc:
        print(f"fer-demo: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk error no check above named: still one line with the path
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"fer-demo: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    for warning in res.warnings:
        print(f"fer-demo: warning: {warning}", file=sys.stderr)
    print(json.dumps({"session_dir": str(res.session_dir), "frames": res.n_frames, "faces": res.n_faces,
                      "frames_declared": res.frames_declared, "score": res.score,
                      "summary_csv": str(res.summary_csv), "warnings": res.warnings}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
