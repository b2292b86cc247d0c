"""fer-train report copies figures from run folders; it never invents one."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fer_models.errors import ArtifactError
from training.cli import main
from training.report_table import markdown_table, run_row

from .fake_artifacts import build_tree, make_nl


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


def test_a_teacher_scored_with_flip_tta_says_so(tmp_path: Path) -> None:
    run = _calibrated_run(tmp_path / "teacher_vgg")
    (run / "metrics_val.json").write_text(json.dumps({"split": "val", "tta": "none"}))
    assert run_row(run)["model"] == "resnet18"
    (run / "metrics_val.json").write_text(json.dumps({"split": "val", "tta": "flip"}))
    assert run_row(run)["model"] == "resnet18 + flip TTA"


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


# ----------------------------------------------------------------------------- the full report (--out DIR)

@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict:
    return build_tree(tmp_path_factory.mktemp("report") / "project")


def _config_row(summary: Path, config: str) -> dict:
    return next(r for r in csv.DictReader(summary.open()) if r["row_type"] == "config" and r["config"] == config)


def _report(tree: dict, out: Path, *extra: str, runs: list | None = None) -> tuple[str, Path]:
    folders = runs if runs is not None else [*tree["teachers"], tree["ensemble"], *tree["students"], tree["session"]]
    assert main(["report", *map(str, folders), "--out", str(out), *extra]) == 0
    return (out / "report.html").read_text(encoding="utf-8"), out / "report.pdf"


def test_full_report_reads_every_number_from_the_artifacts(tree, tmp_path):
    html, pdf = _report(tree, tmp_path / "report")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert pdf.stat().st_size > 10_000
    # headline numbers: the aggregate's mean, std and CI of the best student configuration
    row = _config_row(tree["summary"], "dkd-ens")
    headline = (f"test acc {float(row['test_accuracy']):.3f} ± {float(row['test_accuracy_std']):.3f} "
                f"(95% CI {float(row['test_accuracy_ci_low']):.3f}–{float(row['test_accuracy_ci_high']):.3f})")
    assert headline in html
    # the teacher's calibrated figures (calibration.json) and the session's score (score.json)
    cal = json.loads((tree["teachers"][0] / "calibration.json").read_text())
    assert f"test acc {cal['metrics_before']['test']['accuracy']:.3f}" in html
    assert f"T={cal['temperature']:.2f}" in html
    score = json.loads((tree["session"] / "score.json").read_text())
    assert f"accuracy {score['accuracy']:.3f}" in html
    # results tables from run_row, gate results per stage, NL not run, manifest
    assert run_row(tree["teachers"][0])["test NLL before/after"] in html
    assert "Teachers" in html and "Live demo" in html
    assert "<td class=go>GO</td>" in html and "<td class=nogo>NO-GO</td>" in html
    assert "not run: no nl_testbed.json" in html and "NL and NegL are not run yet" in html
    fp = json.loads((tree["teachers"][0] / "args.json").read_text())["index_fingerprint"]
    assert fp[:16] in html and "fer-train teacher --index" in html
    assert "Reproducibility manifest" in html and "Risk log" in html and "Live demo protocol" in html
    # figures are PNGs next to the page, referenced by it
    figures = sorted((tmp_path / "report" / "figures").glob("*.png"))
    assert any(f.name.startswith("reliability_") for f in figures) and any(f.name.startswith("confusion_")
                                                                          for f in figures)
    assert all(f.read_bytes().startswith(b"\x89PNG") for f in figures)
    assert 'src="figures/reliability_teacher_resnet18.png"' in html
    if shutil.which("pdftotext"):  # the PDF reads as the same document (poppler-utils, where installed)
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        for needle in ("Executive summary", "Alignment checks", "Appendix A: gate checklists",
                       f"{float(row['test_accuracy']):.3f} ± {float(row['test_accuracy_std']):.3f}",
                       "not run: no nl_testbed.json"):
            assert needle in text


def test_report_changes_when_an_artifact_changes(tree, tmp_path):
    runs = [tree["teachers"][0], tree["students"][0]]
    before, _ = _report(tree, tmp_path / "a", "--summary", str(tree["summary"]), runs=runs)
    row = _config_row(tree["summary"], "dkd-ens")
    old = f"test acc {float(row['test_accuracy']):.3f} ± {float(row['test_accuracy_std']):.3f}"
    assert old in before
    rows = list(csv.DictReader(tree["summary"].open()))
    for r in rows:
        if r["row_type"] == "config" and r["config"] == "dkd-ens":
            r.update(test_accuracy="0.6123", test_accuracy_std="0.0456", test_accuracy_ci_low="0.5811",
                     test_accuracy_ci_high="0.6402")
    edited = tmp_path / "edited_summary.csv"
    with edited.open("w", newline="") as fh:
        w = csv.DictWriter(fh, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    teacher = tmp_path / "teacher_resnet18"
    shutil.copytree(tree["teachers"][0], teacher)
    cal = json.loads((teacher / "calibration.json").read_text())
    cal["metrics_before"]["test"]["accuracy"] = 0.4321
    (teacher / "calibration.json").write_text(json.dumps(cal))
    after, _ = _report(tree, tmp_path / "b", "--summary", str(edited), runs=[teacher, tree["students"][0]])
    assert "test acc 0.612 ± 0.046 (95% CI 0.581–0.640)" in after and old not in after
    assert "test acc 0.432" in after


def test_notes_and_nl_folders(tree, tmp_path):
    nl = make_nl(tmp_path / "nl", growth_mb=300.0)
    notes = tmp_path / "notes.md"
    notes.write_text("Round 2 of the sharp-data runs.\n\n# Done\n- teachers retrained on the sharp copy\n"
                     "# Next steps\n- run the NegL testbed on the DKD student\n# Risks\n- CPU time for 3 seeds\n")
    html, _ = _report(tree, tmp_path / "r", "--notes", str(notes), runs=[tree["teachers"][0], nl])
    assert "Round 2 of the sharp-data runs." in html
    assert "teachers retrained on the sharp copy" in html and "run the NegL testbed on the DKD student" in html
    assert "CPU time for 3 seeds" in html
    assert "&gt; bound 64 MB" in html  # the NL gate's memory item, read from memory_trace.csv
    from training.report_doc import build_report

    with pytest.raises(ArtifactError, match="notes file not found"):
        build_report([tree["teachers"][0]], tmp_path / "x", notes=tmp_path / "missing.md")


def test_next_steps_come_from_the_gates_without_notes(tree, tmp_path):
    run = tmp_path / "teacher_resnet18"
    shutil.copytree(tree["teachers"][0], run)
    (run / "reliability_metrics.json").unlink()
    html, _ = _report(tree, tmp_path / "r", runs=[run])
    next_steps = html.split("Next steps", 1)[1]
    assert "reliability_metrics.json missing" in next_steps
