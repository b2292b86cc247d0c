"""Device, precision, seeding and distributed set-up, decided in one place.

The same training code runs on a laptop CPU, one GPU, or several processes under
``torchrun``: this module reads the environment ``torchrun`` sets (RANK,
WORLD_SIZE, LOCAL_RANK), picks gloo on CPU and NCCL on GPUs, and answers the
questions the loop asks (which device, which autocast dtype, am I rank 0).
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    amp_dtype: torch.dtype | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def amp_name(self) -> str:
        return {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context for forward passes (a no-op when AMP is off)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: the CUDA device of this rank when CUDA is available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda asked for, but CUDA is not available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device(name)


# bfloat16 autocast on CPU pays only where oneDNN has bf16 (AVX512-BF16 / AMX) kernels for the net's
# layers: dense 3x3 convolutions (ResNet, VGG-style) gain, depthwise-heavy nets (MobileNetV3,
# EfficientNet) lose. Measured per backbone with benchmarks/train_step_cost.py (docs/benchmarks.md).
CPU_BF16_FAMILIES = ("resnet", "convnext", "vgg")


def cpu_has_bf16() -> bool:
    """Whether this CPU runs bfloat16 matrix kernels natively (AVX512-BF16 or AMX)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - older torch
        return False


def pick_amp(mode: str, device: torch.device, family: str | None = None) -> torch.dtype | None:
    """AMP dtype for the forward pass.

    CUDA: ``auto`` = bf16 where supported, else fp16. CPU: ``auto`` = bf16 for the backbone
    families in ``CPU_BF16_FAMILIES`` when the CPU has native bf16 kernels, else off; ``bf16``
    forces it; fp16 autocast is never used on CPU (no fast kernels, needs a scaler).
    """
    if mode == "off":
        return None
    if device.type != "cuda":
        if mode == "fp16":
            print(f"warning: --amp fp16 ignored on {device.type}; training in fp32", file=sys.stderr)
            return None
        if mode == "bf16":
            return torch.bfloat16
        return torch.bfloat16 if (family in CPU_BF16_FAMILIES and device.type == "cpu" and cpu_has_bf16()) else None
    if mode == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mode]


def setup_runtime(device: str = "auto", amp: str = "auto", family: str | None = None) -> Runtime:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1) and pick device and AMP."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = pick_device(device, local)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(hours=2))
    return Runtime(device=dev, rank=rank, world_size=world, local_rank=local, amp_dtype=pick_amp(amp, dev, family))


def teardown_runtime(rt: Runtime) -> None:
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def library_versions() -> dict[str, Any]:
    """Versions that decide whether a run can be reproduced bit for bit."""
    import timm

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
    }
    try:
        import cv2

        out["opencv"] = cv2.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


@contextlib.contextmanager
def maybe_no_sync(model: torch.nn.Module, skip_sync: bool) -> Iterator[None]:
    """DDP's ``no_sync`` for gradient-accumulation micro-steps; a no-op otherwise."""
    if skip_sync and hasattr(model, "no_sync"):
        with model.no_sync():
            yield
    else:
        yield
