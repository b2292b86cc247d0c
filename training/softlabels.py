"""Soft-label folders: a model's (or an ensemble's) outputs for every index row, in index order.

A folder is named ``<index name>-<first 8 hex of the fingerprint>`` and holds

- ``softlabels.npz``: ``logits`` (N, K) raw logits, ``probs`` (N, K) = softmax(logits / T),
  plus the ``sample_id``, ``label`` and ``split`` of every row, copied from the index so
  that a row can never be silently paired with another sample;
- ``alignment.json``: kind, index name and fingerprint, row count, classes, temperature,
  the producer (teacher checkpoint path and SHA-256, or ensemble members and weights),
  a hash of the arrays, the argmax accuracy per split measured at export, and the
  result of the alignment diagnostic (``fer-train check-alignment``);
- ``classes.json``.

Every consumer runs ``training.alignment.require_aligned`` on the folder first.

For ensembles (``kind`` ``ensemble_fused``) ``logits`` are pseudo-logits T * log(fused
probs), so softmax(logits / T) gives back the fused target exactly and consumers can
treat a fused folder like a teacher's. Split targets (``ensemble_split``) store
``member_logits`` and ``member_probs`` (M, N, K) with their ``weights`` instead.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.calibration import softmax
from fer_models.classes import write_classes_json, write_json
from fer_models.errors import ArtifactError

from training.artifacts import arrays_sha256, save_npz, sha256_file
from training.index import SPLITS, CanonicalIndex

SOFTLABELS_FILE = "softlabels.npz"
ALIGNMENT_FILE = "alignment.json"
KINDS = ("teacher", "student", "ensemble_fused", "ensemble_split")
DEFAULT_TEMPERATURE = 2.0


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def recorded_accuracy(probs: np.ndarray, index: CanonicalIndex) -> dict[str, float | None]:
    """Argmax accuracy per split of (N, K) scores in index order (None for an empty split)."""
    pred = np.asarray(probs).argmax(axis=1)
    out: dict[str, float | None] = {}
    for split in SPLITS:
        m = index.splits == split
        out[split] = float(np.mean(pred[m] == index.labels[m])) if m.any() else None
    return out


def fuse(member_probs: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Weighted average of member probabilities (M, N, K) -> (N, K)."""
    w = np.asarray(weights, dtype=np.float64)
    return np.tensordot(w, np.asarray(member_probs, dtype=np.float64), axes=1)


def _row_arrays(index: CanonicalIndex) -> dict[str, np.ndarray]:
    return {"sample_id": np.array(index.sample_ids), "label": index.labels.astype(np.int64),
            "split": index.splits.astype("<U5")}


def write_softlabels(out_dir: str | Path, index: CanonicalIndex, logits: np.ndarray, temperature: float,
                     kind: str = "teacher", producer: dict[str, Any] | None = None,
                     probs: np.ndarray | None = None) -> Path:
    """Write a soft-label folder for ``logits`` (N, K) given in index order; returns the folder."""
    if kind not in KINDS or kind == "ensemble_split":
        raise ValueError(f"kind must be one of {KINDS[:3]}")
    z = np.asarray(logits, dtype=np.float32)
    if z.shape != (len(index), len(index.classes)):
        raise ValueError(f"logits shape {z.shape} != ({len(index)}, {len(index.classes)})")
    p = softmax(z.astype(np.float64) / temperature).astype(np.float32) if probs is None else np.asarray(probs, np.float32)
    arrays = {"logits": z, "probs": p, **_row_arrays(index)}
    return _write_folder(out_dir, index, arrays, temperature, kind, producer or {}, recorded_accuracy(p, index))


def write_split_softlabels(out_dir: str | Path, index: CanonicalIndex, member_logits: np.ndarray,
                           weights: Sequence[float], member_names: Sequence[str], temperature: float,
                           producer: dict[str, Any] | None = None) -> Path:
    """Write split ensemble targets: each member's logits and probs at T, kept apart, with weights."""
    zs = np.asarray(member_logits, dtype=np.float32)
    if zs.ndim != 3 or zs.shape[1:] != (len(index), len(index.classes)) or len(weights) != len(zs):
        raise ValueError(f"member logits shape {zs.shape} does not fit {len(weights)} members x {len(index)} rows")
    ps = softmax(zs.astype(np.float64) / temperature).astype(np.float32)
    arrays = {"member_logits": zs, "member_probs": ps, "weights": np.asarray(weights, dtype=np.float64),
              "member_names": np.array(list(member_names)), **_row_arrays(index)}
    acc = recorded_accuracy(fuse(ps, weights), index)
    return _write_folder(out_dir, index, arrays, temperature, "ensemble_split", producer or {}, acc)


