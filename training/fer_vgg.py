"""A VGG-style CNN sized for 48 px gray faces, registered with timm as ``fervgg_s`` / ``fervgg_m``.

Why it exists: on this CPU the ImageNet families pay for trunks built for 224 px (ResNet50 about
35-70 min an epoch at 48 px, EfficientNet-B3 20-25 min) and still reach 55-66% val after many
epochs, while the issue's quick probe of a plain VGG-style net reached 66.5% val in 12 epochs and
35 minutes. A fourth, cheap and strong teacher of another family makes the ensemble better per
CPU-hour than a longer schedule of the others.

Layout (FER2013 VGG variants, e.g. Khaireddin & Chen 2021): four stages of two 3x3 conv + BN +
ReLU, each followed by a 2x2 max-pool (48 -> 24 -> 12 -> 6 -> 3), then global average pooling,
dropout and one linear layer. timm's own ``vgg*`` models are not used: their 7x7 4096-wide
``ConvMlp`` head alone holds about 100M parameters, which a 48 px face does not need.

Registering with timm keeps one factory behind every backbone (``timm.create_model`` in
``training.models``), so checkpoints of this net rebuild, evaluate and export like any other.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn
from timm.models import register_model

WIDTHS = {"fervgg_s": (32, 64, 128, 256), "fervgg_m": (64, 128, 256, 512)}


class FerVGG(nn.Module):
    """VGG-style trunk for small faces; ``forward_features`` / ``forward_head`` as timm models have."""

    def __init__(self, widths: Sequence[int], num_classes: int = 7, in_chans: int = 1, drop_rate: float = 0.0,
                 **_: Any):
        super().__init__()
        layers: list[nn.Module] = []
        c = in_chans
        for w in widths:
            for _ in range(2):
                layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.num_features = c
        self.num_classes = num_classes
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)
        x = self.head_drop(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _build(name: str, pretrained: bool, **kwargs: Any) -> FerVGG:
    if pretrained:
        raise ValueError(f"{name} has no pretrained weights (train from scratch)")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):  # timm passes these to every model
        kwargs.pop(key, None)
    return FerVGG(WIDTHS[name], **kwargs)


@register_model
def fervgg_s(pretrained: bool = False, **kwargs: Any) -> FerVGG:
    """Widths 32-64-128-256 (about 1.2M parameters): the issue's probe scale."""
    return _build("fervgg_s", pretrained, **kwargs)


@register_model
def fervgg_m(pretrained: bool = False, **kwargs: Any) -> FerVGG:
    """Widths 64-128-256-512 (about 4.7M parameters)."""
    return _build("fervgg_m", pretrained, **kwargs)
