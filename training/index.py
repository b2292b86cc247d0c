"""The canonical index: every sample, in one frozen order, with a fingerprint (DESIGN.md §4).

Soft labels, logits and predictions are stored as plain arrays in index order.
That is only safe if everyone agrees on the order, so the index is built once,
written to disk with its fingerprint (SHA-256 of the ordered ``sample_id<TAB>label``
lines) and every later artifact carries that fingerprint. ``load_index`` recomputes
it from the rows and refuses an index whose rows were edited, re-ordered or
re-labelled after it was written.

Three sources are understood:

- ``fer2013-folders``: the Kaggle layout ``{train,test}/<class>/*.jpg``; the split
  comes from the file name (``Training_*`` -> train, ``PublicTest_*`` -> val,
  ``PrivateTest_*`` -> test).
- ``fer2013-csv``: the original ``fer2013.csv`` (``emotion,pixels,Usage``); a
  sample id is ``<Usage>/<row>`` with the 0-based data row of the file.
- ``folders``: a generic ``<split>/<class>/*`` tree (split folder names train,
  val/valid/validation, test).

Class folders are matched to the canonical FER7 names without regard to case.
"""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np

from fer_models.classes import FER7, canonical_class_name, check_same_classes, read_classes_json, \
    write_classes_json
from fer_models.errors import ArtifactError
from fer_models.files import atomic_write_text, read_json, sha256_bytes, write_json

SPLITS: tuple[str, ...] = ("train", "val", "test")
FORMATS: tuple[str, ...] = ("auto", "fer2013-folders", "fer2013-csv", "folders")
CSV_COLUMNS: tuple[str, ...] = ("sample_id", "label", "split", "sha256")
FINGERPRINT_RULE = "sha256 of the ordered 'sample_id<TAB>label' lines joined by '\\n' (utf-8)"
IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".pnm", ".tif", ".tiff", ".webp"})

FER2013_PREFIXES = {"training": "train", "publictest": "val", "privatetest": "test"}
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "publictest": "val", "test": "test", "privatetest": "test"}


# ----------------------------------------------------------------------------- the index object

