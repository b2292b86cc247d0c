"""fer-train report copies figures from run folders; it never invents one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fer_models.errors import ArtifactError
from training.cli import main
from training.report import markdown_table, run_row


def _metrics(acc: float, f1: float, nll: float, ece: float, brier: float) -> dict:
    return {"accuracy": acc, "macro_f1": f1, "nll": nll, "ece": ece, "brier": brier}


def _calibrated_run(path: Path, *, ensemble: bool = False) -> Path:
    path.mkdir(parents=True)
    cal = {"temperature": 1.35,
           "metrics_before": {"val": _metrics(0.512, 0.401, 1.31, 0.081, 0.62),
                              "test": _metrics(0.523, 0.412, 1.29, 0.077, 0.61)},
           "metrics_after": {"val": _metrics(0.512, 0.401, 1.25, 0.021, 0.60),
                             "test": _metrics(0.523, 0.412, 1.24, 0.019, 0.59)}}
    (path / "calibration.json").write_text(json.dumps(cal))
    if ensemble:
        (path / "ensemble.json").write_text(json.dumps({"members": [{"name": "rn18", "weight": 0.65},
                                                                    {"name": "rn50", "weight": 0.35}]}))
    else:
        (path / "args.json").write_text(json.dumps({"backbone": "resnet18", "input_size": 32, "epochs": 12}))
        (path / "summary.json").write_text(json.dumps({"epochs": 12, "wall_seconds": 3390.0}))
    return path


def test_row_copies_the_calibration_figures(tmp_path: Path) -> None:
    row = run_row(_calibrated_run(tmp_path / "teacher_rn18"))
    assert row["model"] == "resnet18" and row["input px"] == 32 and row["epochs"] == 12
    assert row["wall min"] == "56"
    assert (row["val acc"], row["test acc"], row["test macro-F1"]) == ("0.512", "0.523", "0.412")
    assert row["T (val)"] == "1.35"
    assert row["test NLL before/after"] == "1.290 / 1.240"
    assert row["test ECE before/after"] == "0.077 / 0.019"
    assert row["test Brier before/after"] == "0.610 / 0.590"


def test_ensemble_row_names_members_and_weights(tmp_path: Path) -> None:
    row = run_row(_calibrated_run(tmp_path / "ens", ensemble=True))
    assert row["model"] == "ensemble: rn18 0.65, rn50 0.35"
    assert row["epochs"] == "-"


def test_uncalibrated_folder_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "raw").mkdir()
    with pytest.raises(ArtifactError, match="calibration.json"):
        run_row(tmp_path / "raw")


def test_calibration_without_test_metrics_is_refused(tmp_path: Path) -> None:
    run = _calibrated_run(tmp_path / "old")
    cal = json.loads((run / "calibration.json").read_text())
    del cal["metrics_after"]["test"]
    (run / "calibration.json").write_text(json.dumps(cal))
    with pytest.raises(ArtifactError, match="metrics_after.test"):
        run_row(run)


def test_cli_writes_the_table(tmp_path: Path) -> None:
    a = _calibrated_run(tmp_path / "a")
    b = _calibrated_run(tmp_path / "b", ensemble=True)
    out = tmp_path / "table.md"
    assert main(["report", str(a), str(b), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and lines[2].startswith("| a | resnet18 |") and lines[3].startswith("| b | ensemble")
    assert out.read_text() == markdown_table([a, b])
