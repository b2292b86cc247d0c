"""Would INT8 ONNX help the 5 ms budget? Accuracy and single-face latency of FP32, FP16 and INT8.

    python benchmarks/int8_quantization.py FP32_MODEL_FOLDER [--index runs/index] [--calib 256]

Quantizes the FP32 export statically (onnxruntime.quantization, QDQ, per-channel INT8 weights,
UINT8 activations calibrated on ``--calib`` random val faces), then prints, for the FP32 folder,
its sibling ``../fp16`` folder when present, and the INT8 graph: val and test accuracy of the
whole splits through the model card's crop, and the median / p90 of 400 single-face runs after
50 warm-ups (the app's session options: spinning off). A measurement to decide with, not a
feature: the app loads FP32 and FP16 folders only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="an FP32 model folder written by fer-train export")
    ap.add_argument("--index", default="runs/index")
    ap.add_argument("--calib", type=int, default=256, help="val faces used to calibrate activation ranges")
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from fer_models.model_folder import load_model_folder
    from fer_models.onnx_runtime import OnnxClassifier
    from training.data import FERDataset
    from training.index import load_index

    model = load_model_folder(args.model, providers="cpu")
    if model.classifier.precision != "fp32":
        raise SystemExit(f"{args.model}: expected an FP32 model folder, found {model.classifier.precision}")
    index = load_index(args.index)

    def faces(split: str) -> tuple[np.ndarray, np.ndarray]:
        ds = FERDataset(index, model.crop_spec(), split=split)  # the card's crop, as check-model scores it
        return np.stack([ds[i][0].numpy() for i in range(len(ds))]), ds.labels

    xv, yv = faces("val")
    xt, yt = faces("test")
    calib = xv[np.random.default_rng(args.seed).choice(len(xv), min(args.calib, len(xv)), replace=False)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.items, None)
            return None if x is None else {"input": x}

    tmp = Path(tempfile.mkdtemp(prefix="fer-int8-"))
    quant_pre_process(str(args.model / "model.onnx"), str(tmp / "pre.onnx"))
    quantize_static(str(tmp / "pre.onnx"), str(tmp / "int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)

    graphs = {"fp32": args.model / "model.onnx"}
    if (args.model.parent / "fp16" / "model.onnx").is_file():
        graphs["fp16"] = args.model.parent / "fp16" / "model.onnx"
    graphs["int8"] = tmp / "int8.onnx"
    print(f"{args.model}: {model.model_id}, {len(yv)} val / {len(yt)} test faces, {len(calib)} calibration faces")
    print(f"{'graph':<6} {'MB':>6} {'val acc':>8} {'test acc':>9} {'median ms':>10} {'p90 ms':>7}")
    for name, path in graphs.items():
        clf = OnnxClassifier(path, "cpu")  # the app's session options (no spinning) and input precision

        def accuracy(x: np.ndarray, y: np.ndarray) -> float:
            z = np.concatenate([clf.run(x[i:i + 256]) for i in range(0, len(x), 256)])
            return float(np.mean(z.argmax(1) == y))

        for _ in range(50):
            clf.run(xt[:1])
        times = []
        for i in range(args.runs):
            face = xt[i % len(xt)]
            t0 = time.perf_counter()
            clf.run(face)
            times.append((time.perf_counter() - t0) * 1e3)
        print(f"{name:<6} {path.stat().st_size / 1e6:>6.1f} {accuracy(xv, yv):>8.4f} {accuracy(xt, yt):>9.4f} "
              f"{np.median(times):>10.3f} {np.percentile(times, 90):>7.3f}", flush=True)


if __name__ == "__main__":
    main()
