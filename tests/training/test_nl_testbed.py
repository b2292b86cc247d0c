"""``fer-train nl-testbed`` end to end on a real 56-image FER2013 subset: passing runs, tripped rails, the gate."""

from __future__ import annotations

import csv
import json

import pytest

from training.cli import main
from training.gate import run_gate
from training.negl import DEFAULT_CONFIG, load_negl_config
from training.nl_testbed import LOG_COLUMNS, kd_alpha, memory_verdict
from training.softlabel_files import write_softlabels

from .conftest import good_logits, mark_diagnosed

# 28 train / 14 val images at 32 px, a 0.6M-parameter MobileNetV3: about a second per epoch on one thread
TINY = ["--backbone", "mobilenetv3_small_050", "--input-size", "32", "--batch-size", "7", "--accum", "2",
        "--threads", "1", "--no-progress", "--seed", "5", "--max-train-samples", "0", "--max-eval-samples", "0"]


@pytest.fixture(scope="module")
def index(tmp_path_factory, mini_tree):
    from training.index import build_index, load_index, write_index

    out = tmp_path_factory.mktemp("testbed_index") / "index"
    write_index(build_index(mini_tree, progress=False), out)
    return load_index(out)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, index):
    """A teacher run folder: aligned soft labels and the val confusion matrix `fer-train evaluate` writes."""
    from training.evaluate import write_split_report

    run = tmp_path_factory.mktemp("teacher") / "rn18"
    logits = good_logits(index.labels, seed=7)
    mark_diagnosed(write_softlabels(run / "softlabels" / index.short_name, index, logits, 2.0, "teacher",
                                    {"producer": {"checkpoint": "rn18.pt", "checkpoint_sha256": "0" * 64}}))
    val = index.positions("val")
    write_split_report(run, "val", logits[val], val, index, index.classes)
    return run


def _testbed(index, out, *extra):
    return main(["nl-testbed", "--index", str(index.path), "--out", str(out), *TINY, *extra])


def _record(out):
    return json.loads((out / "nl_testbed.json").read_text())


def test_nl_with_kd_and_negl_passes_and_the_gate_agrees(index, teacher, tmp_path):
    from training.runtime import cpu_has_bf16

    out = tmp_path / "nl_negl"
    assert _testbed(index, out, "--optimizer", "nl", "--teacher", str(teacher), "--negl-config", str(DEFAULT_CONFIG),
                    "--negl-confusion", str(teacher), "--epochs", "2", "--alpha-ramp-epochs", "1") == 0
    rec = _record(out)
    assert rec["status"] == "passed" and rec["method"] == "nl+negl" and rec["reason"] is None
    names = [t["name"] for t in rec["tests"]]
    assert names == ["finite losses", "finite gradient norms", "memory flat", "optimizer state constant",
                     "negl loss = -log(1 - p) by hand", "memory MLP on a toy problem"]
    assert rec["amp"] == ("bf16" if cpu_has_bf16() else "off")
    assert rec["effective_batch"] == 14 and rec["optimizer"]["class"] == "DeepMemoryOptimizer"
    assert rec["negl"]["sha256"] == load_negl_config(DEFAULT_CONFIG).sha256
    assert rec["negl"]["confusion_sources"][0]["file"].endswith("confusion_val.json")
    assert rec["kd"]["alpha_start"] == 0.3 and rec["kd"]["alpha_end"] == 0.5

    rows = list(csv.DictReader((out / "testbed_log.csv").open()))
    assert list(rows[0]) == list(LOG_COLUMNS) and [r["epoch"] for r in rows] == ["0", "1"]
    alphas = [float(r["kd_alpha"]) for r in rows]  # the last micro-batch's alpha of each epoch
    assert 0.3 < alphas[0] < 0.5 and alphas[1] == 0.5  # on the ramp, then its end value
    assert len({r["optimizer_state_bytes"] for r in rows}) == 1 and int(rows[0]["optimizer_state_bytes"]) > 0
    assert sum(int(r["negl_pairs"]) for r in rows) > 0 and all(float(r["peak_rss_mb"]) > 0 for r in rows)
    assert all(float(r["grad_norm_max"]) >= float(r["grad_norm_mean"]) > 0 for r in rows)
    trace = list(csv.DictReader((out / "memory_trace.csv").open()))
    assert [int(r["step"]) for r in trace] == list(range(1, 2 * rec["updates_per_epoch"] + 1))

    gate = run_gate("nl-negl", [out])
    assert gate.go, [(i.item, i.reason) for i in gate.items]


