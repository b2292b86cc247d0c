"""``fer-train export``: a trained run -> model folders the app loads (FP32 and FP16).

The ONNX graph is checked against the torch model on real images before it is
written out: a silent export bug would otherwise reach the demo looking fine.
The model card records the live crop margin measured on the training images'
own framing (fer_models.framing), so the app frames faces as training did.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.calibration import Calibration, load_calibration, save_calibration, softmax
from fer_models.classes import write_classes_json
from fer_models.errors import ArtifactError
from fer_models.face_crop import CropSpec, prepare_face
from fer_models.files import read_json_object
from fer_models.model_card import ModelCard, save_model_card
from fer_models.onnx_runtime import OnnxClassifier

log = logging.getLogger(__name__)

PARITY_TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2}  # max |p_torch - p_onnx| over the parity images
OPSET = 17


def find_checkpoint(run_dir: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    if run_dir.is_file():
        return run_dir
    raise ArtifactError(run_dir, "no best.pt or last.pt checkpoint in this run folder")


def export_onnx(model: Any, path: Path, in_chans: int, input_size: int) -> Path:
    """TorchScript-based export with a dynamic batch; input 'input', output 'logits'."""
    import warnings

    import torch

    model = model.eval()
    dummy = torch.zeros(1, in_chans, input_size, input_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exact for these CNNs
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, dummy, str(path), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=OPSET, dynamo=False)
    return path


def convert_fp16(src: Path, dst: Path) -> Path:
    """FP16 weights and arithmetic, float32 input and output (the model-folder contract)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return dst


def parity_images(run_args: dict[str, Any], n: int = 64) -> list[np.ndarray]:
    """Real validation faces from the run's index (first n in index order)."""
    import cv2

    from training.index import load_index

    index_dir = run_args.get("index")
    if not index_dir:
        raise ArtifactError(None, "the run's args.json names no index; pass --parity-images")
    index = load_index(index_dir)
    root = Path(index.source)
    out = []
    for pos in index.positions("val")[:n]:
        img = cv2.imread(str(root / index.sample_ids[pos]), cv2.IMREAD_GRAYSCALE)
        if img is not None:
            out.append(img)
    return out


def parity_check(model: Any, onnx_path: Path, images: Sequence[np.ndarray], spec: CropSpec,
                 calibration: Calibration | None, tolerance: float) -> float:
    """Max absolute difference of (calibrated) probabilities between torch and ONNX; refuse above tolerance."""
    import torch

    if not images:
        raise ArtifactError(onnx_path, "no images for the parity check")
    batch = np.stack([prepare_face(img, spec) for img in images])
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(batch)).float().numpy()
    got = OnnxClassifier(onnx_path, providers="cpu").run(batch)
    t = calibration.effective_temperature() if calibration else 1.0
    diff = float(np.abs(softmax(ref / t) - softmax(got / t)).max())
    if diff > tolerance:
        raise ArtifactError(onnx_path, f"ONNX and torch disagree: max |dp| = {diff:.2e} > tolerance {tolerance:.0e}")
    return diff


