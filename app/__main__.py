"""``fer-demo``: the desktop app, or a headless replay with ``--replay VIDEO``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fer-demo", description="Real-time facial-expression demo and labeling.")
    ap.add_argument("--model", type=Path, action="append",
                    help="model folder (default: the bundled model). Give it twice for an A/B comparison: with "
                         "--replay both models run on the same decoded frames and detections; in the window the "
                         "second one is shown as a second label track")
    ap.add_argument("--replay", type=Path, metavar="VIDEO", help="run the pipeline on a video without a window")
    ap.add_argument("--out", type=Path, help="session folder for --replay: a new or empty folder (an existing "
                                             "session is never appended to)")
    ap.add_argument("--labels", type=Path,
                    help="manual labels in video time (start_ms,end_ms,label) for --replay or --video")
    ap.add_argument("--labels-b", type=Path, metavar="LABELS",
                    help="for --video: a second rater's labels of the same video (rater B's track)")
    ap.add_argument("--summary", type=Path, metavar="CSV",
                    help="for --replay: append the session's row to this demo_results_summary.csv "
                         "(default: demo_results_summary.csv inside the --out folder)")
    ap.add_argument("--max-frames", type=int, help="stop a replay after this many frames")
    ap.add_argument("--save-crops", metavar="CONSENT", dest="crops_consent",
                    help="for --replay: also save the model's aligned face crops (crops/ of the session, of "
                         "each session in an A/B replay; for fer-train mine and fer-train strata). CONSENT is the record of the filmed person's agreement (who, how, "
                         "when), kept in actions.csv; without it no pixels are saved")
    ab = ap.add_argument_group("A/B replay (--replay with two --model)")
    ab.add_argument("--bootstrap", type=int, default=None, metavar="N",
                    help="resamples of the paired segment bootstrap (default 2000)")
    ab.add_argument("--seed", type=int, default=None, help="seed of the bootstrap (default 0)")
    ab.add_argument("--max-disagreements", type=int, default=None, metavar="N",
                    help="frames listed where the models disagree (default 500; the totals are always given)")
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
    if args.crops_consent is not None and not args.replay:
        print("fer-demo: error: --save-crops applies to --replay only (in the window, clip saving asks for "
              "consent itself)", file=sys.stderr)
        return 2
    if args.crops_consent is not None and not args.crops_consent.strip():
        print("fer-demo: error: --save-crops needs the consent record as its value (who agreed, how, when)",
              file=sys.stderr)
        return 2
    if args.labels_b is not None and (args.replay or args.video is None):
        print("fer-demo: error: --labels-b applies to --video only (rater B's track in the window; score against "
              "it with fer-score LOG --agree-with B.csv)", file=sys.stderr)
        return 2
    models = args.model or []
    if len(models) > 2:
        print(f"fer-demo: error: --model was given {len(models)} times; give one model, or two for an A/B "
              "comparison", file=sys.stderr)
        return 2
    ab_only = [f"--{name.replace('_', '-')}" for name in ("bootstrap", "seed", "max_disagreements")
               if getattr(args, name) is not None]
    if ab_only and not (args.replay and len(models) == 2):
        print(f"fer-demo: error: {', '.join(ab_only)} apply to an A/B replay only (--replay with two --model)",
              file=sys.stderr)
        return 2
    if args.self_test:
        from app.self_test import print_report, run_self_test

        report = run_self_test(models[0] if models else None, args.provider)
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
    for name in ("bootstrap", "max_disagreements"):
        value = getattr(args, name)
        if value is not None and value < (1 if name == "bootstrap" else 0):
            print(f"fer-demo: error: --{name.replace('_', '-')} must be at least "
                  f"{1 if name == 'bootstrap' else 0}, got {value}", file=sys.stderr)
            return 2
    from app.replay import replay_compare, replay_video
    from fer_models.errors import FerError
    from fer_models.model_folder import load_app_model
    from resources import default_model_dir

    folders = args.model or [default_model_dir()]
    try:
        models = [load_app_model(folder, providers=args.provider) for folder in folders]
        if len(models) == 2:
            return _print_compare(replay_compare(
                args.replay, args.out, models, args.labels, max_frames=args.max_frames, summary_csv=args.summary,
                **{k: v for k, v in (("n_resamples", args.bootstrap), ("seed", args.seed),
                                     ("max_disagreements", args.max_disagreements)) if v is not None},
                crops_consent=args.crops_consent))
        res = replay_video(args.replay, args.out, models[0], args.labels, max_frames=args.max_frames,
                           summary_csv=args.summary, crops_consent=args.crops_consent)
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


def _print_compare(res) -> int:
    """The A/B replay's one JSON line: where everything went, both scores and the difference B - A."""
    first = res.sessions[0]
    for warning in first.warnings:
        print(f"fer-demo: warning: {warning}", file=sys.stderr)
    boot = res.comparison["bootstrap"]
    diff = {k: None if boot[k] is None else {x: boot[k][x] for x in ("b_minus_a", "ci_low", "ci_high")}
            for k in ("accuracy", "macro_f1")}
    print(json.dumps({
        "out": str(res.out_dir), "comparison_json": str(res.comparison_json), "frames": first.n_frames,
        "faces": first.n_faces, "frames_declared": first.frames_declared,
        "sessions": [{"name": name, "session_dir": str(s.session_dir), "model_id": m["model_id"], "score": s.score}
                     for (name, m), s in zip(res.comparison["models"].items(), res.sessions)],
        "b_minus_a": diff, "bootstrap": {"n_segments": boot["n_segments"], "n_resamples": boot["n_resamples"],
                                         "seed": boot["seed"]},
        "disagreeing_frames": res.comparison["disagreements"]["n_frames"],
        "summary_csv": str(first.summary_csv), "warnings": first.warnings}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
