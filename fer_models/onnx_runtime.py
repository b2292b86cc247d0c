"""ONNX Runtime wrapper: provider choice with fallback, FP32/FP16, single or batched faces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from fer_models.errors import ArtifactError

PROVIDER_PREFERENCE = ("DmlExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {"auto": None, "cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                    "directml": "DmlExecutionProvider", "dml": "DmlExecutionProvider"}


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def choose_providers(requested: str | Sequence[str] | None = None) -> list[str]:
    """Requested providers that this onnxruntime offers, in preference order, always ending in CPU."""
    avail = available_providers()
    if requested is None or requested == "auto":
        wanted = list(PROVIDER_PREFERENCE)
    elif isinstance(requested, str):
        wanted = [PROVIDER_ALIASES.get(requested.lower(), requested)]
    else:
        wanted = [PROVIDER_ALIASES.get(r.lower(), r) for r in requested]
    chosen = [p for p in wanted if p in avail]
    if "CPUExecutionProvider" not in chosen and "CPUExecutionProvider" in avail:
        chosen.append("CPUExecutionProvider")
    return chosen


class OnnxClassifier:
    """One ONNX session with input ``input`` (N, C, S, S) and output ``logits`` (N, K)."""

    def __init__(self, path: str | os.PathLike, providers: str | Sequence[str] | None = None,
                 intra_op_threads: int | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(self.path, "ONNX model file not found")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # Idle worker threads must not spin: in the live app they would steal the CPU that
        # capture and face detection need between two inferences.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if intra_op_threads:
            opts.intra_op_num_threads = int(intra_op_threads)
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts,
                                                providers=choose_providers(providers))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ArtifactError(self.path, f"onnxruntime cannot load the model ({exc})") from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name: o for o in self.session.get_outputs()}
        if "input" not in inputs or "logits" not in outputs:
            raise ArtifactError(self.path, f"expected input 'input' and output 'logits', found inputs "
                                           f"{list(inputs)} and outputs {list(outputs)}")
        self.input_shape = list(inputs["input"].shape)
        self.output_shape = list(outputs["logits"].shape)
        self.input_dtype = np.float16 if "float16" in inputs["input"].type else np.float32
        self.precision = "fp16" if self.input_dtype == np.float16 else "fp32"

    @property
    def provider(self) -> str:
        """The provider actually running the model (the first one onnxruntime accepted)."""
        return self.session.get_providers()[0]

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Logits (N, K) as float32 for a float32 batch (N, C, S, S) or a single face (C, S, S)."""
        x = np.asarray(batch, dtype=np.float32)
        if x.ndim == 3:
            x = x[None]
        out = self.session.run(["logits"], {"input": x.astype(self.input_dtype, copy=False)})[0]
        return np.asarray(out, dtype=np.float32)
