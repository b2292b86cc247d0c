"""fer-train adapt: what trains, BatchNorm frozen vs re-estimated, the mix index, the gates, a normal run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fer_models.classes import FER7
from fer_models.errors import ArtifactError, ClassListMismatch
from training.adapt import STUDENT_BACKBONE, AdaptOptionError, trainable_names
from training.ckplus_index import build_ckplus_index, write_ckplus_index
from training.cli import main
from training.data import crop_spec_to_dict, make_crop_spec
from training.index import build_index, load_index, write_index
from training.models import checkpoint_payload, create_model, save_checkpoint

from .test_ckplus_index import fake_ckplus

TINY = ["--batch-size", "16", "--eval-batch-size", "64", "--threads", "1", "--no-progress", "--epochs", "1",
        "--seed", "3", "--replay-ratio", "0.75"]


@pytest.fixture(scope="module")
def fer_index(tmp_path_factory, mini_tree):
    out = tmp_path_factory.mktemp("adapt_fer") / "index"
    write_index(build_index(mini_tree, progress=False), out)
    return load_index(out)


@pytest.fixture(scope="module")
def ck_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt_ck")
    index, record = build_ckplus_index(fake_ckplus(root / "ck", n_subjects=12, seed=4), 0.3, 0.2)
    return load_index(write_ckplus_index(index, record, root / "index"))


def _student(root, index, backbone=STUDENT_BACKBONE, classes=FER7, seed=0):
    torch.manual_seed(seed)
    model = create_model(backbone, len(classes), 1, 32, stem_stride=2)
    folder = root / f"student_{backbone}_{seed}"
    folder.mkdir(parents=True)
    save_checkpoint(folder / "best.pt", checkpoint_payload(
        model, backbone=backbone, classes=classes, input_size=32, in_chans=1, stem_stride=2,
        crop_spec=crop_spec_to_dict(make_crop_spec(32)), index_name=index.name, index_fingerprint=index.fingerprint,
        role="student", epoch=9))
    return folder


@pytest.fixture(scope="module")
def student(tmp_path_factory, fer_index):
    return _student(tmp_path_factory.mktemp("students"), fer_index)


def _adapt(student, ck_index, fer_index, out, *extra):
    return main(["adapt", str(student), "--index", str(ck_index.path), "--replay-index", str(fer_index.path),
                 "--out", str(out), *TINY, *extra])


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _changed(before, after):
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_head_only_with_frozen_bn_changes_only_the_classifier(student, ck_index, fer_index, tmp_path):
    run = tmp_path / "head"
    assert _adapt(student, ck_index, fer_index, run, "--train", "head") == 0
    for name in ("args.json", "classes.json", "seed.json", "history.csv", "best.pt", "last.pt", "metrics_val.json",
                 "metrics_test.json", "logits_test.npz", "calibration.json", "summary.json", "mix/index.json"):
        assert (run / name).is_file(), name
    before, after = _state(student / "best.pt"), _state(run / "best.pt")
    changed = _changed(before, after)
    assert changed and changed <= {"classifier.weight", "classifier.bias"}
    # frozen statistics: not one running mean/var moved although the loop ran model.train() every epoch
    assert not any(k.endswith(("running_mean", "running_var")) for k in changed)
    rec = json.loads((run / "args.json").read_text())
    assert rec["role"] == "adapted" and rec["command"] == "adapt" and rec["train"] == "head" and rec["bn"] == "frozen"
    assert rec["adaptation"]["student_index_fingerprint"] == fer_index.fingerprint
    assert rec["index_fingerprint"] == load_index(run / "mix").fingerprint
    assert rec["adaptation"]["trainable_params"] == sum(after[k].numel() for k in ("classifier.weight",
                                                                                    "classifier.bias"))


def test_the_mix_holds_adapt_rows_a_replay_sample_and_the_eval_subjects(student, ck_index, fer_index, tmp_path):
    run = tmp_path / "mix"
    assert _adapt(student, ck_index, fer_index, run, "--train", "head", "--replay-ratio", "0.5") == 0
    mix = load_index(run / "mix")
    n_adapt = len(ck_index.positions("train"))
    train = [s for s, sp in zip(mix.sample_ids, mix.splits) if sp == "train"]
    assert sum(s.startswith("adapt/") for s in train) == n_adapt
    assert sum(s.startswith("replay/") for s in train) == pytest.approx(round(0.5 * n_adapt), abs=7)
    test_ids = {s.removeprefix("adapt/") for s, sp in zip(mix.sample_ids, mix.splits) if sp == "test"}
    assert test_ids == {ck_index.sample_ids[p] for p in ck_index.positions("test")}  # eval subjects only
    meta = json.loads((run / "mix" / "index.json").read_text())["mix"]
    assert meta["train"]["adapt_rows"] == n_adapt and meta["test"].startswith("adaptation index")
    # the copies are the indexed bytes (the loader re-hashes them on every decode)
    metrics = json.loads((run / "metrics_test.json").read_text())
    assert metrics["n"] == len(test_ids) and metrics["index_fingerprint"] == mix.fingerprint


def test_last_block_with_reestimated_bn(student, ck_index, fer_index, tmp_path):
    run = tmp_path / "lb"
    assert _adapt(student, ck_index, fer_index, run, "--train", "last-block", "--bn", "reestimate",
                  "--webcam-config", "training/configs/augment/webcam_aug.json") == 0
    before, after = _state(student / "best.pt"), _state(run / "best.pt")
    changed = _changed(before, after)
    stats = {k for k in changed if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}
    assert any(k.startswith("bn1.") for k in stats)  # re-estimated everywhere, the stem included
    weights = changed - stats
    assert weights and all(k.startswith(("blocks.6.", "conv_head.", "classifier.")) for k in weights), weights
    rec = json.loads((run / "args.json").read_text())
    assert rec["webcam_config_effective"]["jpeg"]["prob"] > 0
    assert "re-estimated" in rec["adaptation"]["bn_note"]


def test_what_each_train_choice_leaves_trainable():
    model = create_model(STUDENT_BACKBONE, 7, 1, 32)
    head = trainable_names(model, STUDENT_BACKBONE, "head")
    assert head == ["classifier.weight", "classifier.bias"]
    bn = trainable_names(model, STUDENT_BACKBONE, "bn")
    assert set(head) < set(bn) and all(n.endswith(("weight", "bias")) for n in bn)
    assert any(n.startswith("bn1.") for n in bn) and not any(n.startswith("conv_stem") for n in bn)
    last = trainable_names(model, STUDENT_BACKBONE, "last-block")
    assert set(head) < set(last) and any(n.startswith("conv_head.") for n in last)
    assert not any(n.startswith("blocks.5.") for n in last)
    r = create_model("resnet18", 7, 1, 32)
    assert {n.split(".")[0] for n in trainable_names(r, "resnet18", "last-block")} == {"layer4", "fc"}


def test_other_backbone_classes_or_replay_index_are_refused(tmp_path, ck_index, fer_index, student, capsys):
    from training.adapt import adapt  # the function, to see the exception types
    import argparse

    def args(st, **kw):
        ns = argparse.Namespace(student=str(st), checkpoint="best.pt", index=str(ck_index.path),
                                replay_index=str(fer_index.path), out=str(tmp_path / "x"), train="head", bn="frozen",
                                pretrained_checkpoint=None, data=None, backbone=STUDENT_BACKBONE, resume=False,
                                input_size=None, in_chans=None, stem_stride=None, webcam_config=None,
                                replay_ratio=1.0, seed=3)
        for k, v in kw.items():
            setattr(ns, k, v)
        return ns

    rn = _student(tmp_path, fer_index, backbone="resnet18")
    with pytest.raises(ArtifactError, match=r"best\.pt: checkpoint backbone is 'resnet18' but adapt expects"):
        adapt(args(rn))
    swapped = _student(tmp_path, fer_index, classes=("Disgust", "Angry") + FER7[2:])
    with pytest.raises(ClassListMismatch, match="different order"):
        adapt(args(swapped))
    other = _student(tmp_path, ck_index, seed=1)  # "trained" on another index
    with pytest.raises(ArtifactError, match="is not the index the student was trained on"):
        adapt(args(other))
    with pytest.raises(AdaptOptionError, match="--input-size 48 differs from the student's 32"):
        adapt(args(student, input_size=48))
    with pytest.raises(ArtifactError, match="student checkpoint not found"):
        adapt(args(tmp_path / "nowhere"))
    assert not (tmp_path / "x" / "last.pt").exists()
    # through the CLI: exit status 2 and the message
    assert _adapt(rn, ck_index, fer_index, tmp_path / "y") == 2
    assert "resnet18" in capsys.readouterr().err


def test_the_adapted_folder_reads_like_a_student(student, ck_index, fer_index, tmp_path):
    run = tmp_path / "eval"
    assert _adapt(student, ck_index, fer_index, run, "--train", "bn") == 0
    assert main(["evaluate", str(run), "--index", str(fer_index.path), "--splits", "test"]) == 0
    m = json.loads((run / "metrics_test.json").read_text())
    assert m["index_fingerprint"] == fer_index.fingerprint and m["n"] == len(fer_index.positions("test"))
    assert _adapt(student, ck_index, fer_index, run, "--train", "bn") == 2  # no silent overwrite


def test_calibrate_domain_fits_on_the_fit_split_only_and_installs_on_request(student, ck_index, fer_index, tmp_path):
    from fer_models.calibration import load_calibration

    run = tmp_path / "cal"
    assert _adapt(student, ck_index, fer_index, run, "--train", "head") == 0
    own = (run / "calibration.json").read_bytes()
    # on the run's own mix: its logits_val/test.npz are reused, nothing is recomputed into OUT
    assert main(["calibrate-domain", str(run), "--index", str(run / "mix"), "--min-coverage", "0.8"]) == 0
    outs = list(run.glob("domain_*"))
    assert len(outs) == 1 and not (outs[0] / "logits_val.npz").exists()
    cal = load_calibration(outs[0] / "calibration.json", FER7)
    assert len(cal.per_class_temperature) == 7 and len(cal.thresholds) == 7
    mix = load_index(run / "mix")
    absent = [c for k, c in enumerate(FER7) if not np.any(mix.labels[mix.positions("val")] == k)]
    assert cal.extra["fit_split"] == "val" and cal.extra["unfitted_classes"] == absent and "Neutral" in absent
    for c in absent:  # not fitted: the global temperature, no threshold
        assert cal.per_class_temperature[FER7.index(c)] == cal.temperature and cal.thresholds[FER7.index(c)] == 0.0
    after = cal.metrics_after["val"]["calibrated"]
    assert after["coverage"] >= 0.8 - 1e-9 and set(cal.metrics_before) == {"val", "test"}
    assert cal.metrics_after["val"]["per_class_temperature"]["nll"] <= cal.metrics_after["val"]["global"]["nll"] + 1e-9
    assert (run / "calibration.json").read_bytes() == own  # not installed
    # on the CK+ index for the original student: logits computed into OUT, the student's folder untouched
    before = sorted(p.name for p in student.iterdir())
    out = tmp_path / "before_cal"
    assert main(["calibrate-domain", str(student), "--index", str(ck_index.path), "--out", str(out)]) == 0
    assert (out / "logits_val.npz").is_file() and (out / "metrics_test.json").is_file()
    assert sorted(p.name for p in student.iterdir()) == before
    # --install: the run's calibration.json becomes the domain one, the old one kept
    assert main(["calibrate-domain", str(run), "--index", str(run / "mix"), "--install", "--no-thresholds"]) == 0
    assert (run / "calibration_global.json").read_bytes() == own
    installed = load_calibration(run, FER7)
    assert installed.per_class_temperature is not None and installed.thresholds is None


def test_calibrate_domain_refuses_an_empty_fit_split(student, tmp_path, fer_index):
    from .test_mine import fake_session
    from training.mine import mine_sessions

    mined = mine_sessions([fake_session(tmp_path, "s1", [("Sad", 30, "Happy")], size=32)], tmp_path / "mined")
    assert main(["calibrate-domain", str(student), "--index", str(mined.path)]) == 2


def test_resume_continues_and_refuses_changed_settings(student, ck_index, fer_index, tmp_path):
    run = tmp_path / "resume"
    assert _adapt(student, ck_index, fer_index, run, "--train", "head", "--epochs", "2", "--stop-after-epoch", "1") == 0
    assert not (run / "metrics_test.json").exists()
    assert _adapt(student, ck_index, fer_index, run, "--train", "bn", "--epochs", "2", "--resume") == 2
    assert _adapt(student, ck_index, fer_index, run, "--train", "head", "--epochs", "2", "--resume") == 0
    rows = (run / "history.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"] and (run / "metrics_test.json").is_file()
    changed = _changed(_state(student / "best.pt"), _state(run / "last.pt"))
    assert changed <= {"classifier.weight", "classifier.bias"}  # still frozen after the resume
