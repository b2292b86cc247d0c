"""fer-train recalibrate-bn: BN statistics re-estimated on clean train faces, a new checkpoint chosen on val."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.bn_recalibration import recalibrate_bn, recalibrate_run
from training.cli import main
from training.data import FERDataset, crop_spec_to_dict, make_crop_spec
from training.models import checkpoint_payload, create_model, model_from_checkpoint, save_checkpoint


def _teacher(mini_index, run):
    """A ResNet18 whose BN statistics are far off (as after training on augmented batches)."""
    torch.manual_seed(0)
    model = create_model("resnet18", 7, 1, 32).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.fill_(0.7)
            m.running_var.fill_(5.0)
    save_checkpoint(run / "best.pt", checkpoint_payload(
        model, backbone="resnet18", classes=mini_index.classes, input_size=32, in_chans=1, stem_stride=4,
        crop_spec=crop_spec_to_dict(make_crop_spec(32)), epoch=7, index_fingerprint=mini_index.fingerprint))
    return model


def test_statistics_are_the_clean_faces_and_nothing_else_changes(mini_index):
    torch.manual_seed(0)
    model = create_model("resnet18", 7, 1, 32)
    params = {k: v.clone() for k, v in model.named_parameters()}
    ds = FERDataset(mini_index, make_crop_spec(32), split="train")
    assert recalibrate_bn(model, ds, batch_size=7) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not model.training and all(not m.training for m in model.modules())
    assert all(torch.equal(v, params[k]) for k, v in model.named_parameters())
    # the first BN sees conv1's output: its running mean is that output's per-channel mean over all faces
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        first = model.conv1(x)
    assert torch.allclose(model.bn1.running_mean, first.mean(dim=(0, 2, 3)), atol=1e-5)
    assert model.bn1.momentum == 0.1  # restored
    assert recalibrate_bn(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(1024, 7)), ds) == 0


def test_run_writes_a_traceable_checkpoint_and_chooses_on_val(mini_index, tmp_path, capsys):
    from fer_models.files import sha256_file

    run = tmp_path / "teacher"
    run.mkdir()
    _teacher(mini_index, run)
    rec = recalibrate_run(run, mini_index.path, images=28, tta="flip")
    saved = json.loads((run / "bn_recalibration.json").read_text())
    assert saved == rec and rec["images"] == 28 and rec["split"] == "train" and rec["val_tta"] == "flip"
    assert rec["source_sha256"] == sha256_file(run / "best.pt") and rec["sha256"] == sha256_file(run / "best_bn.pt")
    b, a = rec["val_before"], rec["val_after"]
    better = (a["accuracy"], -a["nll"]) > (b["accuracy"], -b["nll"])
    assert rec["chosen"] == ("best_bn.pt" if better else "best.pt")
    old, ck_old = model_from_checkpoint(run / "best.pt")
    new, ck_new = model_from_checkpoint(run / "best_bn.pt", classes=mini_index.classes)
    assert ck_new["epoch"] == 7 and ck_new["bn_recalibration"]["source_sha256"] == rec["source_sha256"]
    assert all(torch.equal(p, q) for p, q in zip(old.parameters(), new.parameters()))
    assert not torch.allclose(old.bn1.running_var, new.bn1.running_var)
    # the new file is a checkpoint like any other: soft labels from it pass their alignment diagnostic
    from training.softlabels import export_softlabels

    folder = export_softlabels(run, mini_index.path, checkpoint="best_bn.pt", out=tmp_path / "sl", device="cpu",
                               diagnostic_rows=8, progress=False)
    assert json.loads((folder / "alignment.json").read_text())["diagnostic"]["status"] == "passed"
    assert main(["recalibrate-bn", str(run), "--index", str(mini_index.path), "--images", "14"]) == 0
    assert "chosen: best" in capsys.readouterr().out
    with pytest.raises(ValueError, match="images"):
        recalibrate_run(run, mini_index.path, images=0)
    assert np.isfinite(a["accuracy"])


@pytest.mark.parametrize("after, chosen", [
    ({"accuracy": 0.61, "nll": 1.20}, "best_bn.pt"),   # higher val accuracy
    ({"accuracy": 0.60, "nll": 1.05}, "best_bn.pt"),   # same accuracy, lower NLL
    ({"accuracy": 0.60, "nll": 1.10}, "best.pt"),      # no better: the original stays chosen
    ({"accuracy": 0.59, "nll": 0.90}, "best.pt"),      # lower accuracy, whatever the NLL
])
def test_the_choice_is_val_accuracy_then_nll(mini_index, tmp_path, monkeypatch, after, chosen):
    import training.bn_recalibration as mod

    run = tmp_path / "teacher"
    run.mkdir()
    _teacher(mini_index, run)
    scores = iter([{"accuracy": 0.60, "nll": 1.10, "macro_f1": 0.5}, {**after, "macro_f1": 0.5}])
    monkeypatch.setattr(mod, "_val_score", lambda *a, **k: next(scores))
    assert recalibrate_run(run, mini_index.path, images=14)["chosen"] == chosen
