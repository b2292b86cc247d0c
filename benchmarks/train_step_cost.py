"""Cost of one training step per backbone and input side on this machine (CPU), to plan CPU runs.

Usage: python benchmarks/train_step_cost.py [--threads 2] [--batch 128] [--steps 4]

Builds each model as fer-train does (1 gray channel, native stem, channels-last),
runs forward + backward + AdamW on random data, and prints the median step time
(after one warm-up step) and the implied seconds per FER2013 epoch (224 steps).
Data loading is not included; real epochs were 10-30% slower.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from training.models import create_model

CASES = [("resnet18", 48), ("resnet18", 32), ("resnet18", 24), ("resnet50", 32), ("convnext_tiny", 48),
         ("convnext_tiny", 32), ("efficientnet_b3", 48), ("efficientnet_b3", 24),
         ("mobilenetv3_large_100", 48), ("mobilenetv3_large_100", 32)]


def step_seconds(backbone: str, side: int, batch: int, steps: int) -> float:
    model = create_model(backbone, 7, 1, side).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters())
    x = torch.randn(batch, 1, side, side).to(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,))
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, batch {args.batch}")
    for backbone, side in CASES:
        s = step_seconds(backbone, side, args.batch, args.steps)
        print(f"{backbone:>22} {side:>3} px: {s:.2f} s/step, ~{s * 224:.0f} s/epoch", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