@dataclass
class CanonicalIndex:
    """An index in memory: parallel per-row lists in canonical order plus its metadata."""

    name: str
    sample_ids: list[str]
    labels: np.ndarray
    splits: np.ndarray
    sha256: list[str]
    classes: list[str]
    format: str
    source: str
    fingerprint: str = ""
    corrupt: list[dict[str, str]] = field(default_factory=list)
    path: Path | None = None
    health: dict[str, Any] = field(default_factory=dict)  # training.data_health summary, per split

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.splits = np.asarray(self.splits, dtype="<U5")
        if not self.fingerprint:
            self.fingerprint = compute_fingerprint(self.sample_ids, self.labels)

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def short_name(self) -> str:
        """``<name>-<first 8 hex of the fingerprint>``: the folder name of soft labels for this index."""
        return f"{self.name}-{self.fingerprint[:8]}"

    def positions(self, split: str | None = None) -> np.ndarray:
        """Row positions (in index order) of one split, or of every row."""
        if split is None:
            return np.arange(len(self), dtype=np.int64)
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        return np.flatnonzero(self.splits == split).astype(np.int64)

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of rows per split and class (class names as keys)."""
        out: dict[str, dict[str, int]] = {}
        for split in SPLITS:
            lab = self.labels[self.splits == split]
            out[split] = {c: int(np.sum(lab == k)) for k, c in enumerate(self.classes)}
        return out

    def rows_sha256(self) -> str:
        return compute_rows_sha256(self.sample_ids, self.labels, self.splits, self.sha256)

    def metadata(self) -> dict[str, Any]:
        """The contents of index.json."""
        counts = self.counts()
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "fingerprint_rule": FINGERPRINT_RULE,
            "rows_sha256": self.rows_sha256(),
            "n_rows": len(self),
            "classes": list(self.classes),
            "format": self.format,
            "source": self.source,
            "split_sizes": {s: int(sum(counts[s].values())) for s in SPLITS},
            "counts": counts,
            "n_corrupt": len(self.corrupt),
            "corrupt": list(self.corrupt),
            "health": self.health,
        }


def compute_fingerprint(sample_ids: Sequence[str], labels: Sequence[int]) -> str:
    """SHA-256 of the ordered ``sample_id<TAB>label`` lines joined by newlines."""
    text = "\n".join(f"{sid}\t{int(lab)}" for sid, lab in zip(sample_ids, labels))
    return sha256_bytes(text.encode("utf-8"))


def compute_rows_sha256(sample_ids: Sequence[str], labels: Sequence[int], splits: Sequence[str],
                        hashes: Sequence[str]) -> str:
    """SHA-256 over every column, so an edited split or content hash is caught as well."""
    text = "\n".join(f"{a}\t{int(b)}\t{c}\t{d}" for a, b, c, d in zip(sample_ids, labels, splits, hashes))
    return sha256_bytes(text.encode("utf-8"))


def canonical_order(sample_ids: Sequence[str], splits: Sequence[str]) -> list[int]:
    """Row order of the index: split (train, val, test), then sample id (plain string order)."""
    rank = {s: i for i, s in enumerate(SPLITS)}
    return sorted(range(len(sample_ids)), key=lambda i: (rank[splits[i]], sample_ids[i]))


# ----------------------------------------------------------------------------- decoding

def decode_image_bytes(data: bytes, where: str | Path) -> np.ndarray:
    """Decode an image file's bytes to a grayscale uint8 array, or raise ArtifactError naming it."""
    if not data:
        raise ArtifactError(where, "empty file")
    suffix = Path(str(where)).suffix.lower()
    if suffix in (".jpg", ".jpeg") and b"\xff\xd9" not in data[-64:]:
        # libjpeg decodes a truncated file with a warning and grey padding; that is corrupt data
        raise ArtifactError(where, "truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None or img.size == 0 or img.ndim != 2:
        raise ArtifactError(where, "cannot be decoded as an image")
    return img


def decode_csv_pixels(pixels: str, where: str | Path) -> np.ndarray:
    """Decode a fer2013.csv ``pixels`` field (space-separated 0..255, a square image)."""
    try:
        values = np.array(pixels.split(), dtype=np.int64)
    except ValueError as exc:
        raise ArtifactError(where, f"pixels field is not a list of integers ({exc})") from exc
    side = int(round(len(values) ** 0.5))
    if len(values) == 0 or side * side != len(values):
        raise ArtifactError(where, f"pixels field has {len(values)} values, not a square image")
    if values.min() < 0 or values.max() > 255:
        raise ArtifactError(where, "pixel values outside 0..255")
    return values.astype(np.uint8).reshape(side, side)


# ----------------------------------------------------------------------------- scanning sources

@dataclass
class _Candidate:
    sample_id: str
    label: int
    split: str
    path: Path | None = None       # folder formats
    pixels: str | None = None      # csv format


def detect_format(data: Path) -> str:
    """Guess the source format of ``data`` (a fer2013.csv file or a folder tree)."""
    if data.is_file():
        if data.suffix.lower() == ".csv":
            return "fer2013-csv"
        raise ArtifactError(data, "expected a folder tree or a fer2013.csv file")
    if not data.is_dir():
        raise ArtifactError(data, "data folder not found")
    if (data / "fer2013.csv").is_file():
        return "fer2013-csv"
    for sub in data.iterdir():
        if sub.is_dir():
            for cls_dir in sub.iterdir():
                if cls_dir.is_dir():
                    for f in cls_dir.iterdir():
                        if f.name.split("_", 1)[0].lower() in FER2013_PREFIXES:
                            return "fer2013-folders"
                        break
    return "folders"


def _class_label(folder: Path, classes: Sequence[str]) -> int:
    try:
        return list(classes).index(canonical_class_name(folder.name, classes))
    except ValueError:
        raise ArtifactError(folder, f"folder name {folder.name!r} is not a class of {list(classes)}") from None


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def _scan_fer2013_folders(root: Path, classes: Sequence[str]) -> Iterator[_Candidate]:
    tops = sorted(p for p in root.iterdir() if p.is_dir())
    if not tops:
        raise ArtifactError(root, "no split folders (expected train/ and test/)")
    for top in tops:
        for cls_dir in sorted(p for p in top.iterdir() if p.is_dir()):
            label = _class_label(cls_dir, classes)
            for f in _image_files(cls_dir):
                prefix = f.name.split("_", 1)[0].lower()
                if prefix not in FER2013_PREFIXES:
                    raise ArtifactError(f, "file name does not start with Training_, PublicTest_ or PrivateTest_, "
                                           "so its FER2013 split is unknown (use --format folders for other trees)")
                yield _Candidate(f.relative_to(root).as_posix(), label, FER2013_PREFIXES[prefix], path=f)


def _scan_folders(root: Path, classes: Sequence[str]) -> Iterator[_Candidate]:
    tops = sorted(p for p in root.iterdir() if p.is_dir())
    unknown = [p.name for p in tops if p.name.lower() not in SPLIT_FOLDERS]
    if unknown:
        raise ArtifactError(root, f"split folders {unknown} are not train, val/valid/validation or test")
    for top in tops:
        split = SPLIT_FOLDERS[top.name.lower()]
        for cls_dir in sorted(p for p in top.iterdir() if p.is_dir()):
            label = _class_label(cls_dir, classes)
            for f in _image_files(cls_dir):
                yield _Candidate(f.relative_to(root).as_posix(), label, split, path=f)


def _scan_fer2013_csv(csv_path: Path, classes: Sequence[str]) -> Iterator[_Candidate]:
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"emotion", "pixels", "Usage"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise ArtifactError(csv_path, f"expected columns {sorted(need)}, found {reader.fieldnames}")
        for row_no, row in enumerate(reader):
            usage = (row["Usage"] or "").strip()
            split = SPLIT_FOLDERS.get(usage.lower())
            if split is None:
                raise ArtifactError(csv_path, f"data row {row_no}: unknown Usage {usage!r}")
            try:
                label = int(row["emotion"])
            except (TypeError, ValueError):
                raise ArtifactError(csv_path, f"data row {row_no}: emotion {row['emotion']!r} is not an integer") from None
            if not 0 <= label < len(classes):
                raise ArtifactError(csv_path, f"data row {row_no}: emotion {label} outside 0..{len(classes) - 1}")
            yield _Candidate(f"{usage}/{row_no:05d}", label, split, pixels=row["pixels"] or "")


def resolve_source(data: str | Path, fmt: str) -> tuple[Path, str]:
    """The absolute source path (folder, or the csv file itself) and the concrete format."""
    data = Path(data).expanduser().resolve()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if fmt == "auto":
        fmt = detect_format(data)
    if fmt == "fer2013-csv" and data.is_dir():
        data = data / "fer2013.csv"
    if fmt == "fer2013-csv" and not data.is_file():
        raise ArtifactError(data, "fer2013.csv not found")
    if fmt != "fer2013-csv" and not data.is_dir():
        raise ArtifactError(data, "data folder not found")
    return data, fmt


# ----------------------------------------------------------------------------- build / write / load

def build_index(data: str | Path, fmt: str = "auto", name: str | None = None, skip_corrupt: bool = False,
                classes: Sequence[str] = FER7, progress: bool = True) -> CanonicalIndex:
    """Scan a data source, hash and decode every sample, and return the canonical index.

    Every image is decoded once here so a corrupt file is found now, by name, and
    not in the middle of a training run. With ``skip_corrupt`` such files are left
    out and listed in the index metadata instead of stopping the build.
    """
    source, fmt = resolve_source(data, fmt)
    scan = {"fer2013-folders": _scan_fer2013_folders, "folders": _scan_folders,
            "fer2013-csv": _scan_fer2013_csv}[fmt]
    candidates = list(scan(source, classes))
    if not candidates:
        raise ArtifactError(source, "no images found")
    ids = [c.sample_id for c in candidates]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ArtifactError(source, f"duplicate sample ids {dup}")

    iterator: Any = candidates
    if progress:
        from tqdm import tqdm
        iterator = tqdm(candidates, desc="index", unit="img", mininterval=1.0, file=sys.stderr)
    from training.data_health import HealthAccumulator

    health = HealthAccumulator()
    kept: list[tuple[_Candidate, str]] = []
    corrupt: list[dict[str, str]] = []
    for cand in iterator:
        where = cand.path if cand.path is not None else f"{source}#{cand.sample_id}"
        try:
            if cand.path is not None:
                try:
                    blob = cand.path.read_bytes()
                except OSError as exc:
                    raise ArtifactError(cand.path, f"cannot be read ({exc.strerror or exc})") from exc
                img = decode_image_bytes(blob, cand.path)
            else:
                blob = (cand.pixels or "").encode("utf-8")
                img = decode_csv_pixels(cand.pixels or "", where)
        except ArtifactError as exc:
            if not skip_corrupt:
                raise ArtifactError(exc.path, f"{exc.problem} (rerun with --skip-corrupt to leave such files "
                                              "out and record them in index.json)") from exc
            corrupt.append({"sample_id": cand.sample_id, "file": str(where), "problem": exc.problem})
            continue
        kept.append((cand, sha256_bytes(blob)))
        health.add(cand.split, img)
    if not kept:
        raise ArtifactError(source, "every image is corrupt")

    order = canonical_order([c.sample_id for c, _ in kept], [c.split for c, _ in kept])
    kept = [kept[i] for i in order]
    default_name = source.stem if fmt == "fer2013-csv" else source.name
    return CanonicalIndex(
        name=name or default_name or "index",
        sample_ids=[c.sample_id for c, _ in kept],
        labels=np.array([c.label for c, _ in kept], dtype=np.int64),
        splits=np.array([c.split for c, _ in kept]),
        sha256=[h for _, h in kept],
        classes=list(classes),
        format=fmt,
        source=str(source),
        corrupt=sorted(corrupt, key=lambda d: d["sample_id"]),
        health=health.summary(),
    )


def write_index(index: CanonicalIndex, out_dir: str | Path) -> Path:
    """Write index.csv, index.json and classes.json into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in zip(index.sample_ids, index.labels.tolist(), index.splits.tolist(), index.sha256):
        writer.writerow(row)
    atomic_write_text(out / "index.csv", buf.getvalue())
    write_json(out / "index.json", index.metadata())
    write_classes_json(out, index.classes, dataset=index.name)
    index.path = out
    return out


def load_index(index_dir: str | Path) -> CanonicalIndex:
    """Read an index folder and prove it is intact.

    The fingerprint is recomputed from index.csv and compared with index.json; so is
    a hash over every column. Rows out of canonical order, unknown splits, labels
    outside the class list and a classes.json that disagrees are all refused.
    """
    d = Path(index_dir)
    if d.is_file():
        d = d.parent
    meta_path, csv_path = d / "index.json", d / "index.csv"
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or "fingerprint" not in meta or "classes" not in meta:
        raise ArtifactError(meta_path, "not an index.json (needs 'fingerprint' and 'classes')")
    classes = list(meta["classes"])
    if (d / "classes.json").is_file():
        check_same_classes(classes, read_classes_json(d / "classes.json"), d / "classes.json",
                           "classes of classes.json and index.json")
    if not csv_path.is_file():
        raise ArtifactError(csv_path, "file not found")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or tuple(header) != CSV_COLUMNS:
            raise ArtifactError(csv_path, f"header must be {','.join(CSV_COLUMNS)}, found {header}")
        ids, labels, splits, hashes = [], [], [], []
        for line_no, row in enumerate(reader, start=2):
            if len(row) != 4:
                raise ArtifactError(csv_path, f"line {line_no}: expected 4 fields, found {len(row)}")
            try:
                lab = int(row[1])
            except ValueError:
                raise ArtifactError(csv_path, f"line {line_no}: label {row[1]!r} is not an integer") from None
            if not 0 <= lab < len(classes):
                raise ArtifactError(csv_path, f"line {line_no}: label {lab} outside 0..{len(classes) - 1}")
            if row[2] not in SPLITS:
                raise ArtifactError(csv_path, f"line {line_no}: unknown split {row[2]!r}")
            ids.append(row[0]); labels.append(lab); splits.append(row[2]); hashes.append(row[3])
    if len(ids) != meta.get("n_rows"):
        raise ArtifactError(csv_path, f"has {len(ids)} rows but index.json records {meta.get('n_rows')}")
    if len(set(ids)) != len(ids):
        raise ArtifactError(csv_path, "duplicate sample ids")
    order = canonical_order(ids, splits)
    if order != list(range(len(ids))):
        first = next(i for i, j in enumerate(order) if i != j)
        raise ArtifactError(csv_path, f"rows are not in canonical order (split, then sample_id) from line {first + 2}")
    fingerprint = compute_fingerprint(ids, labels)
    if fingerprint != meta["fingerprint"]:
        raise ArtifactError(csv_path, f"fingerprint of the rows ({fingerprint[:12]}...) differs from the one "
                                      f"recorded in index.json ({str(meta['fingerprint'])[:12]}...): the index was "
                                      "edited after it was written; rebuild it with fer-train index")
    rows_hash = compute_rows_sha256(ids, labels, splits, hashes)
    if meta.get("rows_sha256") and rows_hash != meta["rows_sha256"]:
        raise ArtifactError(csv_path, "split or sha256 columns differ from the ones recorded in index.json "
                                      "(rows_sha256 mismatch): the index was edited after it was written")
    return CanonicalIndex(name=str(meta.get("name") or d.name), sample_ids=ids, labels=np.array(labels),
                          splits=np.array(splits), sha256=hashes, classes=classes,
                          format=str(meta.get("format", "")), source=str(meta.get("source", "")),
                          fingerprint=fingerprint, corrupt=list(meta.get("corrupt") or []), path=d,
                          health=dict(meta.get("health") or {}))


# ----------------------------------------------------------------------------- CLI

def add_parser(sub: Any) -> None:
    p = sub.add_parser("index", help="build the canonical index (index.csv, index.json, classes.json)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="FER2013 folder tree, fer2013.csv, or a <split>/<class>/* tree")
    p.add_argument("--out", required=True, help="index folder to write")
    p.add_argument("--format", default="auto", choices=FORMATS)
    p.add_argument("--name", default=None, help="index name (default: the data folder or csv file name)")
    p.add_argument("--skip-corrupt", action="store_true",
                   help="leave corrupt or unreadable images out and record them in index.json")
    p.add_argument("--force", action="store_true",
                   help="replace an existing index in --out (says whether its fingerprint changes)")
    p.set_defaults(func=run_cli)


def run_cli(args: Any) -> int:
    out_dir = Path(args.out)
    old_meta = out_dir / "index.json"
    old_fp = None
    if old_meta.exists() or (out_dir / "index.csv").exists():
        if not args.force:
            raise ArtifactError(out_dir, "already holds an index; teachers, soft labels and students refer to it "
                                         "by folder and fingerprint. Choose another --out, or pass --force to "
                                         "replace it")
        try:
            old_fp = read_json(old_meta).get("fingerprint")
        except (ArtifactError, OSError, ValueError, AttributeError):
            old_fp = None
    index = build_index(args.data, args.format, args.name, args.skip_corrupt)
    out = write_index(index, out_dir)
    sizes = index.metadata()["split_sizes"]
    print(f"index {index.name}: {len(index)} rows {sizes}, format {index.format}, "
          f"fingerprint {index.fingerprint}, corrupt {len(index.corrupt)} -> {out}")
    for c in index.corrupt:
        print(f"  skipped corrupt: {c['file']}: {c['problem']}")
    for split, h in index.health.get("splits", {}).items():
        print(f"  {split}: {h['n_images']} images {h['size']}, brightness {h['mean_brightness']:.1f}, "
              f"sharpness median {h['sharpness_median']:.2f}")
    for w in index.health.get("warnings", []):
        print(f"warning: {out / 'index.json'}: {w}", file=sys.stderr)
    if args.force and old_fp is not None:
        if old_fp == index.fingerprint:
            print(f"replaced the index in {out}: same fingerprint, runs and soft labels built on it stay valid")
        else:
            print(f"warning: replaced the index in {out}: fingerprint {str(old_fp)[:12]} -> {index.fingerprint[:12]}; "
                  "soft labels, teachers and students built on the old one will now be refused", file=sys.stderr)
    return 0