def _write_folder(out_dir: str | Path, index: CanonicalIndex, arrays: dict[str, np.ndarray], temperature: float,
                  kind: str, producer: dict[str, Any], accuracy: dict[str, float | None]) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_npz(out / SOFTLABELS_FILE, **arrays)
    write_classes_json(out, index.classes, dataset=index.name)
    write_json(out / ALIGNMENT_FILE, {
        "kind": kind,
        "index_name": index.name,
        "index_fingerprint": index.fingerprint,
        "index_short_name": index.short_name,
        "n_rows": len(index),
        "classes": list(index.classes),
        "temperature": float(temperature),
        "arrays_file": SOFTLABELS_FILE,
        "arrays_sha256": arrays_sha256(arrays),
        "recorded_accuracy": accuracy,
        "accuracy_rule": "argmax of probs (fused probs for ensembles) against the index labels, per split",
        "created": now_iso(),
        **producer,
        "diagnostic": {"status": "not_run"},
    })
    return out


# ----------------------------------------------------------------------------- teacher export

def export_softlabels(run_dir: str | Path, index_dir: str | Path, out: str | Path | None = None,
                      temperature: float = DEFAULT_TEMPERATURE, checkpoint: str = "best.pt",
                      batch_size: int = 256, device: str = "auto", data_root: str | Path | None = None,
                      diagnostic_rows: int = 64, progress: bool = True) -> Path:
    """Predict every index row with a run's checkpoint and write its soft-label folder.

    The folder goes to ``out`` (or ``RUN_DIR/softlabels``) under ``<index>-<fp8>``; the
    alignment diagnostic (recomputing ``diagnostic_rows`` random rows) runs right away.
    """
    from training.alignment import check_alignment
    from training.data import FERDataset, checkpoint_crop_spec
    from training.evaluate import load_for_inference, predict_logits
    from training.index import load_index

    run_dir = Path(run_dir)
    index = load_index(index_dir)
    model, ck, ckpt, dev, cl = load_for_inference(run_dir, checkpoint, index.classes, device)
    spec = checkpoint_crop_spec(ck, ckpt)
    ds = FERDataset(index, spec, root=data_root, progress=progress)
    logits, pos = predict_logits(model, ds, batch_size, dev, progress=progress, channels_last=cl)
    if not np.array_equal(pos, np.arange(len(index))):
        raise RuntimeError("prediction order differs from index order")  # guards the export itself
    base = Path(out) if out is not None else run_dir / "softlabels"
    folder = base / index.short_name
    kind = "student" if ck.get("role") == "student" else "teacher"
    producer = {"producer": {"run_dir": str(run_dir.resolve()), "checkpoint": str(ckpt.resolve()),
                             "checkpoint_sha256": sha256_file(ckpt), "backbone": ck["backbone"],
                             "input_size": ck["input_size"], "in_chans": ck["in_chans"],
                             "stem_stride": ck.get("stem_stride"), "epoch": ck.get("epoch"),
                             "trained_on_index": ck.get("index_fingerprint"), "data_root": str(data_root or index.source)}}
    write_softlabels(folder, index, logits, temperature, kind, producer)
    result = check_alignment(folder, index, n_rows=diagnostic_rows, data_root=data_root)
    acc = ", ".join(f"{k} {v:.4f}" for k, v in result["recorded_accuracy"].items() if v is not None)
    print(f"soft labels ({len(index)} rows, T={temperature}) -> {folder}\n  argmax accuracy: {acc}\n"
          f"  alignment diagnostic: {result['status']}")
    if result["status"] != "passed":
        raise ArtifactError(folder, "alignment diagnostic failed right after export: " + "; ".join(result["problems"]))
    return folder


def add_parser(sub: Any) -> None:
    p = sub.add_parser("softlabels", help="export probabilities at T and logits for every index row")
    p.add_argument("run_dir")
    p.add_argument("--index", required=True)
    p.add_argument("--out", default=None, help="parent folder (default RUN_DIR/softlabels)")
    p.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
    p.add_argument("--checkpoint", default="best.pt")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--data", default=None, help="data root if it moved since the index was built")
    p.add_argument("--diagnostic-rows", type=int, default=64, help="rows recomputed by the alignment diagnostic")
    p.set_defaults(func=lambda a: (export_softlabels(a.run_dir, a.index, a.out, a.temperature, a.checkpoint,
                                                     a.batch_size, a.device, a.data, a.diagnostic_rows), 0)[1])
