"""Builders for small but real test inputs: ONNX model folders, FER2013 canvases, slideshow videos."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fer_models.calibration import Calibration, save_calibration
from fer_models.classes import FER7, write_classes_json
from fer_models.framing import place_on_canvas  # noqa: F401  (re-exported for tests)
from fer_models.model_card import ModelCard, save_model_card


def make_linear_onnx(path: Path, input_size: int = 64, channels: int = 1, n_classes: int = 7,
                     fp16: bool = False, seed: int = 0, weights: np.ndarray | None = None,
                     bias: np.ndarray | None = None) -> Path:
    """A flatten -> matmul -> add classifier with input 'input' (N,C,S,S) and output 'logits' (N,K)."""
    rng = np.random.default_rng(seed)
    d = channels * input_size * input_size
    w = weights if weights is not None else rng.normal(0, 0.05, (d, n_classes))
    b = bias if bias is not None else rng.normal(0, 0.1, (n_classes,))
    dt = np.float16 if fp16 else np.float32
    et = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "linear_fer",
        [helper.make_tensor_value_info("input", et, ["N", channels, input_size, input_size])],
        [helper.make_tensor_value_info("logits", et, ["N", n_classes])],
        initializer=[numpy_helper.from_array(w.astype(dt), "W"), numpy_helper.from_array(b.astype(dt), "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_model_folder(folder: Path, input_size: int = 64, channels: int = 1, classes: Sequence[str] = FER7,
                      fp16: bool = False, temperature: float = 1.5, seed: int = 0, **card_overrides) -> Path:
    """A complete, valid model folder around ``make_linear_onnx``."""
    folder.mkdir(parents=True, exist_ok=True)
    make_linear_onnx(folder / "model.onnx", input_size, channels, len(classes), fp16, seed)
    card = dict(classes=list(classes), input_size=input_size, channels=channels, color="gray",
                mean=[0.5] * channels, std=[0.5] * channels, clahe=True, align_eyes=True, crop_margin=0.3,
                backbone="linear-test", index_fingerprint="test", metrics={}, model_id=f"linear-{seed}",
                precision="fp16" if fp16 else "fp32")
    card.update(card_overrides)
    save_model_card(folder / "model_card.json", ModelCard(**card))
    save_calibration(folder / "calibration.json", Calibration(temperature=temperature, classes=list(classes)))
    write_classes_json(folder, classes)
    return folder


def fer_images(fer2013_dir: Path, split_prefix: str = "PrivateTest", per_class: int = 3,
               classes: Sequence[str] = FER7) -> list[tuple[Path, int]]:
    """The first ``per_class`` images of every class from the test folder, sorted by name (deterministic)."""
    out = []
    for k, c in enumerate(classes):
        files = sorted((fer2013_dir / "test" / c.lower()).glob(f"{split_prefix}_*.jpg"))[:per_class]
        out += [(f, k) for f in files]
    return out


def write_slideshow(path: Path, faces: Sequence[np.ndarray], seconds_each: float, fps: float = 15.0,
                    size: tuple[int, int] = (640, 480), face_px: int = 240) -> int:
    """An MJPG AVI showing each face for ``seconds_each`` seconds; returns the frame count."""
    from training.session_video import write_face_video

    return write_face_video(path, faces, seconds_each, fps, size, face_px)


def write_frames_video(path: Path, n_frames: int, fps: float = 15.0, size: tuple[int, int] = (160, 120)) -> Path:
    """A tiny MJPG AVI of ``n_frames`` plain numbered frames (no face: replays of it are fast).

    Frame i has grey level ``(20 * i) % 250``, so a reader can tell frames apart. ``n_frames`` 0 gives a
    container OpenCV opens but that holds no frame.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write MJPG video here")
    for i in range(n_frames):
        frame = np.full((size[1], size[0], 3), (20 * i) % 250, np.uint8)
        writer.write(frame)
    writer.release()
    return path


def truncate_file(path: Path, fraction: float) -> Path:
    """Cut a file to ``fraction`` of its bytes, as an interrupted copy or download leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    return path
