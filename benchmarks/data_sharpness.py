"""Sharpness of each FER2013 split in ../shared, and the Gaussian blur that matches the Training split.

Usage: python benchmarks/data_sharpness.py [--shared ../shared] [--sample 400]

Sharpness is the mean absolute Laplacian of a 48x48 image. Prints per-split
percentiles over every image, then, for a sample of sharp test images, the
sharpness and pixel std after Gaussian blurs of several sigmas (px at 48 px),
so the sigma that reproduces the Training split can be read off. Last, what a
smaller training input loses: the RMS change (gray levels) of a face taken to
32 / 24 px (area) and back to 48 px (cubic), for Training and PrivateTest faces.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def sharpness(img: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(img, cv2.CV_64F)).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--sample", type=int, default=400)
    args = ap.parse_args()
    root = args.shared / "data" / "fer2013"
    splits = {"Training": sorted(root.glob("train/*/Training_*.jpg")),
              "PublicTest": sorted(root.glob("test/*/PublicTest_*.jpg")),
              "PrivateTest": sorted(root.glob("test/*/PrivateTest_*.jpg"))}
    print(f"{'split':>12} {'n':>6} {'p1':>6} {'p50':>6} {'p99':>6} {'pixel std':>9}")
    for name, files in splits.items():
        imgs = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
        s = np.array([sharpness(i) for i in imgs])
        std = float(np.stack(imgs).astype(np.float64).std())
        print(f"{name:>12} {len(s):>6} {np.percentile(s, 1):>6.2f} {np.median(s):>6.2f} "
              f"{np.percentile(s, 99):>6.2f} {std:>9.1f}")
    random.seed(1)
    sample = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
              for f in random.sample(splits["PublicTest"] + splits["PrivateTest"], args.sample)]
    print("test images blurred with a Gaussian of sigma (px at 48 px):")
    for sigma in (2.0, 2.5, 3.0, 3.5, 4.0):
        b = [cv2.GaussianBlur(i, (0, 0), sigma) for i in sample]
        print(f"  sigma {sigma:.1f} ({sigma / 48:.3f} of the side): sharpness median "
              f"{np.median([sharpness(x) for x in b]):.2f}, pixel std {np.stack(b).astype(np.float64).std():.1f}")
    print("median RMS change (gray levels) after a round trip through a smaller side:")
    for name in ("Training", "PrivateTest"):
        faces = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE).astype(np.float32)
                 for f in random.sample(splits[name], min(args.sample, len(splits[name])))]
        for side in (32, 24):
            rms = [round_trip_rms(f, side) for f in faces]
            print(f"  {name:>12} via {side} px: {np.median(rms):.2f}")
    return 0


def round_trip_rms(face: np.ndarray, side: int) -> float:
    small = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, face.shape[::-1], interpolation=cv2.INTER_CUBIC)
    return float(np.sqrt(np.mean((back - face) ** 2)))


if __name__ == "__main__":
    raise SystemExit(main())
