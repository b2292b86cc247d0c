"""``fer-train bench``: ONNX latency per provider, batch size and precision -> latency.csv.

Medians and 90th percentiles over repeated runs after a warm-up; the figures
are what a user of this machine would see, not a unit-test assertion.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.model_folder import load_model_folder
from fer_models.onnx_runtime import PROVIDER_ALIASES, available_providers, choose_providers
from fer_models.session_log import CsvLogWriter

LATENCY_COLUMNS = ("model", "precision", "provider", "batch", "median_ms", "p90_ms", "runs", "threads", "machine")


def time_model(folder: Path, provider: str, batch: int, runs: int = 200, warmup: int = 20,
               threads: int | None = None) -> dict[str, Any]:
    provider = PROVIDER_ALIASES.get(provider.lower(), provider) or provider  # "cpu" -> CPUExecutionProvider
    model = load_model_folder(folder, providers=[provider], intra_op_threads=threads)
    if model.provider != provider:
        raise RuntimeError(f"{provider} was asked for but onnxruntime chose {model.provider}")
    c, s = model.card.channels, model.card.input_size
    x = np.random.default_rng(0).normal(0, 1, (batch, c, s, s)).astype(np.float32)
    for _ in range(warmup):
        model.logits(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.logits(x)
        times.append((time.perf_counter() - t0) * 1e3)
    arr = np.asarray(times)
    return {"model": model.model_id, "precision": model.card.precision, "provider": provider, "batch": batch,
            "median_ms": round(float(np.median(arr)), 4), "p90_ms": round(float(np.percentile(arr, 90)), 4),
            "runs": runs, "threads": threads or 0, "machine": f"{platform.machine()} {platform.node()}"}


def bench(folders: Sequence[Path], batches: Sequence[int] = (1, 32), providers: Sequence[str] | None = None,
          runs: int = 200, threads: int | None = None, out_csv: Path | None = None) -> list[dict[str, Any]]:
    providers = list(providers) if providers else [p for p in choose_providers("auto")
                                                   if p in available_providers()]
    rows = []
    writer = CsvLogWriter(out_csv, LATENCY_COLUMNS) if out_csv else None
    try:
        for folder in folders:
            for provider in providers:
                for b in batches:
                    row = time_model(Path(folder), provider, b, runs=runs if b == 1 else max(20, runs // 5),
                                     threads=threads)
                    rows.append(row)
                    if writer:
                        writer.write(row)
                    print(f"{row['model']:>32} {row['precision']:>5} {provider:>22} batch {b:>3}: "
                          f"median {row['median_ms']:.3f} ms, p90 {row['p90_ms']:.3f} ms")
    finally:
        if writer:
            writer.close()
    return rows


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="ONNX latency (median/p90) per provider, batch and precision")
    p.add_argument("model_dirs", type=Path, nargs="+", help="model folders (e.g. EXPORT/fp32 EXPORT/fp16)")
    p.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    p.add_argument("--providers", nargs="+", help="default: every provider this onnxruntime offers")
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: onnxruntime's choice)")
    p.add_argument("--csv", type=Path, default=Path("latency.csv"), help="rows are appended here")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    bench(args.model_dirs, args.batch, args.providers, args.runs, args.threads, args.csv)
    return 0
