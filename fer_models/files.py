"""Reading and writing the project's files: atomic writes, JSON, SHA-256, and "a folder or its file".

Every artifact (model cards, calibration, index, soft labels, checkpoints, run records)
is written through a temporary sibling and a rename, so a crash or a full disk never
leaves half a file where a whole one was, and every failure is an ``ArtifactError``
(``ArtifactWriteError`` for writes) that starts with the file's path.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

from fer_models.errors import ArtifactError, ArtifactWriteError

CHUNK = 1 << 20


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


# ----------------------------------------------------------------------------- atomic writes

@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary sibling of ``path`` for the block to write; renamed onto ``path`` when the block ends.

    If the block raises, the temporary file is removed and ``path`` is left as it was; the
    block's own errors pass through unchanged. The folder is created when missing. Failing to
    create it or to rename raises ArtifactWriteError naming the path.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactWriteError.from_os_error(path.parent, exc, "cannot create the folder") from exc
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}{suffix}")
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise ArtifactWriteError(path, f"cannot write ({_reason(exc)})") from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        try:
            with open(tmp, "xb") as fh:
                fh.write(data)
        except OSError as exc:  # read-only or full disk: the error names the file asked for, not the temporary
            raise ArtifactWriteError(path, f"cannot write ({_reason(exc)})") from exc
    return path


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (newlines as given, not translated); returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


# ----------------------------------------------------------------------------- JSON

def read_text(path: str | Path) -> str:
    """A UTF-8 text file (a BOM, as spreadsheet tools write one, is dropped); every failure names the file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "file not found")
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ArtifactError(path, f"not UTF-8 text ({exc})") from None
    except OSError as exc:
        raise ArtifactError(path, f"cannot read ({_reason(exc)})") from None


def read_json(path: str | Path) -> Any:
    """Read a UTF-8 JSON file, turning every failure into an ArtifactError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ArtifactError(path, f"cannot be read ({_reason(exc)})") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(path, f"not valid UTF-8 JSON ({exc})") from exc


def read_json_object(path: str | Path, missing_ok: bool = False) -> dict[str, Any]:
    """``read_json`` for files that must hold an object; ``{}`` for a missing file when ``missing_ok``."""
    path = Path(path)
    if missing_ok and not path.exists():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise ArtifactError(path, "expected a JSON object")
    return data


def write_json(path: str | Path, payload: Any) -> Path:
    """Write pretty UTF-8 JSON atomically (keys as given, in insertion order); returns the path."""
    return atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------- hashes

def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of a byte string."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's content, read in chunks."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "file not found")
    h = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(CHUNK), b""):
                h.update(block)
    except OSError as exc:
        raise ArtifactError(path, f"cannot be read ({_reason(exc)})") from exc
    return h.hexdigest()


# ----------------------------------------------------------------------------- paths

def resolve_file(path: str | Path, name: str) -> Path:
    """The file a "folder or file" argument names: ``path / name`` when ``path`` is a folder, else ``path``."""
    path = Path(path)
    return path / name if path.is_dir() else path
