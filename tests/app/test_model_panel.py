"""The model panel's one-line training summary, read from the card's ``training`` entry."""

from __future__ import annotations

from app.widgets.model_panel import training_line


def test_distilled_student_names_method_parameters_and_teacher():
    line = training_line({"command": "student", "distill": "dkd", "alpha": 0.5, "beta": 4.0, "temperature": 2.0,
                          "teacher": ["runs/ensemble_cpu3/"], "epochs": 6, "seed": 42,
                          "pretrained_checkpoint": "runs/mnv3_ce_48_s1337/best.pt"})
    assert line.startswith("DKD (alpha 0.5, beta 4, temperature 2) from ensemble_cpu3, 6 epochs")
    assert "fine-tuned from runs/mnv3_ce_48_s1337/best.pt" in line and line.endswith("seed 42")


def test_baseline_and_missing_entries():
    assert training_line({"command": "student", "distill": "none", "epochs": 6, "seed": 1}) == \
        "no distillation (cross-entropy), 6 epochs, seed 1"
    assert training_line({"command": "teacher", "epochs": 16}) == "teacher, 16 epochs"
    assert training_line(None) == "" and training_line({}) == ""
