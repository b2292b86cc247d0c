"""Write docs/webcam_aug_grid.png: FER2013 faces under each webcam-style op and under the whole config.

Rows: a few FER2013 PrivateTest faces (the first file of some classes, by name). Columns:
the face as stored, each op of ``training/webcam_aug.py`` alone at the harsh end of its range
in the config (probability 1), then three random draws of the whole config (the usual
augmentation off, so only the webcam ops show). Tiles are enlarged 2x with nearest-neighbour
so the pixels stay visible and the PNG small.

    python docs/webcam_aug_grid.py [--data ../shared/data/fer2013] [--config training/configs/augment/webcam_aug.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.webcam_aug import OPS, WebcamAugConfig, WebcamOp, apply_webcam  # noqa: E402

CLASSES = ("angry", "happy", "surprise", "neutral")
SCALE = 2
HEADER = 18


def harsh_value(op: str, rng: tuple[float, float]) -> float:
    """The end of a range that degrades most (low exposure/quality/scale, high blur/noise/gamma)."""
    return rng[0] if op in ("exposure", "downscale", "jpeg") else rng[1]


def tile(img: np.ndarray, label: str) -> np.ndarray:
    big = cv2.resize(img, (img.shape[1] * SCALE, img.shape[0] * SCALE), interpolation=cv2.INTER_NEAREST)
    head = np.full((HEADER, big.shape[1]), 255, np.uint8)
    cv2.putText(head, label, (3, HEADER - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.36, 0, 1, cv2.LINE_AA)
    return np.vstack([head, big])


def build_grid(data: Path, cfg: WebcamAugConfig) -> np.ndarray:
    faces = []
    for cls in CLASSES:
        files = sorted((data / "test" / cls).glob("PrivateTest_*.jpg"))
        if not files:
            raise SystemExit(f"{data / 'test' / cls}: no PrivateTest_*.jpg files (is --data the FER2013 folder?)")
        img = cv2.imread(str(files[0]), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise SystemExit(f"{files[0]}: cannot be decoded")
        faces.append(img)
    rows = []
    off = WebcamAugConfig(**{op: dataclasses.replace(getattr(cfg, op), prob=0.0) for op in OPS})
    for r, face in enumerate(faces):
        cells = [tile(face, "original")]
        for op in OPS:
            spec = getattr(cfg, op)
            v = harsh_value(op, spec.range)
            one = dataclasses.replace(off, **{op: WebcamOp(1.0, (v, v))})
            cells.append(tile(apply_webcam(face, one, (0, 0, r)), f"{op} {v:g}"))
        for k in range(3):
            cells.append(tile(apply_webcam(face, cfg, (1, k, r)), f"config #{k + 1}"))
        rows.append(np.hstack(cells))
    return np.vstack(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "fer2013"))
    ap.add_argument("--config", default=str(REPO / "training" / "configs" / "augment" / "webcam_aug.json"))
    ap.add_argument("--out", default=str(REPO / "docs" / "webcam_aug_grid.png"))
    args = ap.parse_args(argv)
    grid = build_grid(Path(args.data), WebcamAugConfig.from_json(args.config))
    out = Path(args.out)
    cv2.imwrite(str(out), grid, [int(cv2.IMWRITE_PNG_COMPRESSION), 9])
    print(f"{out}: {grid.shape[1]}x{grid.shape[0]} px, {out.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
