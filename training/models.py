"""timm backbones for small gray faces, and checkpoints that describe themselves.

One factory (``timm.create_model``) sits behind every backbone, and the backbone
name, class list, input size, channels and stem option travel inside every
checkpoint, so a checkpoint can always be rebuilt and can never be paired with
the wrong class list.

Small inputs: ImageNet stems divide the input by 4 (ResNet, ConvNeXt) or 2
(EfficientNet, MobileNetV3) before the first stage, which leaves a 48-64 px face
with 2x2 maps or less at the last stage. ``stem_stride`` sets that total stem
reduction lower (1 or 2) by shortening the stem's stride, keeping parameter shapes
(so checkpoints still load); for ViTs it is the patch size. The value in force is
recorded in the checkpoint and re-applied when the checkpoint is loaded.

``last_stride`` 1 (MobileNetV3 / EfficientNet) takes the stride out of the last strided stage
instead: the same 3x3 maps at 48 px as stem stride 1, with the early layers kept at their native,
four-times-cheaper resolution (docs/decisions.md, "Student stride"). Recorded and re-applied the
same way; parameter shapes do not change.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import timm
import torch
from torch import nn

from fer_models.classes import check_same_classes
from fer_models.errors import ArtifactError
from fer_models.files import atomic_path
from training import fer_vgg  # importing it registers fervgg_s / fervgg_m with timm

log = logging.getLogger(__name__)

CHECKPOINT_VERSION = 1
MIN_MATCH_RATIO = 0.60
SUPPORTED = ("resnet18", "resnet50", "efficientnet_b3", "convnext_tiny", "mobilenetv3_large_100", "vit_*",
             "fervgg_s", "fervgg_m")
NATIVE_STEM = {"resnet": 4, "convnext": 4, "efficientnet": 2, "mobilenetv3": 2}
ALLOWED_STEM = {"resnet": (1, 2, 4), "convnext": (1, 2, 4), "efficientnet": (1, 2), "mobilenetv3": (1, 2)}
LAST_STRIDE_FAMILIES = ("efficientnet", "mobilenetv3")


def backbone_family(backbone: str) -> str:
    """The stem family of a timm model name (resnet, convnext, efficientnet, mobilenetv3, vit, vgg)."""
    name = backbone.lower()
    if name in fer_vgg.WIDTHS:
        return "vgg"
    for fam in ("resnet", "convnext", "efficientnet", "mobilenetv3", "vit"):
        if name.startswith(fam) or name.startswith("tf_" + fam):
            return fam
    if name.startswith("deit"):
        return "vit"
    raise ValueError(f"backbone {backbone!r} is not supported; expected one of {SUPPORTED} "
                     "(any timm resnet*, convnext*, efficientnet*, mobilenetv3*, vit_* name, or fervgg_s/m)")


def native_stem_stride(backbone: str) -> int | None:
    """Stem reduction of the unmodified model (None for ViTs, whose patch size is in the name)."""
    return NATIVE_STEM.get(backbone_family(backbone))


def _apply_stem_stride(model: nn.Module, family: str, stem_stride: int) -> None:
    if family == "resnet":
        model.conv1.stride = (2, 2) if stem_stride >= 2 else (1, 1)
        if stem_stride < 4:
            model.maxpool = nn.Identity()
    elif family in ("efficientnet", "mobilenetv3"):
        model.conv_stem.stride = (stem_stride, stem_stride)
    elif family == "convnext":
        old = model.stem[0]
        if stem_stride == 4:
            return
        pad: Any = 1 if stem_stride == 2 else "same"
        new = nn.Conv2d(old.in_channels, old.out_channels, old.kernel_size, stride=stem_stride, padding=pad,
                        bias=old.bias is not None)
        model.stem[0] = new


def _apply_last_stride(model: nn.Module, backbone: str) -> None:
    """Stride 1 in the first block of the last stage that has stride 2 (no dilation: at 3x3 maps a
    dilated 5x5 kernel would see little more than its centre)."""
    for stage in reversed(list(model.blocks)):
        conv = getattr(stage[0], "conv_dw", None)
        if conv is not None and tuple(conv.stride) == (2, 2):
            conv.stride = (1, 1)
            return
    raise ValueError(f"{backbone} has no strided stage to take the stride out of")


def create_model(backbone: str, num_classes: int, in_chans: int = 1, input_size: int = 64,
                 pretrained_checkpoint: str | Path | None = None, stem_stride: int | None = None,
                 classes: Sequence[str] | None = None, drop_rate: float = 0.0,
                 last_stride: int | None = None) -> nn.Module:
    """A timm model from scratch (or initialised from a local checkpoint), adapted to small inputs.

    ``stem_stride`` None keeps the native stem; ``last_stride`` None (or 2) the native last stage,
    1 takes its stride out (MobileNetV3 / EfficientNet). ``pretrained_checkpoint`` is a local file
    (our checkpoint or a bare state_dict); its weights are loaded where names and shapes
    match, and it is refused if they cover less than 60% of the model's parameters or if
    it records a different class list than ``classes``.
    """
    family = backbone_family(backbone)
    kwargs: dict[str, Any] = dict(pretrained=False, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)
    if family == "vit":
        kwargs["img_size"] = input_size
        if stem_stride is not None:
            if input_size % stem_stride:
                raise ValueError(f"ViT patch size (stem stride) {stem_stride} must divide input size {input_size}")
            kwargs["patch_size"] = stem_stride
    elif stem_stride is not None and stem_stride not in ALLOWED_STEM.get(family, ()):
        raise ValueError(f"stem stride {stem_stride} not available for {backbone}; "
                         + (f"choose from {ALLOWED_STEM[family]}" if family in ALLOWED_STEM
                            else "it has no stem option (leave --stem-stride unset)"))
    if last_stride not in (None, 1, 2):
        raise ValueError(f"last stride must be 1 or 2 (native), got {last_stride}")
    if last_stride == 1 and family not in LAST_STRIDE_FAMILIES:
        raise ValueError(f"--last-stride is available for {', '.join(LAST_STRIDE_FAMILIES)} backbones, "
                         f"not {backbone}")
    try:
        model = timm.create_model(backbone, **kwargs)
    except RuntimeError as exc:  # timm: "Unknown model (...)"
        raise ValueError(f"timm cannot build {backbone!r}: {exc}") from exc
    if family != "vit" and stem_stride is not None:
        _apply_stem_stride(model, family, stem_stride)
    if last_stride == 1:
        _apply_last_stride(model, backbone)
    if pretrained_checkpoint is not None:
        load_pretrained(model, pretrained_checkpoint, classes=classes)
    return model


def effective_stem_stride(backbone: str, stem_stride: int | None) -> int | None:
    """The stem reduction in force: the option, else the native value (ViT: None = name's patch)."""
    return stem_stride if stem_stride is not None else native_stem_stride(backbone)


# ----------------------------------------------------------------------------- checkpoints

def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DistributedDataParallel / torch.compile wrappers."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return getattr(model, "_orig_mod", model)


def checkpoint_payload(model: nn.Module, *, backbone: str, classes: Sequence[str], input_size: int,
                       in_chans: int, stem_stride: int | None, crop_spec: dict[str, Any] | None = None,
                       **extra: Any) -> dict[str, Any]:
    """The dict saved as a checkpoint: how to rebuild the model, its weights, and ``extra`` state."""
    return {
        "format_version": CHECKPOINT_VERSION,
        "backbone": backbone,
        "classes": list(classes),
        "num_classes": len(classes),
        "input_size": int(input_size),
        "in_chans": int(in_chans),
        "stem_stride": stem_stride,
        "crop_spec": crop_spec,
        "state_dict": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        **extra,
    }


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """torch.save through a temporary file and a rename (a crash never leaves half a checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict on CPU with ``weights_only`` (no arbitrary pickles)."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(path, "checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors: all mean "not a readable checkpoint"
        raise ArtifactError(path, f"not a readable torch checkpoint ({exc})") from exc
    if not isinstance(data, dict):
        raise ArtifactError(path, "checkpoint is not a dict")
    return data


def _state_dict_of(data: dict[str, Any]) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model", "model_state_dict"):
        if key in data and isinstance(data[key], dict):
            data = data[key]
            break
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in data.items()
            if isinstance(v, torch.Tensor)}


def match_ratio(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> tuple[float, list[str]]:
    """Share of the model's parameter elements that ``state_dict`` provides with the same name and shape."""
    total = matched = 0
    names = []
    for name, p in unwrap(model).named_parameters():
        total += p.numel()
        t = state_dict.get(name)
        if t is not None and tuple(t.shape) == tuple(p.shape):
            matched += p.numel()
            names.append(name)
    return (matched / total if total else 0.0), names


def load_pretrained(model: nn.Module, path: str | Path, classes: Sequence[str] | None = None,
                    min_ratio: float = MIN_MATCH_RATIO) -> float:
    """Initialise ``model`` from a local checkpoint where names and shapes match; returns the match ratio.

    Refused (ArtifactError) when the checkpoint records another class list, or when
    it provides less than ``min_ratio`` of the model's parameters: a checkpoint of a
    different backbone would otherwise load a handful of tensors and look fine.
    """
    path = Path(path)
    data = read_checkpoint(path)
    if classes is not None and data.get("classes") is not None:
        check_same_classes(classes, data["classes"], path, "checkpoint classes")
    sd = _state_dict_of(data)
    ratio, names = match_ratio(model, sd)
    if ratio < min_ratio:
        raise ArtifactError(path, f"parameters match the requested backbone for only {ratio:.1%} "
                                  f"(need at least {min_ratio:.0%}); checkpoint backbone "
                                  f"{data.get('backbone', 'unknown')!r}")
    own = unwrap(model).state_dict()
    subset = {k: v for k, v in sd.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    unwrap(model).load_state_dict(subset, strict=False)
    log.info("initialised from %s: %.1f%% of parameters matched", path, 100 * ratio)
    return ratio


def model_from_checkpoint(path: str | Path, classes: Sequence[str] | None = None,
                          backbone: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights exactly.

    ``classes`` and ``backbone``, when given, must equal what the checkpoint records.
    """
    path = Path(path)
    data = read_checkpoint(path)
    missing = [k for k in ("backbone", "classes", "input_size", "in_chans", "state_dict") if k not in data]
    if missing:
        raise ArtifactError(path, f"not a fer-train checkpoint (lacks {missing})")
    if classes is not None:
        check_same_classes(classes, data["classes"], path, "checkpoint classes")
    if backbone is not None and backbone != data["backbone"]:
        raise ArtifactError(path, f"checkpoint backbone is {data['backbone']!r}, expected {backbone!r}")
    model = create_model(data["backbone"], len(data["classes"]), data["in_chans"], data["input_size"],
                         stem_stride=data.get("stem_stride"), last_stride=data.get("last_stride"))
    try:
        model.load_state_dict(_state_dict_of(data), strict=True)
    except RuntimeError as exc:
        raise ArtifactError(path, f"weights do not fit backbone {data['backbone']!r}: {exc}") from exc
    return model, data
