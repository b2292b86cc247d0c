"""The VGG-style teacher for 48 px faces: built through timm like every backbone, trains, reloads, exports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch

from training.cli import main
from training.models import backbone_family, checkpoint_payload, create_model, model_from_checkpoint, save_checkpoint


@pytest.mark.parametrize("name,width,params_m", [("fervgg_s", 256, (1.0, 1.4)), ("fervgg_m", 512, (4.4, 5.0))])
def test_built_by_timm_with_3x3_maps_at_48px(name, width, params_m):
    assert name in timm.list_models("fervgg*")
    model = create_model(name, 7, 1, 48).eval()
    assert backbone_family(name) == "vgg"
    with torch.no_grad():
        feats = model.forward_features(torch.zeros(2, 1, 48, 48))
        assert tuple(feats.shape) == (2, width, 3, 3)
        assert tuple(model(torch.zeros(2, 1, 48, 48)).shape) == (2, 7)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert params_m[0] < n < params_m[1]


def test_stem_option_and_pretrained_weights_refused():
    with pytest.raises(ValueError, match="no stem option"):
        create_model("fervgg_s", 7, 1, 48, stem_stride=2)
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("fervgg_s", pretrained=True)


def test_checkpoint_rebuilds_the_same_function(tmp_path):
    torch.manual_seed(0)
    model = create_model("fervgg_s", 7, 1, 48, drop_rate=0.2).eval()
    path = save_checkpoint(tmp_path / "m.pt", checkpoint_payload(model, backbone="fervgg_s", classes=list("abcdefg"),
                                                                 input_size=48, in_chans=1, stem_stride=None))
    again, data = model_from_checkpoint(path, backbone="fervgg_s")
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(x), model(x))
    assert data["stem_stride"] is None


def test_teacher_run_defaults_to_bf16_channels_last_and_exports(train_index_dir, tmp_path):
    """A real (tiny) teacher run: bf16 autocast where the CPU has kernels, then an ONNX export with parity."""
    from training.runtime import cpu_has_bf16

    run = tmp_path / "vgg"
    assert main(["teacher", "--index", str(train_index_dir), "--backbone", "fervgg_s", "--epochs", "1",
                 "--input-size", "48", "--batch-size", "32", "--max-train-samples", "64", "--max-eval-samples",
                 "28", "--threads", "1", "--no-progress", "--seed", "3", "--out", str(run)]) == 0
    rec = json.loads((run / "args.json").read_text())
    assert rec["backbone"] == "fervgg_s" and rec["stem_stride_effective"] is None
    assert rec["amp"] == ("bf16" if cpu_has_bf16() else "off")
    assert rec["channels_last_effective"] is True
    assert json.loads((run / "metrics_test.json").read_text())["n"] == 28
    assert main(["export", str(run), "--out", str(tmp_path / "exp")]) == 0
    card = json.loads((tmp_path / "exp" / "fp32" / "model_card.json").read_text())
    assert card["backbone"] == "fervgg_s" and card["input_size"] == 48
    diff = card["parity_max_abs_prob_diff"]
    assert np.isfinite(diff) and diff < 1e-4
