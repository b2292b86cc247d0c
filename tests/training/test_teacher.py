"""Teacher runs: the experiment folder, exact resume, and refusing to overwrite a run."""

from __future__ import annotations

import csv
import json

import torch

from training.cli import main

TINY = ["--backbone", "resnet18", "--epochs", "2", "--input-size", "32", "--batch-size", "32",
        "--max-train-samples", "96", "--max-eval-samples", "28", "--threads", "1", "--no-progress",
        "--seed", "5", "--warmup-epochs", "0.5"]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_teacher_folder_and_exact_resume(train_index_dir, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["teacher", "--index", str(train_index_dir), *TINY]
    assert main([*args, "--out", str(a)]) == 0
    for name in ("args.json", "classes.json", "seed.json", "history.csv", "last.pt", "best.pt",
                 "metrics_val.json", "metrics_test.json", "confusion_val.png", "logits_test.npz",
                 "calibration.json", "reliability_metrics.json", "reliability_val.png", "summary.json"):
        assert (a / name).is_file(), name
    rec = json.loads((a / "args.json").read_text())
    assert rec["backbone"] == "resnet18" and rec["input_size"] == 32 and rec["stem_stride_effective"] == 4
    seed = json.loads((a / "seed.json").read_text())
    assert seed["seed"] == 5 and seed["torch"] == torch.__version__ and "timm" in seed and "numpy" in seed
    rows = list(csv.DictReader((a / "history.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert set(rows[0]) >= {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    assert float(rows[0]["images_per_sec"]) > 0 and rows[0]["train_samples"] == "96"
    assert "img/s" in capsys.readouterr().out  # the epoch line reports throughput too
    from training.runtime import cpu_has_bf16
    assert rec["amp"] == ("bf16" if cpu_has_bf16() else "off")  # auto: bf16 for ResNet where the CPU has kernels
    ck = torch.load(a / "last.pt", map_location="cpu", weights_only=True)
    assert ck["backbone"] == "resnet18" and ck["classes"][0] == "Angry" and ck["epoch"] == 1
    assert {"optimizer", "global_update", "best_val_acc", "torch_rng_state"} <= set(ck)
    metrics = json.loads((a / "metrics_test.json").read_text())
    assert metrics["n"] == 28 and len(metrics["per_class_f1"]) == 7

    # interrupted after one epoch, then resumed: bit-identical to the uninterrupted run
    assert main([*args, "--out", str(b), "--stop-after-epoch", "1", "--no-calibrate"]) == 0
    assert not (b / "metrics_test.json").exists()
    assert main([*args, "--out", str(b), "--resume"]) == 0
    wa, wb = _weights(a / "last.pt"), _weights(b / "last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows_b = list(csv.DictReader((b / "history.csv").open()))
    assert [r["val_acc"] for r in rows_b] == [r["val_acc"] for r in rows]
    assert json.loads((b / "args.json").read_text())["resumed"][0]["at_epoch"] == 1

    # an existing run is never overwritten silently; resume with other settings is refused
    capsys.readouterr()
    assert main([*args, "--out", str(a)]) == 2
    assert "--resume" in capsys.readouterr().err
    (b / "metrics_test.json").unlink()
    assert main([*args, "--out", str(b), "--resume", "--input-size", "40"]) == 2
    assert "input_size" in capsys.readouterr().err
