"""Cost of one training step per backbone, input side and numeric setting on this CPU, to plan runs.

Usage:
    python benchmarks/train_step_cost.py [--threads 2] [--batch 128] [--steps 4]
        [--case resnet18:48:2 ...] [--modes fp32,bf16,fp32-cl,bf16-cl] [--two-procs] [--data]

Each case is ``backbone:side[:stem_stride[:last_stride]]`` (an empty stem field keeps the native
stem: ``mobilenetv3_large_100:48::1``), built as fer-train builds it (1 gray channel). Modes: ``fp32`` / ``bf16`` (bfloat16 autocast on CPU), ``-cl`` = channels-last
memory format, a ``-compile`` suffix = ``torch.compile`` (inductor; its compile time, minutes on
this CPU, is printed apart and kept out of the step time). Prints the median step time (forward +
backward + AdamW, after one warm-up step, two when compiled) on random data and the implied
seconds per FER2013 epoch (224 steps).

``--two-procs`` also times two processes with one thread each running the same step at
once (the way the recipe runs two trainings side by side) and prints their throughput
against one process with two threads. ``--data`` times fer-train's input path on real
FER2013 faces (decoded images in memory, per-item augmentation and ``prepare_face``),
to set against the step time.
The last line is JSON with every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from typing import Any

import torch

from training.models import create_model

DEFAULT_CASES = ["resnet18:48:2", "resnet18:48", "resnet18:64", "resnet50:48", "convnext_tiny:48:2",
                 "efficientnet_b3:48", "mobilenetv3_large_100:48", "mobilenetv3_large_100:48:1",
                 "mobilenetv3_large_100:64", "fervgg_s:48", "fervgg_m:48"]
DEFAULT_MODES = "fp32,fp32-cl,bf16-cl"


def parse_case(text: str) -> tuple[str, int, int | None, int | None]:
    parts = text.split(":") + ["", ""]
    return parts[0], int(parts[1]), (int(parts[2]) if parts[2] else None), (int(parts[3]) if parts[3] else None)


def step_seconds(case: str, mode: str, batch: int, steps: int) -> float:
    backbone, side, stem, last = parse_case(case)
    compiled = mode.endswith("-compile")
    mode = mode.removesuffix("-compile")
    cl = mode.endswith("-cl")
    bf16 = mode.startswith("bf16")
    model = create_model(backbone, 7, 1, side, stem_stride=stem, last_stride=last)
    x = torch.randn(batch, 1, side, side)
    if cl:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters())
    forward = torch.compile(model) if compiled else model
    y = torch.randint(0, 7, (batch,))
    times = []
    warm = 2 if compiled else 1  # a compiled model's second step can still recompile
    for _ in range(steps + warm):
        t0 = time.perf_counter()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x)
        torch.nn.functional.cross_entropy(logits.float(), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    if compiled:
        print(f"  {case} {mode}-compile: first step (compiling) {times[0]:.0f} s", flush=True)
    return statistics.median(times[warm:])


def _worker(case: str, mode: str, batch: int, steps: int, q: Any) -> None:
    torch.set_num_threads(1)
    q.put(step_seconds(case, mode, batch, steps))


def two_process_seconds(case: str, mode: str, batch: int, steps: int) -> float:
    """Median step time of each of two single-thread processes running at the same time."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(case, mode, batch, steps, q)) for _ in range(2)]
    for p in procs:
        p.start()
    res = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return max(res)


def data_pipeline(batch: int, side: int, batches: int) -> dict[str, float]:
    """Seconds per batch of fer-train's input path: decoded images held in memory (ImageStore), each
    item augmented (one affine warp, photometric jitter, random erasing) and put through prepare_face
    (CLAHE, resize, normalise), then collated; to set against the model step."""
    import tempfile
    from pathlib import Path

    from torch.utils.data import DataLoader

    from training.data import AugmentConfig, FERDataset, make_crop_spec
    from training.index import build_index

    shared = Path(os.environ.get("FER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    with tempfile.TemporaryDirectory():
        index = build_index(shared / "data" / "fer2013", progress=False)
    pos = index.positions("train")[: batch * batches]
    ds = FERDataset(index, make_crop_spec(side), positions=pos, seed=0,
                    augment=AugmentConfig(erase_prob=0.25))  # decodes into memory here, not timed
    t0 = time.perf_counter()
    for _ in DataLoader(ds, batch_size=batch, num_workers=0):
        pass
    return {"per_item_s_per_batch": (time.perf_counter() - t0) / batches}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--case", action="append", default=None, help="backbone:side[:stem[:last]] (repeatable)")
    ap.add_argument("--modes", default=DEFAULT_MODES)
    ap.add_argument("--two-procs", action="store_true", help="also time 2 processes x 1 thread (best mode)")
    ap.add_argument("--data", action="store_true", help="also time the input pipeline")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    modes = args.modes.split(",")
    print(f"threads {args.threads}, batch {args.batch}, bf16 kernels: "
          f"{torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    results: list[dict[str, Any]] = []
    for case in args.case or DEFAULT_CASES:
        row: dict[str, Any] = {"case": case}
        for mode in modes:
            row[mode] = round(step_seconds(case, mode, args.batch, args.steps), 4)
        best = min(modes, key=lambda m: row[m])
        row["best"] = best
        if args.two_procs:
            row["two_procs_1thread"] = round(two_process_seconds(case, best, args.batch, args.steps), 4)
            # images/s of the whole machine: one 2-thread process vs two 1-thread processes
            row["img_s_1x2"] = round(args.batch / row[best], 1)
            row["img_s_2x1"] = round(2 * args.batch / row["two_procs_1thread"], 1)
        results.append(row)
        cells = "  ".join(f"{m} {row[m]:.3f}s" for m in modes)
        extra = (f"  | 2 procs x 1 thread {row['two_procs_1thread']:.3f}s each: {row['img_s_2x1']} img/s vs "
                 f"{row['img_s_1x2']} img/s" if args.two_procs else "")
        print(f"{case:>28}: {cells}  -> {best}, ~{row[best] * 224:.0f} s/epoch{extra}", flush=True)
    out: dict[str, Any] = {"threads": args.threads, "batch": args.batch, "steps": results}
    if args.data:
        out["data"] = data_pipeline(args.batch, 48, 8)
        print(f"data, batch {args.batch} at 48 px: {out['data']['per_item_s_per_batch'] * 1e3:.1f} ms per batch "
              "(in-memory images, per-item augmentation + prepare_face)", flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
