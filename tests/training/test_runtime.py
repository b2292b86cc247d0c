"""Numeric settings chosen per device and backbone family (docs/benchmarks.md has the measurements)."""

from __future__ import annotations

import pytest
import torch

from training.runtime import cpu_has_bf16, pick_amp

CPU = torch.device("cpu")


def test_cpu_auto_uses_bf16_only_for_dense_conv_families_on_a_bf16_cpu():
    expected = torch.bfloat16 if cpu_has_bf16() else None
    assert pick_amp("auto", CPU, "resnet") is expected
    assert pick_amp("auto", CPU, "convnext") is expected
    assert pick_amp("auto", CPU, "mobilenetv3") is None  # depthwise convs: bf16 measured slower
    assert pick_amp("auto", CPU, "efficientnet") is None
    assert pick_amp("auto", CPU, None) is None


def test_explicit_modes_on_cpu(capsys):
    assert pick_amp("off", CPU, "resnet") is None
    assert pick_amp("bf16", CPU, "mobilenetv3") is torch.bfloat16
    assert pick_amp("fp16", CPU, "resnet") is None
    assert "fp16 ignored on cpu" in capsys.readouterr().err


@pytest.mark.skipif(not cpu_has_bf16(), reason="CPU without bf16 kernels")
def test_bf16_autocast_step_gives_finite_fp32_gradients():
    from training.models import create_model

    model = create_model("resnet18", 7, 1, 32).to(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=pick_amp("auto", CPU, "resnet")):
        logits = model(x)
    assert logits.dtype == torch.bfloat16
    torch.nn.functional.cross_entropy(logits.float(), torch.arange(4)).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
