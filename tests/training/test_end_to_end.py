"""A real (tiny) pipeline on 350 FER2013 images, and a 2-process DDP run under torchrun/gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fer_models.calibration import load_calibration
from training.alignment import require_aligned
from training.cli import main
from training.index import load_index

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_index_teacher_softlabels_alignment_calibrate_ensemble(train_tree, tmp_path, capsys):
    index_dir, run = tmp_path / "index", tmp_path / "runs" / "rn18"
    assert main(["index", "--data", str(train_tree), "--out", str(index_dir)]) == 0
    index = load_index(index_dir)
    assert len(index) == 350
    assert main(["teacher", "--index", str(index_dir), "--backbone", "resnet18", "--out", str(run),
                 "--epochs", "2", "--input-size", "40", "--stem-stride", "2", "--batch-size", "35",
                 "--threads", "2", "--no-progress", "--no-calibrate"]) == 0
    metrics = json.loads((run / "metrics_test.json").read_text())
    assert metrics["n"] == 70 and metrics["full_split"] and metrics["index_fingerprint"] == index.fingerprint

    assert main(["softlabels", str(run), "--index", str(index_dir), "--temperature", "2"]) == 0
    folder = run / "softlabels" / index.short_name
    sl = require_aligned(run, index)
    assert sl.path == folder and sl.arrays["probs"].shape == (350, 7)
    meta = json.loads((folder / "alignment.json").read_text())
    assert meta["producer"]["backbone"] == "resnet18" and len(meta["producer"]["checkpoint_sha256"]) == 64
    assert meta["diagnostic"]["status"] == "passed"
    # the exported test rows are the evaluated ones
    test_logits = np.load(run / "logits_test.npz")["logits"]
    np.testing.assert_allclose(sl.arrays["logits"][index.positions("test")], test_logits, atol=1e-4)
    assert meta["recorded_accuracy"]["test"] == pytest.approx(metrics["accuracy"])

    (run / "metrics_val.json").unlink()
    assert main(["evaluate", str(run), "--index", str(index_dir), "--splits", "val"]) == 0
    assert json.loads((run / "metrics_val.json").read_text())["n"] == 70

    capsys.readouterr()
    assert main(["check-alignment", str(folder), "--index", str(index_dir), "--rows", "32"]) == 0
    assert "alignment passed" in capsys.readouterr().out

    assert main(["calibrate", str(run), "--per-class"]) == 0
    cal = load_calibration(run, index.classes)
    assert cal.split == "val" and len(cal.per_class_temperature) == 7
    assert "test" in cal.metrics_after

    cfg = tmp_path / "self.json"
    cfg.write_text(json.dumps({"name": "self", "temperature": 2.0, "members": [
        {"name": "a", "path": str(run), "weight": 0.5}, {"name": "b", "path": str(folder), "weight": 0.5}]}))
    assert main(["ensemble", str(cfg), "--index", str(index_dir), "--out", str(tmp_path / "ens")]) == 0
    fused = require_aligned(tmp_path / "ens", index)
    np.testing.assert_allclose(fused.arrays["probs"], sl.arrays["probs"], atol=1e-5)  # a model with itself

    # a KD student from the real teacher's fused folder (its pseudo-logits read like a teacher's raw logits)
    student = tmp_path / "runs" / "student"
    assert main(["student", "--index", str(index_dir), "--teacher", str(tmp_path / "ens"), "--distill", "kd",
                 "--out", str(student), "--epochs", "1", "--input-size", "32", "--batch-size", "35",
                 "--max-train-samples", "70", "--max-eval-samples", "14", "--threads", "2", "--no-progress",
                 "--no-calibrate"]) == 0
    rec = json.loads((student / "args.json").read_text())
    assert rec["config"] == "kd_a0.5_T2_ens" and rec["distillation"]["teachers"][0]["kind"] == "ensemble_fused"
    assert json.loads((student / "metrics_test.json").read_text())["n"] == 14


@pytest.mark.slow
def test_ddp_two_processes_keep_identical_weights(train_index_dir, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training.cli", "teacher", "--index", str(train_index_dir), "--backbone", "resnet18",
           "--out", str(out), "--epochs", "2", "--input-size", "32", "--batch-size", "16",
           "--max-steps-per-epoch", "3", "--max-train-samples", "64", "--max-eval-samples", "14",
           "--threads", "1", "--no-progress", "--no-calibrate"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp = json.loads((out / "ddp.json").read_text())
    assert ddp["world_size"] == 2 and ddp["backend"] == "gloo" and ddp["epoch"] == 1
    assert len(ddp["param_sha256_per_rank"]) == 2 and len(set(ddp["param_sha256_per_rank"])) == 1
    args = json.loads((out / "args.json").read_text())
    assert args["world_size"] == 2 and args["per_rank_batch"] == 8
    assert (out / "metrics_test.json").is_file() and (out / "last.pt").is_file()
    assert proc.stdout.count("epoch 2/2") == 1  # only rank 0 reports and writes
