"""Arrays that travel between training steps: npz files and a hash of their numbers.

Hashes are what let a later step prove it is looking at the same numbers an
earlier step wrote (a soft-label array), instead of trusting a path or a shape,
which is how the earlier scripts went wrong. Files in general (atomic writes,
JSON, file hashes) are ``fer_models.files``.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Mapping

import numpy as np

from fer_models.errors import ArtifactError
from fer_models.files import atomic_write_bytes


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over named arrays (name, dtype, shape and bytes), in sorted name order.

    Independent of how the arrays were stored (npz compression, file order), so it
    identifies the numbers themselves.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        arr = np.ascontiguousarray(arrays[name])
        if arr.dtype.kind in "OU":
            payload = "\n".join(str(v) for v in arr.reshape(-1)).encode("utf-8")
            dtype = "str"
        else:
            payload = arr.tobytes()
            dtype = arr.dtype.str
        h.update(f"{name}|{dtype}|{arr.shape}|".encode())
        h.update(payload)
    return h.hexdigest()


def save_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Save arrays to a compressed npz atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def load_npz(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load every array of an npz (no pickles), refusing files that lack ``required`` keys."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile/ValueError/OSError: all mean "not a readable npz"
        raise ArtifactError(path, f"not a readable npz file ({exc})") from exc
    missing = [k for k in required if k not in out]
    if missing:
        raise ArtifactError(path, f"lacks arrays {missing}; has {sorted(out)}")
    return out
