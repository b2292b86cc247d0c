from __future__ import annotations

import builtins
import errno
import hashlib
import json

import pytest

from fer_models.errors import ArtifactError, ArtifactWriteError
from fer_models.files import (atomic_path, atomic_write_bytes, atomic_write_text, read_json, read_json_object,
                              resolve_file, sha256_bytes, sha256_file, write_json)


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    path = atomic_write_bytes(tmp_path / "sub" / "a.bin", b"one")
    assert path.read_bytes() == b"one"
    atomic_write_text(path, "two\r\n")
    assert path.read_bytes() == b"two\r\n"  # newlines as given
    assert [p.name for p in path.parent.iterdir()] == ["a.bin"]


def test_a_failing_write_keeps_the_old_file_and_names_it(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "a.json", "old")
    real_open = builtins.open

    def refuse(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax+"):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refuse)
    with pytest.raises(ArtifactWriteError) as exc:
        write_json(path, {"new": 1})
    monkeypatch.undo()
    assert str(exc.value).startswith(f"{path}: ") and "No space left" in str(exc.value)
    assert isinstance(exc.value, OSError)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_an_error_inside_the_block_removes_the_temporary(tmp_path):
    target = tmp_path / "ckpt.pt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert list(tmp_path.iterdir()) == []


def test_a_file_where_the_folder_should_be_is_a_write_error(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ArtifactWriteError) as exc:
        write_json(tmp_path / "afile" / "b.json", {})
    assert "afile" in str(exc.value)


def test_json_is_utf8_with_keys_as_given(tmp_path):
    payload = {"zeta": 1, "ärger": "Wut", "alpha": [1.5, None]}
    path = write_json(tmp_path / "x.json", payload)
    text = path.read_text(encoding="utf-8")
    assert "ärger" in text and text.endswith("\n")
    assert list(json.loads(text)) == ["zeta", "ärger", "alpha"]
    assert read_json(path) == payload and read_json_object(path) == payload


def test_json_errors_name_the_file(tmp_path):
    with pytest.raises(ArtifactError, match="file not found"):
        read_json(tmp_path / "missing.json")
    assert read_json_object(tmp_path / "missing.json", missing_ok=True) == {}
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"{not json")
    with pytest.raises(ArtifactError) as exc:
        read_json(bad)
    assert str(exc.value).startswith(str(bad)) and "not valid UTF-8 JSON" in str(exc.value)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="expected a JSON object"):
        read_json_object(tmp_path / "list.json")


def test_hashes(tmp_path):
    data = b"abc" * 1_000_000  # several read chunks
    path = atomic_write_bytes(tmp_path / "blob", data)
    assert sha256_bytes(data) == sha256_file(path) == hashlib.sha256(data).hexdigest()
    with pytest.raises(ArtifactError, match="file not found"):
        sha256_file(tmp_path / "nothing")


def test_resolve_file_takes_a_folder_or_the_file_itself(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    assert resolve_file(folder, "model_card.json") == folder / "model_card.json"
    assert resolve_file(folder / "other.json", "model_card.json") == folder / "other.json"
    assert resolve_file(tmp_path / "new.json", "model_card.json") == tmp_path / "new.json"  # not there yet: the file