def export_run(run_dir: Path, out_dir: Path, fp16: bool = False, crop_margin: float | None = None,
               model_id: str | None = None, images: Sequence[np.ndarray] | None = None,
               framing: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write out_dir/fp32 (and out_dir/fp16) model folders from a run; returns what was written and measured."""
    from training.data import checkpoint_crop_spec
    from training.models import model_from_checkpoint

    run_dir = Path(run_dir)
    ckpt = find_checkpoint(run_dir)
    model, data = model_from_checkpoint(ckpt)
    classes = list(data["classes"])
    args = read_json_object(run_dir / "args.json", missing_ok=True)
    spec = checkpoint_crop_spec(data, ckpt)
    if crop_margin is not None:
        spec = dataclasses.replace(spec, crop_margin=float(crop_margin))
    cal_path = run_dir / "calibration.json"
    if cal_path.is_file():
        calibration = load_calibration(cal_path, classes)
    else:
        log.warning("%s: no calibration.json (run fer-train calibrate first); exporting with T = 1", run_dir)
        calibration = Calibration(temperature=1.0, classes=classes, selection_rule="none (uncalibrated export)")
    metrics = {}
    for split in ("val", "test"):
        m = read_json_object(run_dir / f"metrics_{split}.json", missing_ok=True)
        if m:
            metrics[split] = {k: m[k] for k in ("accuracy", "macro_f1") if k in m}
    if calibration.metrics_after:
        metrics["calibrated"] = calibration.metrics_after
    images = list(images) if images is not None else parity_images(args)
    fingerprint = data.get("index_fingerprint") or args.get("index_fingerprint") or _index_fingerprint(args)
    out_dir = Path(out_dir)
    report: dict[str, Any] = {"checkpoint": str(ckpt), "folders": {}}
    precisions = ["fp32"] + (["fp16"] if fp16 else [])
    fp32_onnx = None
    for precision in precisions:
        folder = out_dir / precision
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        onnx_path = folder / "model.onnx"
        if precision == "fp32":
            fp32_onnx = export_onnx(model, onnx_path, data["in_chans"], data["input_size"])
        else:
            convert_fp16(fp32_onnx, onnx_path)  # type: ignore[arg-type]
        diff = parity_check(model, onnx_path, images, spec, calibration, PARITY_TOLERANCE[precision])
        card = ModelCard(
            classes=classes, input_size=spec.input_size, channels=spec.channels, color=spec.color,
            mean=list(spec.mean), std=list(spec.std), clahe=spec.clahe, align_eyes=spec.align_eyes,
            crop_margin=spec.crop_margin, backbone=data["backbone"], index_fingerprint=fingerprint or "",
            metrics=metrics, model_id=f"{model_id or run_dir.name}-{precision}", precision=precision,
            extra={"stem_stride": data.get("stem_stride"), "last_stride": data.get("last_stride"),
                   "parity_max_abs_prob_diff": diff,
                   "parity_images": len(images), "source_run": str(run_dir), "framing": framing,
                   "opset": OPSET, "training": training_summary(args, data)},
        )
        save_model_card(folder, card)
        save_calibration(folder, calibration)
        write_classes_json(folder, classes)
        report["folders"][precision] = {"path": str(folder), "parity_max_abs_prob_diff": diff,
                                        "size_bytes": onnx_path.stat().st_size}
        log.info("%s: %s export, parity max |dp| %.2e over %d images", folder, precision, diff, len(images))
    return report


def training_summary(args: dict[str, Any], ckpt: dict[str, Any]) -> dict[str, Any]:
    """How the exported model was trained, for the model card: a shipped file must say whether it was
    distilled and from what, without the run folder (which stays out of git)."""
    keys = ("command", "config", "distill", "alpha", "beta", "temperature", "teacher", "epochs", "lr",
            "seed", "label_smoothing", "pretrained_checkpoint")
    out = {k: args[k] for k in keys if args.get(k) is not None}
    out["epoch_of_checkpoint"] = ckpt.get("epoch")
    if out.get("distill") == "none":  # a baseline has no teacher, whatever was passed
        for k in ("alpha", "beta", "temperature", "teacher"):
            out.pop(k, None)
    return out


def _index_fingerprint(args: dict[str, Any]) -> str:
    if not args.get("index"):
        return ""
    from training.index import load_index

    return load_index(args["index"]).fingerprint


def measured_margin(args: dict[str, Any], n: int = 300) -> dict[str, Any]:
    """Run the live detector on the run's validation images to find the margin that reproduces their framing."""
    from fer_models.framing import measure_framing_margin
    from training.index import load_index

    index = load_index(args["index"])
    root = Path(index.source)
    paths = [root / index.sample_ids[p] for p in index.positions("val")[:n]]
    return measure_framing_margin(paths).to_dict()


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export a run to ONNX model folders (FP32, optional FP16) for the app")
    p.add_argument("run_dir", type=Path, help="run folder with best.pt / last.pt (and calibration.json)")
    p.add_argument("--out", type=Path, help="output folder (default RUN_DIR/export); writes fp32/ and fp16/")
    p.add_argument("--fp16", action="store_true", help="also write an FP16 model folder")
    p.add_argument("--crop-margin", type=float, help="live crop margin for the card (default: measured on the "
                                                     "run's validation images with the live detector)")
    p.add_argument("--model-id", help="model id prefix in the card (default: the run folder's name)")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    run_dir = Path(args.run_dir)
    framing = None
    margin = args.crop_margin
    if margin is None:
        run_args = read_json_object(run_dir / "args.json", missing_ok=True)
        if run_args.get("index"):
            framing = measured_margin(run_args)
            margin = round(framing["margin_median"], 3)
            log.info("measured crop margin %.3f (detection rate %.2f)", margin, framing["detection_rate"])
    report = export_run(run_dir, args.out or run_dir / "export", fp16=args.fp16, crop_margin=margin,
                        model_id=args.model_id, framing=framing)
    print(json.dumps(report, indent=2))
    return 0