@pytest.mark.parametrize("optimizer, inner, method", [("nl", "meta", "nl"), ("adamw", "local", "adamw")])
def test_meta_mode_and_the_adamw_baseline_run(index, tmp_path, optimizer, inner, method):
    out = tmp_path / method
    assert _testbed(index, out, "--optimizer", optimizer, "--inner", inner, "--meta-every", "1", "--epochs", "2",
                    "--amp", "off") == 0
    rec = _record(out)
    assert rec["status"] == "passed" and rec["method"] == method and rec["amp"] == "off"
    assert ("memory MLP on a toy problem" in [t["name"] for t in rec["tests"]]) == (optimizer == "nl")


@pytest.mark.parametrize("extra, where", [(["--inject-nonfinite-step", "3"], "epoch 0 step 2"),
                                          (["--lr", "1e30", "--clip-grad", "0"], "non-finite")])
def test_a_non_finite_loss_stops_the_run_with_status_1(index, tmp_path, capsys, extra, where):
    out = tmp_path / "broken"
    assert _testbed(index, out, "--optimizer", "nl", "--epochs", "3", "--amp", "off", *extra) == 1
    rec = _record(out)
    assert rec["status"] == "failed" and "non-finite" in rec["reason"] and where in rec["reason"]
    status = {t["name"]: t["status"] for t in rec["tests"]}
    assert status["finite losses"] == "failed" and status["memory flat"] == "skipped"
    assert status["finite gradient norms"] == "passed"  # the one update before the failure had a finite norm
    assert "FAILED" in capsys.readouterr().err
    gate = run_gate("nl-negl", [out])
    assert not gate.go and "status 'failed'" in gate.items[0].reason


def test_a_non_finite_gradient_norm_stops_the_run(index, tmp_path):
    out = tmp_path / "inf_grad"
    assert _testbed(index, out, "--epochs", "2", "--amp", "off", "--inject-nonfinite-step", "4",
                    "--inject-into", "grad") == 1
    rec = _record(out)
    status = {t["name"]: t["status"] for t in rec["tests"]}
    assert status["finite gradient norms"] == "failed" and status["finite losses"] == "passed"
    assert "non-finite gradient norm inf at epoch 0 step 3" in rec["reason"]


def test_refusals_before_anything_runs(index, teacher, tmp_path, capsys):
    assert _testbed(index, tmp_path / "one", "--epochs", "1") == 2
    assert "at least 2" in capsys.readouterr().err
    # the default config excludes classes the teacher finds likely: it needs the teacher's soft labels
    assert _testbed(index, tmp_path / "no_teacher", "--negl-config", str(DEFAULT_CONFIG), "--negl-confusion",
                    str(teacher)) == 2
    assert "--teacher" in capsys.readouterr().err
    assert _testbed(index, tmp_path / "no_conf", "--negl-config", str(DEFAULT_CONFIG), "--teacher", str(teacher)) == 2
    assert "confusion" in capsys.readouterr().err
    assert not (tmp_path / "one").exists() and not (tmp_path / "no_teacher").exists()


def test_an_existing_testbed_is_not_overwritten(index, tmp_path, capsys):
    out = tmp_path / "done"
    out.mkdir()
    (out / "nl_testbed.json").write_text("{}")
    assert _testbed(index, out, "--epochs", "2") == 2
    assert "--force" in capsys.readouterr().err


