"""Checkpoints inside an epoch: a run stopped part-way through an epoch resumes from partial.pt and ends
bit-identical to a run never stopped (weights, history), and a bad partial.pt never costs what last.pt holds."""

from __future__ import annotations

import csv
import json

import torch

from training.cli import main

# 96 faces in batches of 16: 6 updates an epoch; dropout draws from the torch RNG that partial.pt must restore
TINY = ["--backbone", "resnet18", "--epochs", "2", "--input-size", "32", "--batch-size", "16",
        "--max-train-samples", "96", "--max-eval-samples", "28", "--threads", "1", "--no-progress",
        "--seed", "5", "--warmup-epochs", "0.5", "--drop-rate", "0.3", "--no-calibrate"]
EVERY_UPDATE = ["--checkpoint-minutes", "1e-9"]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _history(run):
    return [{k: r[k] for k in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "train_samples",
                               "grad_norm_mean", "grad_norm_max")}
            for r in csv.DictReader((run / "history.csv").open())]


def test_a_run_stopped_inside_epochs_resumes_bit_identically(train_index_dir, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["teacher", "--index", str(train_index_dir), *TINY]
    assert main([*args, "--out", str(a), "--checkpoint-minutes", "0"]) == 0
    assert not (a / "partial.pt").exists()

    # stopped after 3 of epoch 0's 6 updates: no last.pt yet, a partial.pt at step 3
    assert main([*args, "--out", str(b), *EVERY_UPDATE, "--stop-after-updates", "3"]) == 0
    assert "stopping after 3 updates" in capsys.readouterr().out
    assert not (b / "last.pt").exists() and not (b / "history.csv").exists()
    part = torch.load(b / "partial.pt", map_location="cpu", weights_only=True)
    assert part["partial"]["epoch"] == 0 and part["partial"]["next_step"] == 3 and part["global_update"] == 3
    assert part["partial"]["seen"] == 48 and len(part["partial"]["grad_norms"]) == 3
    # resumed there, stopped again inside epoch 1 (3 more updates finish epoch 0, the 4th is epoch 1's first)
    assert main([*args, "--out", str(b), *EVERY_UPDATE, "--resume", "--stop-after-updates", "4"]) == 0
    assert "epochs 0..1 (epoch 0 from step 3, partial.pt)" in capsys.readouterr().out
    assert torch.load(b / "last.pt", map_location="cpu", weights_only=True)["epoch"] == 0
    assert torch.load(b / "partial.pt", map_location="cpu", weights_only=True)["partial"]["next_step"] == 1
    assert main([*args, "--out", str(b), "--resume"]) == 0

    wa, wb = _weights(a / "last.pt"), _weights(b / "last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert _history(a) == _history(b)  # train loss / accuracy sums and gradient norms carried over exactly
    assert not (b / "partial.pt").exists()  # superseded by the last epoch's last.pt
    resumed = json.loads((b / "args.json").read_text())["resumed"]
    assert [(r["at_epoch"], r.get("at_step")) for r in resumed] == [(0, 3), (1, 1)]
    assert json.loads((b / "summary.json").read_text())["epochs"] == 2


def test_a_bad_or_stale_partial_is_reported_and_last_pt_used(train_index_dir, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["teacher", "--index", str(train_index_dir), *TINY]
    assert main([*args, "--out", str(a), "--checkpoint-minutes", "0"]) == 0
    # epoch 0 whole, then a partial.pt inside epoch 1 ...
    assert main([*args, "--out", str(b), *EVERY_UPDATE, "--stop-after-updates", "8"]) == 0
    good = (b / "partial.pt").read_bytes()
    # ... that a full disk cut short: ignored with a message naming it, epoch 1 redone from last.pt
    (b / "partial.pt").write_bytes(good[: len(good) // 3])
    capsys.readouterr()
    assert main([*args, "--out", str(b), "--resume", "--stop-after-updates", "1"]) == 0
    err = capsys.readouterr().err
    assert "partial.pt" in err and "ignoring" in err and "last whole epoch" in err
    assert not (b / "partial.pt").exists() or (b / "partial.pt").read_bytes() != good
    assert main([*args, "--out", str(b), "--resume"]) == 0
    wa, wb = _weights(a / "last.pt"), _weights(b / "last.pt")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_partial_from_other_settings_is_refused(train_index_dir, tmp_path, capsys):
    b = tmp_path / "b"
    args = ["teacher", "--index", str(train_index_dir), *TINY]
    assert main([*args, "--out", str(b), *EVERY_UPDATE, "--stop-after-updates", "2"]) == 0
    capsys.readouterr()
    assert main([*args, "--out", str(b), "--resume", "--input-size", "40"]) == 2
    err = capsys.readouterr().err
    assert "partial.pt" in err and "cannot resume with different settings" in err and "input_size" in err
    assert (b / "partial.pt").is_file()  # nothing recorded is lost by the refusal
