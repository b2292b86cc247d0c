"""model_card.json: how a model wants its faces prepared (DESIGN.md §4).

The card is the single source of truth for the crop, colour mode and
normalisation; the app follows it so that a live face reaches the network
the way training images did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fer_models.classes import validate_class_list
from fer_models.errors import ArtifactError
from fer_models.files import read_json, resolve_file, write_json

REQUIRED_KEYS = ("classes", "input_size", "channels", "color", "mean", "std", "clahe",
                 "align_eyes", "crop_margin", "backbone", "index_fingerprint", "metrics")


@dataclass
class ModelCard:
    classes: list[str]
    input_size: int
    channels: int
    color: str
    mean: list[float]
    std: list[float]
    clahe: bool
    align_eyes: bool
    crop_margin: float
    backbone: str
    index_fingerprint: str
    metrics: dict[str, Any]
    model_id: str = ""
    precision: str = "fp32"
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str | Path | None = None) -> "ModelCard":
        self.classes = validate_class_list(self.classes, where)
        if not isinstance(self.input_size, int) or isinstance(self.input_size, bool) or not 8 <= self.input_size <= 1024:
            raise ArtifactError(where, f"input_size must be an integer side in pixels (8..1024), got {self.input_size!r}")
        if self.channels not in (1, 3):
            raise ArtifactError(where, f"channels must be 1 or 3, got {self.channels!r}")
        if self.color not in ("gray", "rgb"):
            raise ArtifactError(where, f"color must be 'gray' or 'rgb', got {self.color!r}")
        if self.color == "rgb" and self.channels != 3:
            raise ArtifactError(where, "color 'rgb' needs channels 3")
        for name in ("mean", "std"):
            vec = getattr(self, name)
            if not isinstance(vec, list) or len(vec) != self.channels:
                raise ArtifactError(where, f"{name} must list one number per channel ({self.channels}), got {vec!r}")
            try:
                setattr(self, name, [float(v) for v in vec])
            except (TypeError, ValueError) as exc:
                raise ArtifactError(where, f"{name} has a non-number: {vec!r}") from exc
        if any(s <= 0 for s in self.std):
            raise ArtifactError(where, f"std must be positive, got {self.std}")
        if not isinstance(self.clahe, bool) or not isinstance(self.align_eyes, bool):
            raise ArtifactError(where, "clahe and align_eyes must be true or false")
        try:
            self.crop_margin = float(self.crop_margin)
        except (TypeError, ValueError) as exc:
            raise ArtifactError(where, f"crop_margin must be a number, got {self.crop_margin!r}") from exc
        if not -0.4 <= self.crop_margin <= 2.0:
            raise ArtifactError(where, f"crop_margin must lie in [-0.4, 2], got {self.crop_margin}")
        if self.extra.get("input_blur"):
            # cards of models trained on the Gaussian-blurred FER2013 Training copy (replaced on
            # 2026-11-28) asked for a matching low-pass at inference; such models are obsolete
            raise ArtifactError(where, f"input_blur {self.extra['input_blur']!r}: this model was trained on the "
                                       "blurred FER2013 Training copy and is obsolete; retrain it on the sharp "
                                       "data (input low-pass is no longer supported)")
        if not isinstance(self.metrics, dict):
            raise ArtifactError(where, "metrics must be an object")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return d

    @classmethod
    def from_dict(cls, data: Any, where: str | Path | None = None) -> "ModelCard":
        if not isinstance(data, dict):
            raise ArtifactError(where, "model card must be a JSON object")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ArtifactError(where, f"model card lacks required keys {missing}")
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        kwargs = {k: data[k] for k in known if k in data}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra).validate(where)


def load_model_card(path: str | Path) -> ModelCard:
    """Read and validate model_card.json (or the one inside a model folder)."""
    path = resolve_file(path, "model_card.json")
    return ModelCard.from_dict(read_json(path), where=path)


def save_model_card(path: str | Path, card: ModelCard) -> Path:
    path = resolve_file(path, "model_card.json")
    card.validate(path)
    return write_json(path, card.to_dict())
