"""Does the app keep up with a 30 FPS 640x480 source without accumulating delay? (headless)

Usage: python benchmarks/live_app.py [--model MODEL_DIR] [--seconds 10] [--speed 1] [--shared ../shared]

Runs the app's own threads (app.source_runner.SourceRunner: capture thread pacing
a video file at its frame rate, processing thread taking the newest frame) with
a Qt event loop but no window, and drains results the way the window does.
Prints FPS, dropped frames, capture-to-result latency (overall and per third of
the run: a growing latency would mean delay builds up) and per-stage medians;
the last line is one JSON object. Without --model it uses the bundled default
model, else an untrained MobileNetV3-Large (needs the train extra), which costs
the same to run as a trained one.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _pipeline_bench():
    spec = importlib.util.spec_from_file_location("bench_pipeline", REPO / "benchmarks" / "pipeline.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--speed", type=float, default=1.0, help="playback speed (2 = a 60 FPS source)")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = ap.parse_args()
    os.environ.setdefault("FER_YUNET_DIR", str(args.shared / "models"))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

    from app.source_runner import SourceRunner
    from app.sources import SourceSpec
    from fer_models.detector import FaceDetector
    from fer_models.model_folder import load_model_folder
    from fer_models.pipeline import FramePipeline, PipelineSettings
    from resources import default_model_dir

    bench = _pipeline_bench()
    tmp = Path(tempfile.mkdtemp(prefix="ferlive-"))
    video = tmp / "live.avi"
    fps = 30.0
    bench.build_video(video, args.shared / "data" / "fer2013", int(args.seconds * fps * args.speed) + 30, fps)
    model_dir = args.model or (default_model_dir() if (default_model_dir() / "model.onnx").exists() else None)
    if model_dir is None:
        model_dir = bench.export_untrained_mobilenet(tmp / "untrained")
    model = load_model_folder(model_dir, providers="cpu")
    settings = PipelineSettings()
    pipeline = FramePipeline(model, FaceDetector(min_face=settings.min_face), settings)

    qapp = QCoreApplication.instance() or QCoreApplication([])
    runner = SourceRunner(SourceSpec("video", path=video), pipeline, speed=args.speed)
    items = []
    ended = []

    def drain() -> None:
        items.extend(runner.mailbox.drain())

    runner.results_ready.connect(drain)
    runner.ended.connect(lambda: ended.append(True))
    loop = QEventLoop()
    QTimer.singleShot(int(args.seconds * 1000), loop.quit)
    runner.ended.connect(loop.quit)
    start = time.perf_counter()
    runner.start()
    loop.exec()
    wall = time.perf_counter() - start
    items.extend(runner.stop())
    del qapp

    captured, dropped = runner.slot.captured, runner.slot.dropped
    lat = np.array([it.latency_ms for it in items])
    thirds = [float(np.median(part)) for part in np.array_split(lat, 3)] if len(lat) >= 3 else []
    stages = {k: float(np.median([it.result.timings_ms[k] for it in items])) for k in
              ("detect", "crop", "infer", "smooth", "total")} if items else {}
    result = {
        "model_id": model.model_id, "source_fps": fps * args.speed, "seconds": round(wall, 2),
        "captured": captured, "processed": len(items), "dropped": dropped,
        "dropped_pct": round(100.0 * dropped / max(1, captured), 1),
        "processed_fps": round(len(items) / wall, 1),
        "latency_median_ms": round(float(np.median(lat)), 1) if len(lat) else None,
        "latency_p90_ms": round(float(np.percentile(lat, 90)), 1) if len(lat) else None,
        "latency_median_by_third_ms": [round(x, 1) for x in thirds],
        **{f"{k}_median_ms": round(v, 2) for k, v in stages.items()},
        "cores": os.cpu_count(),
    }
    print(f"model {model.model_id}; source {fps * args.speed:g} FPS 640x480 for {wall:.1f} s on "
          f"{os.cpu_count()} cores")
    print(f"captured {captured}, processed {len(items)} ({result['processed_fps']} FPS), dropped {dropped} "
          f"({result['dropped_pct']}%)")
    print(f"latency capture->result: median {result['latency_median_ms']} ms, p90 {result['latency_p90_ms']} ms; "
          f"median per third of the run {result['latency_median_by_third_ms']} (flat = no build-up)")
    print("stages (median ms): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
