"""The shipped student's rule (docs/decisions.md, "Choosing the shipped student") as a command: best mean
val of the distilled configurations with three finished seeds, then the best-val seed; test never read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fer_models.errors import ArtifactError
from training.cli import main
from training.pick_student import pick_student

FP = "a6da318d" * 8


def _run(root: Path, config: str, seed: int, val: float, nll: float = 1.0, distill: str = "kd",
         finished: bool = True, test: float = 0.5, **recipe) -> Path:
    run = root / f"{config}_s{seed}"
    run.mkdir(parents=True)
    args = {"config": config, "distill": distill, "epochs": 20, "input_size": 48, "index_fingerprint": FP,
            "seed": seed, **recipe}
    (run / "args.json").write_text(json.dumps(args))
    (run / "seed.json").write_text(json.dumps({"seed": seed}))
    if finished:
        (run / "summary.json").write_text("{}")
        (run / "metrics_val.json").write_text(json.dumps({"accuracy": val, "nll": nll}))
        # PrivateTest figures that would flip every choice if they were read
        (run / "metrics_test.json").write_text(json.dumps({"accuracy": test, "nll": nll}))
    return run


def test_best_mean_val_configuration_then_its_best_val_seed(tmp_path):
    runs = []
    # KD: one lucky seed (0.66) but the lower mean; DKD: the higher mean; none: the best of all, a baseline
    for seed, val in ((1337, 0.66), (2025, 0.60), (42, 0.60)):
        runs.append(_run(tmp_path, "s1-48-kd-val4", seed, val, test=0.9))
    for seed, val in ((1337, 0.63), (2025, 0.635), (42, 0.625)):
        runs.append(_run(tmp_path, "s1-48-dkd-val4", seed, val, test=0.1, distill="dkd"))
    for seed in (1337, 2025, 42):
        runs.append(_run(tmp_path, "s1-48-none", seed, 0.70, distill="none", test=0.95))
    chosen, rows = pick_student(runs)
    assert chosen == tmp_path / "s1-48-dkd-val4_s2025"
    status = {r["config"]: r["status"] for r in rows}
    assert status == {"s1-48-dkd-val4": "chosen: s1-48-dkd-val4_s2025", "s1-48-kd-val4": "candidate",
                      "s1-48-none": "baseline (not shipped)"}
    dkd = next(r for r in rows if r["config"] == "s1-48-dkd-val4")
    assert dkd["mean_val_accuracy"] == pytest.approx(0.63) and dkd["std_val_accuracy"] == pytest.approx(0.005)


def test_ties_go_to_the_lower_val_nll(tmp_path):
    runs = [_run(tmp_path, "a-kd", s, 0.62, nll=1.1) for s in (1, 2, 3)]
    runs += [_run(tmp_path, "b-kd", s, 0.62, nll=1.0 + s / 100) for s in (1, 2, 3)]
    assert pick_student(runs)[0] == tmp_path / "b-kd_s1"


def test_a_configuration_needs_three_finished_seeds_and_a_no_go_phase_is_out(tmp_path):
    runs = [_run(tmp_path, "s1-48-kd-val4", s, 0.62) for s in (1337, 2025, 42)]
    # the 40-epoch probe: one seed, better on val, not a candidate
    runs.append(_run(tmp_path, "s1-48-kd-rn18-e40", 1337, 0.68))
    # NL: three seeds with a better mean, one unfinished: not yet
    runs += [_run(tmp_path, "s1-48-kd-val4-nl", s, 0.65, optimizer="nl") for s in (1337, 2025)]
    runs.append(_run(tmp_path, "s1-48-kd-val4-nl", 42, 0.0, optimizer="nl", finished=False))
    # NL + NegL: three finished seeds, better on val, but its phase gate said NO-GO (memory grew)
    negl = [_run(tmp_path, "s1-48-kd-val4-nl-negl", s, 0.66, optimizer="nl") for s in (1337, 2025, 42)]
    (negl[0] / "gate_nl_phase.json").write_text(json.dumps({"status": "NO-GO"}))
    chosen, rows = pick_student(runs + negl)
    assert chosen.name == "s1-48-kd-val4_s1337"
    status = {r["config"]: r["status"] for r in rows}
    assert status["s1-48-kd-rn18-e40"] == "1 of 3 seeds finished"
    assert status["s1-48-kd-val4-nl"] == "2 of 3 seeds finished"
    assert next(r for r in rows if r["config"] == "s1-48-kd-val4-nl")["unfinished"] == 1
    assert status["s1-48-kd-val4-nl-negl"] == "NL phase gate NO-GO"


def test_refuses_mixed_recipes_other_indexes_and_nothing_to_ship(tmp_path):
    a = [_run(tmp_path / "a", "kd", s, 0.6) for s in (1, 2)] + [_run(tmp_path / "a", "kd", 3, 0.6, epochs=40)]
    with pytest.raises(ArtifactError, match="recipe differs.*epochs"):
        pick_student(a)
    b = [_run(tmp_path / "b", "kd", s, 0.6) for s in (1, 2, 3)]
    b += [_run(tmp_path / "b", "dkd", s, 0.6, distill="dkd", index_fingerprint="0" * 64) for s in (1, 2, 3)]
    with pytest.raises(ArtifactError, match="different indexes"):
        pick_student(b)
    c = [_run(tmp_path / "c", "none", s, 0.6, distill="none") for s in (1, 2, 3)]
    c.append(_run(tmp_path / "c", "kd", 1, 0.6))
    with pytest.raises(ArtifactError, match=r"no distilled configuration with 3 finished seeds \(.*kd: 1 of 3"):
        pick_student(c)
    d = [_run(tmp_path / "d", "kd", s, 0.6) for s in (1, 2, 3)]
    (d[1] / "metrics_val.json").write_text(json.dumps({"accuracy": float("nan"), "nll": 1.0}))
    with pytest.raises(ArtifactError, match=r"kd_s2.metrics_val\.json.*no finite accuracy"):
        pick_student(d)


def test_command_prints_the_run_and_records_the_table(tmp_path, capsys):
    runs = [_run(tmp_path, "kd", s, 0.6 + s / 100) for s in (1, 2, 3)]
    record = tmp_path / "choice.json"
    assert main(["pick-student", *map(str, runs), "--record", str(record)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "kd_s3")
    assert "| kd | 3 | 0.6200 | 0.0100 |" in err
    saved = json.loads(record.read_text())
    assert saved["chosen"] == str(tmp_path / "kd_s3") and saved["configurations"][0]["status"] == "chosen: kd_s3"
    assert main(["pick-student", str(runs[0])]) == 2  # one seed: a clear error, not a choice
    assert "1 of 3 seeds finished" in capsys.readouterr().err
