"""``fer-train index-ckplus``: CK+ as a second domain, a canonical index split by subject.

CK+ (``<class>/S<subject>_<sequence>_<frame>.png``, 48x48 grey faces of 118 subjects,
the last frames of each posed sequence) is the adaptation domain. Its class folders map
onto FER7 as ``training.crossdomain`` already maps them for ``check-ckplus``
(``CKPLUS_TO_FER7``); contempt has no FER7 class and is left out (recorded in index.json,
with its image count). CK+ has no neutral faces: Neutral gets no rows.

Why a split by subject: the frames of one sequence are nearly the same image and one
subject's faces look alike, so an image-level split would test on faces the adapted
model has as good as seen. Subjects are ordered by SHA-256 of ``"<salt>:<subject>"``
(independent of any library's random generator, so the split is the same on every
machine and version) and cut into three parts:

- ``test``  (``--eval-fraction``, default 0.4 of the subjects): the **eval** part, faces of
  subjects the adapted model never sees; before/after numbers are reported here only;
- ``val``   (``--val-fraction``, default 0.2): part of the **adapt** part, for choosing the
  epoch and fitting the (per-class) calibration, never trained on;
- ``train`` (the rest, 0.4): the **adapt** part that fine-tuning trains on.

The index is an ordinary canonical index (``training.index``: rows in canonical order,
fingerprint, ``rows_sha256``, classes.json, data health), so every ``fer-train`` command that
takes ``--index`` reads it; ``index.json`` adds a ``ckplus`` record: the class mapping, what
was left out, the split rule, the fractions asked for and obtained, and each split's subjects.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fer_models.classes import FER7
from fer_models.errors import ArtifactError
from fer_models.files import read_json, sha256_bytes, write_json

from training.crossdomain import CKPLUS_TO_FER7, LEFT_OUT
from training.index import IMAGE_EXTS, CanonicalIndex, canonical_order, decode_image_bytes, write_index

FORMAT = "ckplus-subjects"
NAME_RE = re.compile(r"^S(\d+)_(\d+)_(\d+)$")
DEFAULT_EVAL_FRACTION = 0.4
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_SALT = "ckplus-split-v1"
SPLIT_RULE = ("subjects ordered by sha256('<salt>:<subject>'); the first round(eval_fraction * n) are test (eval "
              "part), the next round(val_fraction * n) val, the rest train (val + train = adapt part)")


def subject_of(path: Path) -> str:
    """The subject id (``S010``) of a CK+ file name ``S010_004_00000017.png``; refused otherwise."""
    m = NAME_RE.match(path.stem)
    if not m:
        raise ArtifactError(path, "file name is not S<subject>_<sequence>_<frame> (the CK+ layout)")
    return f"S{m.group(1)}"


def split_subjects(subjects: Sequence[str], eval_fraction: float = DEFAULT_EVAL_FRACTION,
                   val_fraction: float = DEFAULT_VAL_FRACTION, salt: str = DEFAULT_SALT) -> dict[str, str]:
    """Subject -> split (train / val / test) by ``SPLIT_RULE``: deterministic, the same on every machine."""
    if not (0 < eval_fraction < 1 and 0 <= val_fraction < 1 and eval_fraction + val_fraction < 1):
        raise ValueError(f"need 0 < eval_fraction, 0 <= val_fraction and eval + val < 1; got {eval_fraction}, "
                         f"{val_fraction}")
    subs = sorted(set(subjects))
    order = sorted(subs, key=lambda s: sha256_bytes(f"{salt}:{s}".encode("utf-8")))
    n_eval = max(1, int(round(eval_fraction * len(order))))
    n_val = int(round(val_fraction * len(order)))
    if n_eval + n_val >= len(order):
        raise ValueError(f"{len(order)} subjects are too few for eval {eval_fraction} and val {val_fraction} "
                         "with subjects left to train on")
    out = {s: "test" for s in order[:n_eval]}
    out.update({s: "val" for s in order[n_eval:n_eval + n_val]})
    out.update({s: "train" for s in order[n_eval + n_val:]})
    return out


def build_ckplus_index(data: str | Path, eval_fraction: float = DEFAULT_EVAL_FRACTION,
                       val_fraction: float = DEFAULT_VAL_FRACTION, salt: str = DEFAULT_SALT,
                       name: str | None = None) -> tuple[CanonicalIndex, dict[str, Any]]:
    """Scan, hash and decode every CK+ image; return the index and its ``ckplus`` record."""
    from training.data_health import HealthAccumulator

    root = Path(data).expanduser().resolve()
    if not root.is_dir():
        raise ArtifactError(root, "CK+ folder not found (expected <class>/S<subject>_<seq>_<frame>.png below it)")
    files: list[tuple[Path, int]] = []
    left_out: dict[str, int] = {}
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        key = cls_dir.name.lower()
        images = sorted(p for p in cls_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
        if key in LEFT_OUT:
            left_out[cls_dir.name] = len(images)
            continue
        if key not in CKPLUS_TO_FER7:
            raise ArtifactError(cls_dir, f"unknown CK+ class folder; expected {sorted(CKPLUS_TO_FER7)} or "
                                         f"{list(LEFT_OUT)}")
        label = FER7.index(CKPLUS_TO_FER7[key])
        files += [(f, label) for f in images]
    if not files:
        raise ArtifactError(root, "no images of the six shared classes found")
    subjects = {f: subject_of(f) for f, _ in files}
    split_of = split_subjects(list(subjects.values()), eval_fraction, val_fraction, salt)

    health = HealthAccumulator()
    ids, labels, splits, hashes = [], [], [], []
    for f, label in files:
        blob = f.read_bytes()
        img = decode_image_bytes(blob, f)
        split = split_of[subjects[f]]
        health.add(split, img)
        ids.append(f.relative_to(root).as_posix())
        labels.append(label)
        splits.append(split)
        hashes.append(sha256_bytes(blob))
    order = canonical_order(ids, splits)
    index = CanonicalIndex(name=name or root.name, sample_ids=[ids[i] for i in order],
                           labels=np.array([labels[i] for i in order]), splits=np.array([splits[i] for i in order]),
                           sha256=[hashes[i] for i in order], classes=list(FER7), format=FORMAT, source=str(root),
                           health=health.summary())
    n_sub = len(split_of)
    by_split = {s: sorted(k for k, v in split_of.items() if v == s) for s in ("train", "val", "test")}
    record = {
        "class_map": {k: v for k, v in CKPLUS_TO_FER7.items()},
        "left_out": {"classes": list(LEFT_OUT), "images": left_out,
                     "why": "contempt has no FER7 class"},
        "absent_fer7_classes": [c for c in FER7 if c not in CKPLUS_TO_FER7.values()],
        "split_by": "subject",
        "split_rule": SPLIT_RULE,
        "salt": salt,
        "fractions_requested": {"test": eval_fraction, "val": val_fraction,
                                "train": round(1 - eval_fraction - val_fraction, 6)},
        "n_subjects": n_sub,
        "subjects_per_split": {s: len(v) for s, v in by_split.items()},
        "fraction_of_subjects": {s: round(len(v) / n_sub, 4) for s, v in by_split.items()},
        "parts": {"adapt": ["train", "val"], "eval": ["test"]},
        "subjects": by_split,
    }
    return index, record


def write_ckplus_index(index: CanonicalIndex, record: dict[str, Any], out_dir: str | Path) -> Path:
    """index.csv / index.json / classes.json (``training.index.write_index``) plus the ``ckplus`` record."""
    out = write_index(index, out_dir)
    meta = read_json(out / "index.json")
    meta["ckplus"] = record
    write_json(out / "index.json", meta)
    return out


def check_subject_split(index: CanonicalIndex) -> None:
    """Refuse an index in which one subject has rows in two splits (the whole point of the split)."""
    seen: dict[str, str] = {}
    for sid, split in zip(index.sample_ids, index.splits.tolist()):
        s = subject_of(Path(sid))
        if seen.setdefault(s, split) != split:
            raise ArtifactError(index.path, f"subject {s} has rows in both {seen[s]} and {split}")


# ----------------------------------------------------------------------------- CLI

def add_parser(sub: Any) -> None:
    p = sub.add_parser("index-ckplus", help="canonical index of CK+ (six FER7 classes), split by subject",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data/ckplus48", help="CK+ folder with one folder per class")
    p.add_argument("--out", required=True, help="index folder to write")
    p.add_argument("--eval-fraction", type=float, default=DEFAULT_EVAL_FRACTION,
                   help="share of subjects in the eval part (split test)")
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                   help="share of subjects in the adapt part's val split (epoch choice, calibration)")
    p.add_argument("--salt", default=DEFAULT_SALT, help="salt of the subject hash (another salt, another split)")
    p.add_argument("--name", default=None, help="index name (default: the data folder's name)")
    p.add_argument("--force", action="store_true", help="replace an existing index in --out")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    out = Path(args.out)
    if ((out / "index.json").exists() or (out / "index.csv").exists()) and not args.force:
        raise ArtifactError(out, "already holds an index; choose another --out or pass --force to replace it")
    try:
        index, record = build_ckplus_index(args.data, args.eval_fraction, args.val_fraction, args.salt, args.name)
    except ValueError as exc:
        raise ArtifactError(args.data, str(exc)) from exc
    write_ckplus_index(index, record, out)
    sizes = index.metadata()["split_sizes"]
    print(f"index {index.name}: {len(index)} rows {sizes}, subjects {record['subjects_per_split']} "
          f"(of {record['n_subjects']}), fingerprint {index.fingerprint} -> {out}")
    print(f"  left out: {record['left_out']['images']} ({record['left_out']['why']}); no rows for "
          f"{record['absent_fer7_classes']}")
    for w in index.health.get("warnings", []):
        print(f"warning: {out / 'index.json'}: {w}", file=sys.stderr)
    return 0


__all__ = ["FORMAT", "SPLIT_RULE", "build_ckplus_index", "check_subject_split", "split_subjects", "subject_of",
           "write_ckplus_index"]
