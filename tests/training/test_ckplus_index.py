"""CK+ index: FER7 mapping with contempt left out, a deterministic split by subject, a canonical index."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_models.classes import FER7
from fer_models.errors import ArtifactError
from training.ckplus_index import (build_ckplus_index, check_subject_split, split_subjects, subject_of,
                                   write_ckplus_index)
from training.cli import main
from training.index import compute_fingerprint, load_index

CLASSES = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")


def fake_ckplus(root: Path, n_subjects: int = 20, seed: int = 0) -> Path:
    """Synthetic CK+ tree: each subject posing 2-3 classes, 2 frames per sequence."""
    rng = np.random.default_rng(seed)
    for s in range(n_subjects):
        for seq, cls in enumerate(rng.choice(CLASSES, size=int(rng.integers(2, 4)), replace=False)):
            (root / cls).mkdir(parents=True, exist_ok=True)
            for frame in (10, 11):
                img = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                cv2.imwrite(str(root / cls / f"S{100 + s:03d}_{seq + 1:03d}_{frame:08d}.png"), img)
    return root


def test_subject_of_and_bad_names():
    assert subject_of(Path("anger/S010_004_00000017.png")) == "S010"
    with pytest.raises(ArtifactError, match="S<subject>_<sequence>_<frame>"):
        subject_of(Path("anger/face_01.png"))


def test_split_is_by_subject_deterministic_and_has_the_requested_shares():
    subs = [f"S{i:03d}" for i in range(100)]
    a = split_subjects(subs)
    assert a == split_subjects(list(reversed(subs)))  # order of discovery does not matter
    counts = {s: sum(v == s for v in a.values()) for s in ("train", "val", "test")}
    assert counts == {"test": 40, "val": 20, "train": 40}
    assert split_subjects(subs, salt="other") != a
    with pytest.raises(ValueError):
        split_subjects(subs, 0.7, 0.4)


def test_index_maps_classes_leaves_contempt_out_and_keeps_subjects_together(tmp_path):
    root = fake_ckplus(tmp_path / "ck")
    index, record = build_ckplus_index(root, eval_fraction=0.3, val_fraction=0.2)
    n_contempt = len(list((root / "contempt").glob("*.png")))
    n_all = sum(1 for _ in root.rglob("*.png"))
    assert len(index) == n_all - n_contempt and record["left_out"]["images"] == {"contempt": n_contempt}
    assert not any(sid.startswith("contempt/") for sid in index.sample_ids)
    for sid, lab in zip(index.sample_ids, index.labels):
        folder = sid.split("/")[0]
        expect = {"anger": "Angry", "disgust": "Disgust", "fear": "Fear", "happy": "Happy", "sadness": "Sad",
                  "surprise": "Surprise"}[folder]
        assert FER7[lab] == expect
    assert index.counts()["train"]["Neutral"] == 0 and record["absent_fer7_classes"] == ["Neutral"]
    check_subject_split(index)
    assert record["subjects_per_split"] == {"train": 10, "val": 4, "test": 6}

    out = write_ckplus_index(index, record, tmp_path / "idx")
    back = load_index(out)  # a canonical index every fer-train command reads
    assert back.fingerprint == index.fingerprint == compute_fingerprint(back.sample_ids, back.labels)
    meta = json.loads((out / "index.json").read_text())
    assert meta["ckplus"]["split_by"] == "subject" and meta["format"] == "ckplus-subjects"
    assert sorted(meta["ckplus"]["subjects"]["test"]) == sorted(
        {subject_of(Path(s)) for s, sp in zip(back.sample_ids, back.splits) if sp == "test"})
    # the same data gives the same index, bit for bit
    again, _ = build_ckplus_index(root, eval_fraction=0.3, val_fraction=0.2)
    assert again.fingerprint == index.fingerprint and again.rows_sha256() == index.rows_sha256()


def test_subject_leak_is_refused(tmp_path):
    root = fake_ckplus(tmp_path / "ck", n_subjects=6)
    index, _ = build_ckplus_index(root, 0.4, 0.2)
    splits = index.splits.copy()
    first = subject_of(Path(index.sample_ids[0]))
    rows = [i for i, s in enumerate(index.sample_ids) if subject_of(Path(s)) == first]
    splits[rows[-1]] = "test" if splits[rows[0]] != "test" else "train"
    index.splits = splits
    with pytest.raises(ArtifactError, match=f"subject {first} has rows in both"):
        check_subject_split(index)


def test_unknown_class_folder_and_bad_file_names_are_refused(tmp_path):
    root = fake_ckplus(tmp_path / "ck", n_subjects=4)
    (root / "smirk").mkdir()
    with pytest.raises(ArtifactError, match="smirk.*unknown CK\\+ class folder"):
        build_ckplus_index(root)
    (root / "smirk").rmdir()
    cv2.imwrite(str(root / "anger" / "face.png"), np.zeros((48, 48), np.uint8))
    with pytest.raises(ArtifactError, match="face.png"):
        build_ckplus_index(root)


def test_cli_writes_and_refuses_to_overwrite(tmp_path, capsys):
    root = fake_ckplus(tmp_path / "ck")
    out = tmp_path / "idx"
    assert main(["index-ckplus", "--data", str(root), "--out", str(out)]) == 0
    assert "left out" in capsys.readouterr().out
    assert main(["index-ckplus", "--data", str(root), "--out", str(out)]) == 2
    assert "already holds an index" in capsys.readouterr().err


def test_real_ckplus_folder(shared_dir):
    root = shared_dir / "data" / "ckplus48"
    if not root.is_dir():
        pytest.skip(f"{root} not present")
    index, record = build_ckplus_index(root)
    n_contempt = len(list((root / "contempt").iterdir()))
    assert len(index) == sum(1 for p in root.rglob("*.png")) - n_contempt
    check_subject_split(index)
    shares = record["fraction_of_subjects"]
    assert shares["test"] == pytest.approx(0.4, abs=0.01) and shares["val"] == pytest.approx(0.2, abs=0.01)
    assert all(n > 0 for s in ("train", "val", "test") for c, n in index.counts()[s].items() if c != "Neutral")
