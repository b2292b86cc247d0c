"""Per-stage latency of the live pipeline on a 640x480 video of real FER2013 faces.

Usage: python benchmarks/pipeline.py [--model MODEL_DIR] [--frames 300] [--shared ../shared] [--roi-px 128]
                                    [--cv-threads N]

Without --model it uses the bundled default model; if none is bundled yet it
exports an untrained timm MobileNetV3-Large at 64 px (needs the train extra),
which costs the same to run as a trained one. Prints per-stage median/p90 ms and
FPS, and as its last line one JSON object. It also prints how often the raw top
class matches the label of the face on screen: with 14 faces of 30 frames each
it is not an accuracy figure, but a detector or crop change that moves the
crops shows in it (with the frame-by-frame agreement against a reference run).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fer_models.classes import FER7  # noqa: E402
from fer_models.detector import ROI_PX, FaceDetector  # noqa: E402
from fer_models.framing import place_on_canvas  # noqa: E402
from fer_models.model_folder import load_model_folder  # noqa: E402
from fer_models.pipeline import FramePipeline, PipelineSettings  # noqa: E402


def build_video(path: Path, fer_dir: Path, frames: int, fps: float = 30.0) -> list[int]:
    """Faces from the PrivateTest split, each held 1 s, drifting slowly like a person in front of a camera.

    Returns the FER7 class index of the face in each frame.
    """
    files: list[tuple[Path, int]] = []
    for k, c in enumerate(FER7):
        files += [(f, k) for f in sorted((fer_dir / "test" / c.lower()).glob("PrivateTest_*.jpg"))[:2]]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    labels = []
    for i in range(frames):
        file, label = files[(i // int(fps)) % len(files)]
        img = cv2.imread(str(file), cv2.IMREAD_GRAYSCALE)
        cx = 320 + int(40 * np.sin(i / 25.0))
        canvas, _ = place_on_canvas(img, face_px=220, center=(cx, 240))
        writer.write(canvas)
        labels.append(label)
    writer.release()
    return labels


def export_untrained_mobilenet(folder: Path) -> Path:
    import torch
    import timm

    from fer_models.calibration import Calibration, save_calibration
    from fer_models.classes import write_classes_json
    from fer_models.model_card import ModelCard, save_model_card

    folder.mkdir(parents=True, exist_ok=True)
    net = timm.create_model("mobilenetv3_large_100", num_classes=7, in_chans=1).eval()
    torch.onnx.export(net, torch.zeros(1, 1, 64, 64), str(folder / "model.onnx"), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    save_model_card(folder, ModelCard(classes=list(FER7), input_size=64, channels=1, color="gray", mean=[0.5],
                                      std=[0.5], clahe=True, align_eyes=True, crop_margin=0.0,
                                      backbone="mobilenetv3_large_100 (untrained, benchmark only)",
                                      index_fingerprint="", metrics={}, model_id="bench-mnv3-untrained"))
    save_calibration(folder, Calibration(temperature=1.0, classes=list(FER7)))
    write_classes_json(folder)
    return folder


def stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values)
    return float(np.median(arr)), float(np.percentile(arr, 90))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--detect-width", type=int, default=320)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    ap.add_argument("--roi-px", type=int, default=ROI_PX,
                    help=f"side of the tracking region YuNet re-detects in (the app's default {ROI_PX})")
    ap.add_argument("--cv-threads", type=int, default=None, help="cv2.setNumThreads before the run (default: OpenCV's)")
    ap.add_argument("--save-top", type=Path, default=None,
                    help="write each frame's raw top class (or -1) here, one per line, for --compare-top")
    ap.add_argument("--compare-top", type=Path, default=None,
                    help="a --save-top file of a reference run: print the share of frames whose top class agrees")
    args = ap.parse_args()
    if args.cv_threads is not None:
        cv2.setNumThreads(args.cv_threads)

    import os
    os.environ.setdefault("FER_YUNET_DIR", str(args.shared / "models"))
    tmp = Path(tempfile.mkdtemp(prefix="ferbench-"))
    video = tmp / "bench.avi"
    labels = build_video(video, args.shared / "data" / "fer2013", args.frames)

    from resources import default_model_dir

    model_dir = args.model or (default_model_dir() if (default_model_dir() / "model.onnx").exists() else None)
    if model_dir is None:
        model_dir = export_untrained_mobilenet(tmp / "untrained")
    model = load_model_folder(model_dir, providers="cpu", intra_op_threads=args.threads)
    detector = FaceDetector(detect_width=args.detect_width, roi_px=args.roi_px)
    pipe = FramePipeline(model, detector, PipelineSettings())

    cap = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    for f in frames[:20]:  # warm-up
        pipe.process(f, 0.0)
    pipe.reset()
    per_stage: dict[str, list[float]] = {k: [] for k in ("detect", "crop", "infer", "smooth", "total")}
    faces = 0
    top: list[int] = []
    start = time.perf_counter()
    for i, f in enumerate(frames):
        r = pipe.process(f, i / 30.0)
        faces += r.face is not None
        top.append(int(np.argmax(r.probs)) if r.probs is not None else -1)
        for k in per_stage:
            per_stage[k].append(r.timings_ms[k])
    wall = time.perf_counter() - start
    # the card's class order may differ from FER7's: compare by name
    names = list(model.card.classes)
    hits = sum(t >= 0 and names[t] == FER7[y] for t, y in zip(top, labels))

    print(f"model: {model.model_id} ({model_dir}), input {model.card.input_size}px, provider {model.provider}")
    print(f"frames: {len(frames)} at 640x480, faces found in {faces}; detector width {args.detect_width}, "
          f"tracking region {args.roi_px} px, cv2 threads {cv2.getNumThreads()}")
    print(f"raw top class = the face's label in {hits} of {len(frames)} frames")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
          f"OpenCV {cv2.__version__}")
    print(f"{'stage':>8} {'median ms':>10} {'p90 ms':>8}")
    result = {"model_id": model.model_id, "frames": len(frames), "faces": faces, "label_hits": hits,
              "roi_px": args.roi_px, "cv_threads": cv2.getNumThreads()}
    if args.save_top:
        args.save_top.write_text("".join(f"{t}\n" for t in top))
    if args.compare_top:
        ref = [int(v) for v in args.compare_top.read_text().split()]
        if len(ref) != len(top):
            raise SystemExit(f"{args.compare_top}: {len(ref)} frames, this run has {len(top)}")
        result["top_agreement"] = round(sum(a == b for a, b in zip(ref, top)) / len(top), 4)
        print(f"top class agrees with {args.compare_top} in {result['top_agreement']:.1%} of frames")
    for k, v in per_stage.items():
        med, p90 = stats(v)
        print(f"{k:>8} {med:>10.2f} {p90:>8.2f}")
        result[f"{k}_median_ms"] = round(med, 3)
        result[f"{k}_p90_ms"] = round(p90, 3)
    result["fps"] = round(len(frames) / wall, 1)
    print(f"fps (processing only, decode excluded): {result['fps']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
