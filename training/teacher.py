"""``fer-train teacher``: train one timm backbone on the canonical index, resumable and torchrun-ready.

The training loop itself is ``training.loop.run_training`` (shared with ``fer-train
student``); a teacher trains with cross-entropy and ``--label-smoothing``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.loop import add_train_arguments, run_training


def add_parser(sub: Any) -> None:
    p = sub.add_parser("teacher", help="train a teacher backbone (resumable, torchrun-ready)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", required=True,
                   help="timm name: resnet18, resnet50, efficientnet_b3, convnext_tiny, mobilenetv3_large_100, vit_*, "
                        "or fervgg_s / fervgg_m (training/fer_vgg.py, VGG-style for 48 px faces)")
    add_train_arguments(p)
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    train_teacher(args)
    return 0


def train_teacher(args: Any) -> Path:
    """Train (or resume) one teacher as the arguments describe; returns the run folder."""
    return run_training(args, args.backbone)
