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
    ap.add_argument("--out", type=Path, help="session folder for --replay")
    ap.add_argument("--labels", type=Path,
                    help="manual labels in video time (start_ms,end_ms,label) for --replay or --video")
    ap.add_argument("--max-frames", type=int, help="stop a replay after this many frames")
    ap.add_argument("--camera", type=int, help="open this camera index at start")
    ap.add_argument("--video", type=Path, help="open this video file at start")
    ap.add_argument("--provider", default="auto", help="onnxruntime provider: auto, cpu, cuda, directml")
    gui = ap.add_argument_group("window")
    gui.add_argument("--sessions-dir", type=Path, help="where session folders go (default: the user data folder)")
    gui.add_argument("--screenshot", type=Path, metavar="PNG",
                     help="save a picture of the window after --screenshot-delay seconds, then quit")
    gui.add_argument("--screenshot-delay", type=float, default=4.0, help="seconds before --screenshot (4)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.replay:
        if args.out is None:
            print("fer-demo: error: --replay needs --out SESSION_DIR", file=sys.stderr)
            return 2
        from app.replay import replay_video
        from fer_models.errors import FerError
        from fer_models.model_folder import load_model_folder
        from resources import default_model_dir

        try:
            model = load_model_folder(args.model or default_model_dir(), providers=args.provider)
            res = replay_video(args.replay, args.out, model, args.labels, max_frames=args.max_frames)
        except FerError as exc:
            print(f"fer-demo: error: {exc}", file=sys.stderr)
            return 2
        print(json.dumps({"session_dir": str(res.session_dir), "frames": res.n_frames, "faces": res.n_faces,
                          "score": res.score}))
        return 0
    from app.main_window import run_gui

    return run_gui(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