def test_memory_verdict():
    flat = {"step": [1, 2, 3, 4, 5, 6], "rss_mb": [100, 180, 200, 205, 199, 210]}
    ok, why = memory_verdict(flat, 3, 64)
    assert ok and "rss_mb +10.0 MB" in why  # the climb during warm-up (steps 1-2) does not count
    ok, why = memory_verdict(flat, 3, 5)
    assert not ok and "rss_mb grew 10.0 MB" in why
    leak = {"step": [1, 2, 3, 4], "rss_mb": [100, 100, 100, 100], "gpu_mb": [10, 50, 90, 130]}
    ok, why = memory_verdict(leak, 2, 64)
    assert not ok and "gpu_mb grew 80.0 MB" in why
    assert not memory_verdict(flat, 6, 64)[0]  # one row after warm-up cannot show a trend
    ok, why = memory_verdict(flat, 3, 64, epoch_peaks=[300, 400, 420, 500])
    assert not ok and "from epoch 2 to epoch 3" in why
    assert memory_verdict(flat, 3, 64, epoch_peaks=[300, 400, 420, 430])[0]  # epoch 0 -> 1 is warm-up


def test_kd_alpha_ramp():
    assert kd_alpha(0.0, 0.3, 0.5, 2.0) == 0.3
    assert kd_alpha(1.0, 0.3, 0.5, 2.0) == pytest.approx(0.4)
    assert kd_alpha(5.0, 0.3, 0.5, 2.0) == 0.5
    assert kd_alpha(0.0, 0.3, 0.5, 0.0) == 0.5


# ----------------------------------------------------------------------------- fer-train student --optimizer nl

STUDENT = ["--input-size", "32", "--batch-size", "14", "--threads", "1", "--no-progress", "--seed", "3",
           "--warmup-epochs", "0.5", "--epochs", "2", "--no-calibrate"]
NEW_KEYS = ("optimizer", "nl_hidden", "nl_layers", "nl_memory_lr", "negl_config", "negl_confusion", "negl_sha256")


def _student(index, out, *extra):
    return main(["student", "--index", str(index.path), "--out", str(out), *STUDENT, *extra])


def test_student_with_nl_and_negl_records_both_and_resumes_only_with_them(index, teacher, tmp_path, capsys):
    import torch

    out = tmp_path / "student_nl"
    assert _student(index, out, "--distill", "kd", "--teacher", str(teacher), "--optimizer", "nl",
                    "--negl-config", str(DEFAULT_CONFIG), "--negl-confusion", str(teacher),
                    "--stop-after-epoch", "1") == 0
    rec = json.loads((out / "args.json").read_text())
    assert rec["config"].endswith("_nl_negl-default") and rec["optimizer"] == "nl"
    assert rec["nl"]["inner"] == "local" and rec["negl"]["sha256"] == load_negl_config(DEFAULT_CONFIG).sha256
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert ck["optimizer"]["memory"]["config"]["hidden"] == 32 and ck["negl"]["name"] == "default"
    # the resume may not drop NL or NegL
    assert _student(index, out, "--distill", "kd", "--teacher", str(teacher), "--resume") == 2
    err = capsys.readouterr().err
    assert "optimizer: 'nl' -> None" in err and "negl_sha256" in err
    assert _student(index, out, "--distill", "kd", "--teacher", str(teacher), "--optimizer", "nl", "--negl-config",
                    str(DEFAULT_CONFIG), "--negl-confusion", str(teacher), "--resume") == 0
    assert (out / "metrics_test.json").is_file()


def test_a_checkpoint_from_before_the_nl_options_still_resumes(index, teacher, tmp_path):
    """The running students' last.pt / args.json hold none of the new keys: their resume must be accepted."""
    import torch

    out = tmp_path / "student_old"
    assert _student(index, out, "--distill", "kd", "--teacher", str(teacher), "--stop-after-epoch", "1") == 0
    rec = json.loads((out / "args.json").read_text())
    assert rec["config"] == "kd_a0.5_T2_rn18" and rec["optimizer"] is None and "nl" not in rec and "negl" not in rec
    ck = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert "memory" not in ck["optimizer"]  # the recipe's AdamW
    for key in NEW_KEYS:  # what a checkpoint written before this change holds
        ck["args"].pop(key)
        rec.pop(key)
    torch.save(ck, out / "last.pt")
    (out / "args.json").write_text(json.dumps(rec))
    assert _student(index, out, "--distill", "kd", "--teacher", str(teacher), "--resume") == 0
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"]
