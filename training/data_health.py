"""Per-split data-health summary recorded in index.json, with warnings for a split that stands out.

Why: the FER2013 Training copy in ../shared was once Gaussian-blurred while the test
splits were sharp; three days of training went by before anyone noticed. ``fer-train
index`` decodes every image anyway, so it measures each split on the way (image count,
sizes, mean brightness, sharpness) and warns, naming the split, when one differs
sharply from the others. The next broken copy is caught at indexing time.

Sharpness is the mean absolute Laplacian of an image (3x3 kernel, 64-bit float), the
measure of ``benchmarks/data_sharpness.py``: about 28 for sharp 48x48 FER2013 faces,
about 2 for the blurred copy.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

# A split is flagged when its median sharpness is this many times above or below the median
# of the other splits' medians (the blurred copy was 15x below), when its mean brightness is this
# many grey levels away, or when its most common image size differs.
SHARPNESS_RATIO = 2.0
BRIGHTNESS_DELTA = 25.0


def sharpness(img: np.ndarray) -> float:
    """Mean absolute Laplacian: high for fine detail, low for blurred or flat images."""
    return float(np.abs(cv2.Laplacian(img, cv2.CV_64F)).mean())


@dataclass
class _SplitStats:
    n: int = 0
    sizes: Counter = field(default_factory=Counter)
    brightness: list[float] = field(default_factory=list)
    sharp: list[float] = field(default_factory=list)


class HealthAccumulator:
    """Collects per-split figures image by image while the index decodes them."""

    def __init__(self) -> None:
        self._splits: dict[str, _SplitStats] = {}

    def add(self, split: str, img: np.ndarray) -> None:
        s = self._splits.setdefault(split, _SplitStats())
        s.n += 1
        s.sizes[f"{img.shape[1]}x{img.shape[0]}"] += 1
        s.brightness.append(float(img.mean()))
        s.sharp.append(sharpness(img))

    def summary(self) -> dict[str, Any]:
        """``{"splits": {split: figures}, "warnings": [...], "rule": ...}`` for index.json."""
        splits: dict[str, dict[str, Any]] = {}
        for name, s in self._splits.items():
            sharp = np.asarray(s.sharp)
            splits[name] = {
                "n_images": s.n,
                "size": s.sizes.most_common(1)[0][0],
                "n_sizes": len(s.sizes),
                "mean_brightness": round(float(np.mean(s.brightness)), 2),
                "sharpness_median": round(float(np.median(sharp)), 3),
                "sharpness_p10": round(float(np.percentile(sharp, 10)), 3),
                "sharpness_p90": round(float(np.percentile(sharp, 90)), 3),
            }
        return {"splits": splits, "warnings": split_warnings(splits),
                "rule": f"sharpness median x{SHARPNESS_RATIO} off, mean brightness {BRIGHTNESS_DELTA:g} grey "
                        "levels off, or another most common size, against the other splits"}


def split_warnings(splits: dict[str, dict[str, Any]]) -> list[str]:
    """One message per split that differs sharply from the other splits (none with fewer than two splits)."""
    out: list[str] = []
    for name, s in splits.items():
        others = [o for k, o in splits.items() if k != name]
        if not others:
            continue
        ref_sharp = float(np.median([o["sharpness_median"] for o in others]))
        ref_bright = float(np.median([o["mean_brightness"] for o in others]))
        ref_sizes = {o["size"] for o in others}
        if ref_sharp > 0 and not (1 / SHARPNESS_RATIO <= s["sharpness_median"] / ref_sharp <= SHARPNESS_RATIO):
            kind = "blurred" if s["sharpness_median"] < ref_sharp else "sharper or noisier"
            out.append(f"split {name!r} looks {kind} than the others: sharpness median "
                       f"{s['sharpness_median']:.2f} vs {ref_sharp:.2f}")
        if abs(s["mean_brightness"] - ref_bright) > BRIGHTNESS_DELTA:
            out.append(f"split {name!r} has mean brightness {s['mean_brightness']:.1f} vs {ref_bright:.1f} "
                       "for the others")
        if s["size"] not in ref_sizes:
            out.append(f"split {name!r} images are mostly {s['size']}, the others {sorted(ref_sizes)}")
    return out
