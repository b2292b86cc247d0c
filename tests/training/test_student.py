"""Students: KD / DKD / none runs on a real 56-image FER2013 subset, split targets, and the refusals."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_models.classes import FER7
from training.aggregate import run_config_name
from training.cli import main
from training.losses import dkd_loss, kd_loss
from training.models import checkpoint_payload, create_model, model_from_checkpoint, save_checkpoint
from training.softlabel_files import write_softlabels, write_split_softlabels
from training.student import (STUDENT_BACKBONE, StudentOptionError, dkd_warmup, load_teacher_targets,
                              make_student_loss)

from .conftest import good_logits, mark_diagnosed

# 28 train / 14 val / 14 test images at 32 px: a few seconds per epoch on one thread
TINY = ["--input-size", "32", "--batch-size", "14", "--threads", "1", "--no-progress", "--seed", "3",
        "--warmup-epochs", "0.5"]


def _teacher(root, index, name, seed, strength=3.0):
    return mark_diagnosed(write_softlabels(
        root / name / "softlabels" / index.short_name, index, good_logits(index.labels, strength=strength, seed=seed),
        2.0, "teacher", {"producer": {"checkpoint": f"{name}.pt", "checkpoint_sha256": f"{seed:064d}"}}))


@pytest.fixture(scope="module")
def mini_index(tmp_path_factory, mini_tree):
    """This module's own index of the 56-image subset (the session ``mini_index`` object gets re-pointed by
    other tests that write it elsewhere)."""
    from training.index import build_index, load_index, write_index

    out = tmp_path_factory.mktemp("student_index") / "index"
    write_index(build_index(mini_tree, progress=False), out)
    return load_index(out)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory, mini_index):
    root = tmp_path_factory.mktemp("teachers")
    return {"rn18": _teacher(root, mini_index, "rn18", 1), "b3": _teacher(root, mini_index, "b3", 2, 1.5)}


def _student(index, out, *extra):
    return main(["student", "--index", str(index.path), "--out", str(out), *TINY, *extra])


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_kd_smoke_run(mini_index, teachers, tmp_path):
    run = tmp_path / "kd_s3"
    assert _student(mini_index, run, "--teacher", str(teachers["rn18"].parent.parent), "--distill", "kd",
                    "--epochs", "2") == 0
    for name in ("args.json", "classes.json", "seed.json", "history.csv", "last.pt", "best.pt", "metrics_val.json",
                 "metrics_test.json", "logits_test.npz", "calibration.json", "summary.json"):
        assert (run / name).is_file(), name
    rec = json.loads((run / "args.json").read_text())
    assert rec["config"] == "kd_a0.5_T2_rn18" == run_config_name(run)
    assert rec["backbone"] == STUDENT_BACKBONE and rec["role"] == "student" and rec["epochs"] == 2
    d = rec["distillation"]
    assert d["method"] == "kd" and d["alpha"] == 0.5 and d["temperature"] == 2.0 and d["targets"] == "single"
    align = json.loads((teachers["rn18"] / "alignment.json").read_text())
    assert d["teachers"][0]["arrays_sha256"] == align["arrays_sha256"]
    assert d["teachers"][0]["index_fingerprint"] == mini_index.fingerprint
    assert d["teachers"][0]["checkpoint_sha256"] == f"{1:064d}"
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"] and all(math.isfinite(float(r["train_loss"])) for r in rows)
    for r in rows:  # the safety-rail columns (issue 14) of every run
        assert 0 < float(r["grad_norm_mean"]) <= float(r["grad_norm_max"]) and float(r["peak_rss_mb"]) > 100
        assert float(r["optimizer_state_mb"]) > 0 and r["gpu_peak_mb"] == ""
    model, ck = model_from_checkpoint(run / "best.pt", classes=FER7, backbone=STUDENT_BACKBONE)
    assert ck["classes"] == list(FER7) and ck["input_size"] == 32 and ck["role"] == "student"
    assert ck["distillation"]["teachers"][0]["arrays_sha256"] == align["arrays_sha256"]
    assert ck["index_fingerprint"] == mini_index.fingerprint and ck["config"] == "kd_a0.5_T2_rn18"
    assert json.loads((run / "metrics_test.json").read_text())["n"] == 14


def test_dkd_smoke_run_resumes_exactly(mini_index, teachers, tmp_path, capsys):
    args = ["--teacher", str(teachers["rn18"]), "--distill", "dkd", "--epochs", "2", "--dkd-warmup-epochs", "1",
            "--no-calibrate"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert _student(mini_index, a, *args) == 0
    rec = json.loads((a / "args.json").read_text())
    assert rec["config"] == "dkd_a0.5_b4_T2_wu1_rn18"
    d = rec["distillation"]
    assert (d["method"], d["beta"], d["dkd_warmup_epochs"], d["ce_weight"]) == ("dkd", 4.0, 1.0, 1.0)
    assert "TCKD" in d["loss"] and "raw logits" in d["teacher_logits"]

    assert _student(mini_index, b, *args, "--stop-after-epoch", "1") == 0
    assert _student(mini_index, b, *args, "--resume") == 0
    wa, wb = _weights(a / "last.pt"), _weights(b / "last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

    # resuming with another objective or with changed teacher arrays is refused
    capsys.readouterr()
    (b / "metrics_test.json").unlink()
    assert _student(mini_index, b, *args[:-1], "--beta", "8", "--resume") == 2
    assert "beta" in capsys.readouterr().err
    other = _teacher(tmp_path, mini_index, "rn18", 7)
    assert _student(mini_index, b, "--teacher", str(other), *args[2:], "--resume") == 2
    assert "teacher_arrays_sha256" in capsys.readouterr().err


def test_split_targets_from_two_folders(mini_index, teachers, tmp_path):
    run = tmp_path / "split"
    assert _student(mini_index, run, "--teacher", str(teachers["rn18"]), "--teacher", str(teachers["b3"]),
                    "--teacher-weight", "0.7", "0.3", "--distill", "dkd", "--epochs", "1", "--no-calibrate") == 0
    rec = json.loads((run / "args.json").read_text())
    d = rec["distillation"]
    assert d["targets"] == "split" and d["weights"] == pytest.approx([0.7, 0.3])
    assert [m["name"] for m in d["members"]] == ["rn18", "b3"] and len(d["teachers"]) == 2
    assert rec["config"] == "dkd_a0.5_b4_T2_rn18+b3_w0.7-0.3"
    assert rec["teacher_arrays_sha256"] == [t["arrays_sha256"] for t in d["teachers"]]


def test_targets_split_folder_fused_folder_and_loss_lookup(mini_index, teachers, tmp_path):
    z1 = load_teacher_targets([teachers["rn18"]], mini_index).logits[0]
    z2 = load_teacher_targets([teachers["b3"]], mini_index).logits[0]
    split = mark_diagnosed(write_split_softlabels(tmp_path / "ens" / "softlabels_split" / mini_index.short_name,
                                                  mini_index, np.stack([z1, z2]), [0.25, 0.75], ["rn18", "b3"], 2.0))
    t = load_teacher_targets([split], mini_index)
    assert t.split and t.weights == pytest.approx([0.25, 0.75]) and t.name == "ens-split"
    assert [m["name"] for m in t.members] == ["rn18", "b3"]
    assert load_teacher_targets([split], mini_index, [1, 1]).weights == [0.5, 0.5]
    with pytest.raises(StudentOptionError, match="2 members"):
        load_teacher_targets([split], mini_index, [1, 1, 1])
    with pytest.raises(StudentOptionError, match="only --teacher"):
        load_teacher_targets([split, teachers["rn18"]], mini_index)

    # the hook looks teacher rows up by index position and applies T in the loss to the raw logits
    pos = torch.tensor([40, 3, 17, 9, 55, 28])
    y = torch.from_numpy(mini_index.labels[pos.numpy()])
    zs = torch.randn(len(pos), 7, generator=torch.Generator().manual_seed(0))
    zt1, zt2 = torch.from_numpy(z1)[pos], torch.from_numpy(z2)[pos]
    dkd = make_student_loss("dkd", t, 0.5, 4.0, 3.0, warmup_epochs=4.0, ce_weight=0.5)("cpu")
    expected = dkd_loss(zs, [(zt1, 0.25), (zt2, 0.75)], y, 0.5, 4.0, 3.0, 0.25, 0.5)
    torch.testing.assert_close(dkd(zs, y, pos, 1.0), expected)
    torch.testing.assert_close(dkd(zs, y, pos, 0.0), 0.5 * F.cross_entropy(zs, y))  # KL terms not yet ramped in
    single = load_teacher_targets([teachers["rn18"]], mini_index)
    kd = make_student_loss("kd", single, 0.3, temperature=2.0)("cpu")
    torch.testing.assert_close(kd(zs, y, pos, 0.0), kd_loss(zs, zt1, y, 0.3, 2.0))
    none = make_student_loss("none", None, label_smoothing=0.1)("cpu")
    torch.testing.assert_close(none(zs, y, pos, 0.0), F.cross_entropy(zs, y, label_smoothing=0.1))
    assert [dkd_warmup(p, 5) for p in (0, 2.5, 5, 9)] == [0.0, 0.5, 1.0, 1.0] and dkd_warmup(0, 0) == 1.0


def test_misaligned_teacher_refused(mini_index, teachers, train_index_dir, tmp_path, capsys):
    from training.index import load_index

    other = load_index(train_index_dir)  # another index (350 rows)
    foreign = write_softlabels(tmp_path / "foreign", other, good_logits(other.labels), 2.0, "teacher", {})
    out = tmp_path / "run"
    capsys.readouterr()
    assert _student(mini_index, out, "--teacher", str(foreign), "--distill", "kd", "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert "not aligned with the index" in err and "made for index" in err and "350 rows" in err
    assert not out.exists()

    # truncated arrays (the last rows cut off)
    cut = tmp_path / "cut"
    shutil.copytree(teachers["rn18"], cut)
    arrays = dict(np.load(cut / "softlabels.npz"))
    np.savez(cut / "softlabels.npz", **{k: v[:-5] for k, v in arrays.items()})
    assert _student(mini_index, out, "--teacher", str(cut), "--distill", "kd", "--epochs", "1") == 2
    assert "truncated or padded" in capsys.readouterr().err and not out.exists()

    # class columns in another order: refused by the class check
    ok = _teacher(tmp_path, mini_index, "t", 4)
    meta = json.loads((ok / "alignment.json").read_text())
    meta["classes"] = meta["classes"][::-1]
    (ok / "alignment.json").write_text(json.dumps(meta))
    assert _student(mini_index, out, "--teacher", str(ok), "--distill", "dkd", "--epochs", "1") == 2
    assert "classes" in capsys.readouterr().err and not out.exists()


def test_non_matching_init_checkpoint_refused(mini_index, teachers, tmp_path, capsys):
    ck = tmp_path / "rn18.pt"
    save_checkpoint(ck, checkpoint_payload(create_model("resnet18", 7, 1, 32), backbone="resnet18", classes=FER7,
                                           input_size=32, in_chans=1, stem_stride=None))
    out = tmp_path / "run"
    capsys.readouterr()
    assert _student(mini_index, out, "--teacher", str(teachers["rn18"]), "--distill", "kd", "--epochs", "1",
                    "--init-checkpoint", str(ck)) == 2
    err = capsys.readouterr().err
    assert "match the requested backbone for only" in err and "%" in err and "resnet18" in err
    ratio = float(err.split("for only ")[1].split("%")[0])
    assert 0 <= ratio < 60
    assert not out.exists()


def test_none_baseline_from_matching_init_checkpoint(mini_index, tmp_path):
    init = tmp_path / "init.pt"
    model = create_model(STUDENT_BACKBONE, 7, 1, 32)
    save_checkpoint(init, checkpoint_payload(model, backbone=STUDENT_BACKBONE, classes=FER7, input_size=32,
                                             in_chans=1, stem_stride=None))
    run = tmp_path / "none"
    assert _student(mini_index, run, "--distill", "none", "--epochs", "1", "--init-checkpoint", str(init),
                    "--no-calibrate") == 0
    rec = json.loads((run / "args.json").read_text())
    assert rec["config"] == "none" and rec["distillation"]["method"] == "none"
    assert rec["distillation"]["teachers"] == [] and rec["pretrained_checkpoint"] == str(init)
    assert rec["lr"] == 1e-3 and rec["weight_decay"] == 0.05 and rec["label_smoothing"] == 0.0
    assert (run / "metrics_test.json").is_file()


def test_a_last_stride_1_student_records_it_and_a_resume_keeps_it(mini_index, tmp_path, capsys):
    out = tmp_path / "l1"
    assert _student(mini_index, out, "--distill", "none", "--epochs", "1", "--last-stride", "1",
                    "--no-calibrate") == 0
    assert json.loads((out / "args.json").read_text())["last_stride"] == 1
    from training.models import model_from_checkpoint

    model, ck = model_from_checkpoint(out / "best.pt")
    assert ck["last_stride"] == 1 and model.blocks[5][0].conv_dw.stride == (1, 1)
    (out / "summary.json").unlink()
    capsys.readouterr()
    assert _student(mini_index, out, "--distill", "none", "--epochs", "1", "--resume") == 2
    assert "last_stride: 1 -> None" in capsys.readouterr().err


def test_defaults_and_option_refusals(mini_index, teachers, tmp_path, capsys):
    from training.cli import build_parser

    a = build_parser().parse_args(["student", "--index", "i", "--out", "o", "--teacher", "t"])
    assert (a.epochs, a.batch_size, a.alpha, a.beta, a.temperature, a.dkd_warmup_epochs, a.distill) == \
        (20, 128, 0.5, 4.0, 2.0, 5.0, "dkd")
    out = tmp_path / "run"
    capsys.readouterr()
    for extra, msg in ((["--distill", "kd"], "needs at least one --teacher"),
                       (["--distill", "kd", "--teacher", str(teachers["rn18"]), "--ce-weight", "0.5"], "--ce-weight"),
                       (["--distill", "dkd", "--teacher", str(teachers["rn18"]), "--label-smoothing", "0.1"],
                        "--label-smoothing"),
                       (["--distill", "kd", "--teacher", str(teachers["rn18"]), "--teacher-weight", "1", "2"],
                        "2 weights for 1")):
        assert _student(mini_index, out, *extra) == 2
        assert msg in capsys.readouterr().err
    assert not out.exists()
