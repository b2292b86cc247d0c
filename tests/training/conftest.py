"""Small but real FER2013 subsets (copied into tmp folders) and hand-made soft-label helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fer_models.classes import FER7

pytest.importorskip("torch")
pytest.importorskip("timm")

PREFIX = {"train": "Training", "val": "PublicTest", "test": "PrivateTest"}
FOLDER = {"train": "train", "val": "test", "test": "test"}


def copy_fer_subset(src: Path, dst: Path, per_class: dict[str, int]) -> Path:
    """Copy the first n images (by name) of each class and split into a Kaggle-layout tree."""
    for split, n in per_class.items():
        for cls in FER7:
            files = sorted((src / FOLDER[split] / cls.lower()).glob(f"{PREFIX[split]}_*.jpg"))[:n]
            target = dst / FOLDER[split] / cls.lower()
            target.mkdir(parents=True, exist_ok=True)
            for f in files:
                shutil.copyfile(f, target / f.name)
    return dst


@pytest.fixture(scope="session")
def mini_tree(tmp_path_factory, fer2013_dir) -> Path:
    """56 images: 4 train, 2 val, 2 test per class."""
    return copy_fer_subset(fer2013_dir, tmp_path_factory.mktemp("mini") / "fer2013",
                           {"train": 4, "val": 2, "test": 2})


@pytest.fixture(scope="session")
def mini_index(tmp_path_factory, mini_tree):
    from training.index import build_index, write_index

    out = tmp_path_factory.mktemp("mini_index") / "index"
    write_index(build_index(mini_tree, progress=False), out)
    from training.index import load_index

    return load_index(out)


@pytest.fixture(scope="session")
def train_tree(tmp_path_factory, fer2013_dir) -> Path:
    """350 images: 30 train, 10 val, 10 test per class (the end-to-end and teacher tests)."""
    return copy_fer_subset(fer2013_dir, tmp_path_factory.mktemp("train") / "fer2013",
                           {"train": 30, "val": 10, "test": 10})


@pytest.fixture(scope="session")
def train_index_dir(tmp_path_factory, train_tree) -> Path:
    from training.index import build_index, write_index

    out = tmp_path_factory.mktemp("train_index") / "index"
    write_index(build_index(train_tree, progress=False), out)
    return out


def good_logits(labels: np.ndarray, n_classes: int = 7, strength: float = 3.0, noise: float = 1.0,
                seed: int = 0) -> np.ndarray:
    """Logits that are mostly right (accuracy ~0.8-0.9): a bump on the true class plus noise."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, noise, (len(labels), n_classes))
    z[np.arange(len(labels)), labels] += strength
    return z.astype(np.float32)


def mark_diagnosed(folder):
    """Record a passed alignment diagnostic in a hand-made soft-label folder.

    Hand-made folders (``good_logits``) have no producer checkpoint to recompute rows from; this
    stands for the ``fer-train check-alignment`` run a real teacher folder gets at export, so the
    gate's other checks can be tested on them. The verdict carries the arrays' hash, so an edit
    after it still makes it stale.
    """
    import json
    from pathlib import Path

    path = Path(folder) / "alignment.json"
    meta = json.loads(path.read_text())
    meta["diagnostic"] = {"status": "passed", "arrays_sha256": meta["arrays_sha256"], "problems": [],
                          "note": "hand-made test folder"}
    path.write_text(json.dumps(meta))
    return Path(folder)
