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

For ensembles (``kind`` ``ensemble_fused``) ``logits`` are pseudo-logits T * log(fused
probs), so softmax(logits / T) gives back the fused target exactly and consumers can
treat a fused folder like a teacher's. Split targets (``ensemble_split``) store
``member_logits`` and ``member_probs`` (M, N, K) with their ``weights`` instead.

This module writes and finds such folders; ``training.alignment`` proves one belongs to
an index (every consumer runs ``require_aligned`` first) and ``training.softlabels``
exports a trained run's.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.calibration import softmax
from fer_models.classes import write_classes_json
from fer_models.errors import ArtifactError
from fer_models.files import read_json, write_json

from training.artifacts import arrays_sha256, save_npz
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


# ----------------------------------------------------------------------------- reading

@dataclass
class SoftLabels:
    """A soft-label folder that passed the gate."""

    path: Path
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def kind(self) -> str:
        return str(self.meta["kind"])

    @property
    def temperature(self) -> float:
        return float(self.meta["temperature"])

    def probs(self) -> np.ndarray:
        """(N, K) targets at T; for split targets, their weighted fusion."""
        if self.kind == "ensemble_split":
            return fuse(self.arrays["member_probs"], self.arrays["weights"])
        return self.arrays["probs"]


def resolve_softlabel_dir(path: str | Path, index: CanonicalIndex) -> Path:
    """A soft-label folder itself, or the one for ``index`` inside a run folder (RUN/softlabels/<name>)."""
    path = Path(path)
    if (path / ALIGNMENT_FILE).is_file():
        return path
    candidate = path / "softlabels" / index.short_name
    if (candidate / ALIGNMENT_FILE).is_file():
        return candidate
    raise ArtifactError(path, f"no {ALIGNMENT_FILE} here nor in softlabels/{index.short_name}/: export soft labels "
                              f"for this index first (fer-train softlabels RUN_DIR --index ...)")


def read_alignment_meta(folder: Path) -> dict[str, Any]:
    meta = read_json(folder / ALIGNMENT_FILE)
    need = ("kind", "index_fingerprint", "n_rows", "classes", "temperature", "arrays_sha256", "recorded_accuracy")
    if not isinstance(meta, dict) or any(k not in meta for k in need):
        raise ArtifactError(folder / ALIGNMENT_FILE, f"not an alignment.json (needs {list(need)})")
    if meta["kind"] not in KINDS:
        raise ArtifactError(folder / ALIGNMENT_FILE, f"unknown kind {meta['kind']!r}")
    return meta
