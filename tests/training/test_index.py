"""Canonical index: deterministic order and fingerprint, tamper detection, corrupt files, the three formats."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_models.classes import FER7, read_classes_json
from fer_models.errors import ArtifactError
from training.cli import main
from training.index import build_index, compute_fingerprint, load_index, write_index


def _rewrite_csv(index_dir: Path, edit) -> None:
    path = index_dir / "index.csv"
    rows = list(csv.reader(path.open(newline="")))
    rows = [rows[0]] + edit(rows[1:])
    with path.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def test_index_layout_order_and_fingerprint(mini_tree, mini_index):
    idx = mini_index
    assert len(idx) == 56 and idx.format == "fer2013-folders"
    assert idx.classes == list(FER7)
    # split order train, val, test, then sample id
    splits = idx.splits.tolist()
    assert splits == sorted(splits, key=["train", "val", "test"].index)
    for s in ("train", "val", "test"):
        ids = [idx.sample_ids[p] for p in idx.positions(s)]
        assert ids == sorted(ids)
    assert all(idx.sample_ids[p].split("/")[-1].startswith("PublicTest_") for p in idx.positions("val"))
    assert all(idx.sample_ids[p].split("/")[-1].startswith("PrivateTest_") for p in idx.positions("test"))
    # labels follow FER7 order from folder names
    for p in range(len(idx)):
        assert FER7[idx.labels[p]].lower() == idx.sample_ids[p].split("/")[1]
    # fingerprint = sha256 of the ordered "sample_id\tlabel" lines
    text = "\n".join(f"{s}\t{l}" for s, l in zip(idx.sample_ids, idx.labels.tolist()))
    assert idx.fingerprint == hashlib.sha256(text.encode()).hexdigest()
    # stable: a second build gives the same fingerprint and content hashes
    again = build_index(mini_tree, progress=False)
    assert again.fingerprint == idx.fingerprint and again.sha256 == idx.sha256
    assert idx.short_name == f"fer2013-{idx.fingerprint[:8]}"


def test_fingerprint_detects_order_and_label_changes(mini_index):
    ids, labels = list(mini_index.sample_ids), mini_index.labels.copy()
    base = compute_fingerprint(ids, labels)
    swapped = ids[:]
    swapped[0], swapped[1] = swapped[1], swapped[0]
    assert compute_fingerprint(swapped, labels) != base
    relabelled = labels.copy()
    relabelled[3] = (relabelled[3] + 1) % 7
    assert compute_fingerprint(ids, relabelled) != base


def test_written_files(mini_index, tmp_path):
    write_index(mini_index, tmp_path / "ix")
    meta = json.loads((tmp_path / "ix" / "index.json").read_text())
    assert meta["fingerprint"] == mini_index.fingerprint
    assert meta["split_sizes"] == {"train": 28, "val": 14, "test": 14}
    assert meta["counts"]["val"]["Happy"] == 2 and meta["n_corrupt"] == 0
    assert read_classes_json(tmp_path / "ix") == list(FER7)
    assert (tmp_path / "ix" / "index.csv").read_text().splitlines()[0] == "sample_id,label,split,sha256"
    assert load_index(tmp_path / "ix").fingerprint == mini_index.fingerprint


@pytest.mark.parametrize("edit, message", [
    (lambda rows: [rows[1], rows[0], *rows[2:]], "canonical order"),
    (lambda rows: [[r[0], str((int(r[1]) + 1) % 7) if i == 5 else r[1], r[2], r[3]] for i, r in enumerate(rows)],
     "fingerprint"),
    (lambda rows: [[r[0], r[1], r[2], "0" * 64 if i == 2 else r[3]] for i, r in enumerate(rows)], "rows_sha256"),
    (lambda rows: rows[:-1], "rows but index.json records"),
])
def test_tampered_index_refused(mini_index, tmp_path, edit, message):
    d = tmp_path / "ix"
    write_index(mini_index, d)
    _rewrite_csv(d, edit)
    with pytest.raises(ArtifactError, match=message):
        load_index(d)


def test_index_json_tampered_fingerprint_refused(mini_index, tmp_path):
    d = tmp_path / "ix"
    write_index(mini_index, d)
    meta = json.loads((d / "index.json").read_text())
    meta["fingerprint"] = "f" * 64
    (d / "index.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="edited after it was written"):
        load_index(d)


def test_corrupt_images_reported_by_name_or_skipped(mini_tree, tmp_path):
    tree = tmp_path / "fer"
    shutil.copytree(mini_tree, tree)
    victim = sorted((tree / "train" / "fear").glob("*.jpg"))[0]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    garbage = sorted((tree / "test" / "sad").glob("*.jpg"))[0]
    garbage.write_bytes(b"this is not an image")
    with pytest.raises(ArtifactError) as err:
        build_index(tree, progress=False)
    assert victim.name in str(err.value) or garbage.name in str(err.value)
    assert "--skip-corrupt" in str(err.value)
    idx = build_index(tree, skip_corrupt=True, progress=False)
    assert len(idx) == 54
    meta = idx.metadata()
    assert meta["n_corrupt"] == 2
    assert {Path(c["file"]).name for c in meta["corrupt"]} == {victim.name, garbage.name}
    assert not any(victim.name in s for s in idx.sample_ids)


def test_cli_index_and_corrupt_exit_code(mini_tree, tmp_path, capsys):
    assert main(["index", "--data", str(mini_tree), "--out", str(tmp_path / "ix")]) == 0
    assert load_index(tmp_path / "ix").fingerprint
    tree = tmp_path / "bad"
    shutil.copytree(mini_tree, tree)
    bad = sorted((tree / "train" / "happy").glob("*.jpg"))[0]
    bad.write_bytes(b"")
    assert main(["index", "--data", str(tree), "--out", str(tmp_path / "ix2")]) == 2
    assert bad.name in capsys.readouterr().err
    assert main(["index", "--data", str(tree), "--out", str(tmp_path / "ix2"), "--skip-corrupt"]) == 0
    assert json.loads((tmp_path / "ix2" / "index.json").read_text())["n_corrupt"] == 1


def test_fer2013_csv_format(mini_index, tmp_path):
    from training.data import get_store

    csv_path = tmp_path / "fer2013.csv"
    usage = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
    store = get_store(mini_index)
    with csv_path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["emotion", "pixels", "Usage"])
        for p in range(len(mini_index)):
            img = store.get(p)
            w.writerow([int(mini_index.labels[p]), " ".join(map(str, img.reshape(-1).tolist())),
                        usage[mini_index.splits[p]]])
    idx = build_index(tmp_path, progress=False)  # auto-detects fer2013.csv in the folder
    assert idx.format == "fer2013-csv" and len(idx) == len(mini_index) and idx.name == "fer2013"
    assert sorted(idx.labels.tolist()) == sorted(mini_index.labels.tolist())
    assert idx.sample_ids[0] == "Training/00000"
    write_index(idx, tmp_path / "ix")
    loaded = load_index(tmp_path / "ix")
    img = get_store(loaded).get(0)
    assert img.shape == (48, 48) and np.array_equal(img, store.get(0))


def test_generic_folders_format(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("validation", 2), ("test", 1)):
        for cls in ("Happy", "SAD"):
            d = tmp_path / "tree" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(d / f"img{i}.png"), rng.integers(0, 255, (40, 40), dtype=np.uint8))
    idx = build_index(tmp_path / "tree", progress=False)
    assert idx.format == "folders"
    assert idx.metadata()["split_sizes"] == {"train": 6, "val": 4, "test": 2}
    assert set(idx.labels.tolist()) == {FER7.index("Happy"), FER7.index("Sad")}
    (tmp_path / "tree" / "train" / "contempt").mkdir()
    with pytest.raises(ArtifactError, match="contempt"):
        build_index(tmp_path / "tree", progress=False)


def test_index_records_split_health_and_warns_about_a_blurred_split(mini_tree, tmp_path, capsys):
    """A copy whose Training split is Gaussian-blurred (as ../shared's once was) is named at indexing time."""
    import cv2

    assert main(["index", "--data", str(mini_tree), "--out", str(tmp_path / "ok")]) == 0
    health = json.loads((tmp_path / "ok" / "index.json").read_text())["health"]
    assert set(health["splits"]) == {"train", "val", "test"} and health["warnings"] == []
    assert health["splits"]["train"]["n_images"] == 28 and health["splits"]["val"]["size"] == "48x48"
    assert health["splits"]["train"]["sharpness_median"] > 10  # sharp faces: ~28
    assert "warning" not in capsys.readouterr().err

    tree = tmp_path / "blurred"
    shutil.copytree(mini_tree, tree)
    for f in (tree / "train").rglob("*.jpg"):
        img = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(f), cv2.GaussianBlur(img, (0, 0), 3.2))
    assert main(["index", "--data", str(tree), "--out", str(tmp_path / "bl")]) == 0
    warnings = json.loads((tmp_path / "bl" / "index.json").read_text())["health"]["warnings"]
    assert len(warnings) == 1 and "split 'train' looks blurred" in warnings[0]
    err = capsys.readouterr().err
    assert "warning:" in err and "split 'train' looks blurred" in err and "index.json" in err


def test_index_refuses_to_replace_an_existing_index_without_force(mini_tree, tmp_path, capsys):
    out = tmp_path / "ix"
    assert main(["index", "--data", str(mini_tree), "--out", str(out)]) == 0
    before = (out / "index.csv").read_bytes()
    (out / "index.csv").touch()
    assert main(["index", "--data", str(mini_tree), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds an index" in err and "--force" in err
    assert (out / "index.csv").read_bytes() == before
    assert main(["index", "--data", str(mini_tree), "--out", str(out), "--force"]) == 0
    assert "same fingerprint" in capsys.readouterr().out
    tree = tmp_path / "fewer"
    shutil.copytree(mini_tree, tree)
    sorted((tree / "train" / "happy").glob("*.jpg"))[0].unlink()
    assert main(["index", "--data", str(tree), "--out", str(out), "--force"]) == 0
    assert "will now be refused" in capsys.readouterr().err
