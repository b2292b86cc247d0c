"""Datasets over the canonical index, with the app's face preparation and on-the-fly augmentation.

Why this shape:

- Every image reaches the network through ``fer_models.face_crop.prepare_face``
  with a ``CropSpec``, the same function the live app calls, so CLAHE, resize and
  normalisation cannot drift apart between training and serving.
- Augmentation (crop/translate/scale, flip, small rotation, brightness/contrast,
  optional webcam-style noise and blur; optionally, after it, the webcam-style ops of
  ``training.webcam_aug``, off unless a config is given) happens per item, per epoch, and never
  touches the index: the index (and its fingerprint) describes the data, not a
  particular augmented view of it.
- Each item's randomness is drawn from ``(seed, epoch, row position)``, so a run
  gives the same augmented batches whatever the number of loader workers or
  ranks, and a resumed run continues exactly where it stopped.
- FER2013 is small (~35k 48x48 images, ~80 MB decoded), so decoded images are
  cached in memory once per process and shared by the train/val/test datasets
  (and, through fork, by loader workers).
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fer_models.errors import ArtifactError
from fer_models.face_crop import DEFAULT_MARGIN, CropSpec, prepare_face
from fer_models.files import sha256_bytes

from training.index import CanonicalIndex, decode_csv_pixels, decode_image_bytes

if TYPE_CHECKING:  # pragma: no cover
    from training.webcam_aug import WebcamAugConfig


# ----------------------------------------------------------------------------- preprocessing spec

def make_crop_spec(input_size: int, in_chans: int = 1, clahe: bool = True,
                   crop_margin: float = DEFAULT_MARGIN) -> CropSpec:
    """The CropSpec a model trained here records in its checkpoint (and later its model card).

    Gray faces, replicated to ``in_chans`` channels, normalised with mean 0.5 and std 0.5.
    ``crop_margin`` and eye alignment matter only for the live crop; FER2013 images are
    already face crops and go through ``prepare_face`` alone.
    """
    if in_chans not in (1, 3):
        raise ValueError(f"in_chans must be 1 or 3, got {in_chans}")
    return CropSpec(input_size=int(input_size), channels=int(in_chans), color="gray",
                    mean=(0.5,) * in_chans, std=(0.5,) * in_chans, clahe=bool(clahe),
                    align_eyes=True, crop_margin=float(crop_margin))


def crop_spec_to_dict(spec: CropSpec) -> dict[str, Any]:
    d = asdict(spec)
    d["mean"], d["std"] = list(d["mean"]), list(d["std"])
    return d


class ObsoleteCheckpoint(ValueError):
    """A checkpoint trained with the input low-pass of the blurred FER2013 Training copy."""


def crop_spec_from_dict(d: dict[str, Any]) -> CropSpec:
    """A CropSpec from its stored form; refuses the blurred-data era's low-pass (``blur_sigma`` > 0).

    Checkpoints written while the Training copy in ../shared was blurred (before 2026-11-28)
    record ``blur_sigma``; 0 is harmless and dropped, anything else means the model learned
    from blurred faces and is obsolete.
    """
    d = dict(d)
    blur = d.pop("blur_sigma", 0.0) or 0.0
    if blur:
        raise ObsoleteCheckpoint(f"crop spec has an input low-pass (blur_sigma {blur}): trained on the blurred "
                                 "FER2013 Training copy, obsolete; retrain on the sharp data")
    d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
    return CropSpec(**d)


def checkpoint_crop_spec(ck: dict[str, Any], where: str | Path = "checkpoint") -> CropSpec:
    """The CropSpec a checkpoint was trained with (older checkpoints without one: the defaults)."""
    if not ck.get("crop_spec"):
        return make_crop_spec(ck["input_size"], ck["in_chans"])
    try:
        return crop_spec_from_dict(ck["crop_spec"])
    except ObsoleteCheckpoint as exc:
        raise ArtifactError(where, str(exc)) from exc


# ----------------------------------------------------------------------------- augmentation

@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation of a uint8 gray face before ``prepare_face``."""

    hflip: float = 0.5                       # probability of a horizontal flip
    rotate_deg: float = 10.0                 # uniform in [-rotate_deg, rotate_deg]
    scale: tuple[float, float] = (0.9, 1.1)  # zoom, i.e. a random crop size
    translate: float = 0.08                  # shift, fraction of the side
    brightness: float = 0.2                  # additive, fraction of 255
    contrast: float = 0.2                    # multiplicative, around the image mean
    noise_std: float = 0.0                   # webcam-style Gaussian noise, sigma up to this (gray levels)
    blur_prob: float = 0.0                   # webcam-style defocus: probability of a small Gaussian blur
    erase_prob: float = 0.0                  # random erasing: probability of one grey rectangle (2-25% of area)

    @classmethod
    def webcam(cls) -> "AugmentConfig":
        """The default plus sensor noise and defocus blur, for webcam domain robustness."""
        return cls(noise_std=8.0, blur_prob=0.3)


def augment_image(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """One random view of a gray uint8 face; geometry in one affine warp with replicated borders."""
    h, w = img.shape[:2]
    out = img[:, ::-1] if (cfg.hflip > 0 and rng.random() < cfg.hflip) else img
    angle = rng.uniform(-cfg.rotate_deg, cfg.rotate_deg) if cfg.rotate_deg > 0 else 0.0
    scale = rng.uniform(*cfg.scale)
    tx, ty = (rng.uniform(-cfg.translate, cfg.translate, 2) * (w, h)) if cfg.translate > 0 else (0.0, 0.0)
    m = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), float(angle), float(scale))
    m[0, 2] += tx
    m[1, 2] += ty
    out = cv2.warpAffine(np.ascontiguousarray(out), m, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    f = out.astype(np.float32)
    if cfg.contrast > 0:
        mean = float(f.mean())
        f = (f - mean) * (1.0 + rng.uniform(-cfg.contrast, cfg.contrast)) + mean
    if cfg.brightness > 0:
        f += rng.uniform(-cfg.brightness, cfg.brightness) * 255.0
    if cfg.blur_prob > 0 and rng.random() < cfg.blur_prob:
        f = cv2.GaussianBlur(f, (3, 3), sigmaX=float(rng.uniform(0.3, 1.0)))
    if cfg.noise_std > 0:
        f += rng.normal(0.0, rng.uniform(0.0, cfg.noise_std), f.shape).astype(np.float32)
    if cfg.erase_prob > 0 and rng.random() < cfg.erase_prob:
        # random erasing (Zhong et al. 2020): an occluder of random size, aspect and grey level
        area = rng.uniform(0.02, 0.25) * h * w
        aspect = math.exp(rng.uniform(math.log(0.3), math.log(3.3)))
        eh, ew = min(h, max(1, int(round(math.sqrt(area * aspect))))), min(w, max(1, int(round(math.sqrt(area / aspect)))))
        y0, x0 = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
        f[y0:y0 + eh, x0:x0 + ew] = rng.uniform(0.0, 255.0)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- decoded image cache

class ImageStore:
    """Decoded gray images of one index, decoded on first use and kept in memory.

    Every file's content hash is checked against the index while decoding, so a
    changed data folder is refused by name instead of silently training on other data.
    """

    def __init__(self, index: CanonicalIndex, root: str | Path | None = None, verify: bool = True):
        self.index = index
        self.source = Path(root) if root is not None else Path(index.source)
        if index.format == "fer2013-csv" and self.source.is_dir():
            self.source = self.source / "fer2013.csv"
        self.verify = verify
        self._images: list[np.ndarray | None] = [None] * len(index)
        self._csv_pixels: dict[str, str] | None = None

    def _read_csv(self) -> dict[str, str]:
        if self._csv_pixels is None:
            if not self.source.is_file():
                raise ArtifactError(self.source, "fer2013.csv of this index not found (pass --data to point at it)")
            out: dict[str, str] = {}
            with self.source.open(newline="", encoding="utf-8") as fh:
                for row_no, row in enumerate(csv.DictReader(fh)):
                    out[f"{(row.get('Usage') or '').strip()}/{row_no:05d}"] = row.get("pixels") or ""
            self._csv_pixels = out
        return self._csv_pixels

    def _decode(self, pos: int) -> np.ndarray:
        sid = self.index.sample_ids[pos]
        if self.index.format == "fer2013-csv":
            pixels = self._read_csv().get(sid)
            where = f"{self.source}#{sid}"
            if pixels is None:
                raise ArtifactError(where, "row of the index not found in the csv")
            blob = pixels.encode("utf-8")
            if self.verify and sha256_bytes(blob) != self.index.sha256[pos]:
                raise ArtifactError(where, "content differs from the index (sha256 mismatch); rebuild the index")
            return decode_csv_pixels(pixels, where)
        path = self.source / sid
        try:
            blob = path.read_bytes()
        except OSError as exc:
            raise ArtifactError(path, f"cannot be read ({exc.strerror or exc}); is --data right?") from exc
        if self.verify and sha256_bytes(blob) != self.index.sha256[pos]:
            raise ArtifactError(path, "content differs from the index (sha256 mismatch); rebuild the index")
        return decode_image_bytes(blob, path)

    def get(self, pos: int) -> np.ndarray:
        img = self._images[pos]
        if img is None:
            img = self._images[pos] = self._decode(int(pos))
        return img

    def preload(self, positions: Sequence[int], progress: bool = False) -> None:
        todo = [int(p) for p in positions if self._images[int(p)] is None]
        it: Any = todo
        if progress and len(todo) > 2000:
            from tqdm import tqdm
            it = tqdm(todo, desc="decode", unit="img", mininterval=2.0, file=sys.stderr)
        for p in it:
            self._images[p] = self._decode(p)


_STORES: dict[tuple[str, str], ImageStore] = {}


def get_store(index: CanonicalIndex, root: str | Path | None = None) -> ImageStore:
    """The process-wide ImageStore for an index (one decode per image per process)."""
    key = (index.fingerprint, str(Path(root).resolve()) if root is not None else index.source)
    if key not in _STORES:
        _STORES[key] = ImageStore(index, root)
    return _STORES[key]


# ----------------------------------------------------------------------------- dataset

class FERDataset(Dataset):
    """Rows of a canonical index (one split or given positions) as (tensor, label, position).

    ``position`` is the row's place in the index, so predictions can be written back
    in index order whatever order the loader visited the rows in.
    """

    def __init__(self, index: CanonicalIndex, spec: CropSpec, split: str | None = None,
                 positions: Sequence[int] | None = None, augment: AugmentConfig | None = None,
                 seed: int = 0, root: str | Path | None = None, preload: bool = True, progress: bool = False,
                 webcam: "WebcamAugConfig | None" = None):
        self.index = index
        self.spec = spec
        if positions is None:
            positions = index.positions(split)
        self.positions = np.asarray(positions, dtype=np.int64)
        if len(self.positions) == 0:
            raise ArtifactError(index.path, f"index has no rows in split {split!r}")
        self.labels = index.labels[self.positions]
        self.augment = augment
        # training.webcam_aug.WebcamAugConfig or None: webcam-style degradations after ``augment``, drawn from
        # their own streams so the existing augmentation (and its random numbers) is the same with or without
        self.webcam = webcam
        self.seed = int(seed)
        self.epoch = 0
        self.store = get_store(index, root)
        if preload:
            self.store.preload(self.positions, progress=progress)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before iterating)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.positions)

    def image(self, i: int) -> np.ndarray:
        """The (augmented, if configured) uint8 face of item ``i`` before ``prepare_face``."""
        pos = int(self.positions[i])
        img = self.store.get(pos)
        if self.augment is not None:
            rng = np.random.default_rng((self.seed, self.epoch, pos))
            img = augment_image(img, rng, self.augment)
        if self.webcam is not None:
            from training.webcam_aug import apply_webcam

            img = apply_webcam(img, self.webcam, (self.seed, self.epoch, pos))
        return img

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        x = prepare_face(self.image(i), self.spec)
        return torch.from_numpy(x), int(self.labels[i]), int(self.positions[i])


def stratified_subset(positions: Sequence[int], labels: Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """About ``n`` positions with the class proportions of ``labels`` (at least one per present class).

    Returned in index order, so a subset is still a slice of the canonical order.
    """
    positions = np.asarray(positions, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.int64)
    if n >= len(positions):
        return np.sort(positions)
    rng = np.random.default_rng(seed)
    chosen = []
    for k in np.unique(labels):
        members = positions[labels == k]
        take = max(1, int(round(n * len(members) / len(positions))))
        chosen.append(rng.choice(members, size=min(take, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))
