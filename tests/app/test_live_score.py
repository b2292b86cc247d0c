"""The live score panel's numbers: incremental (LiveScore), equal to score_session and fer-score."""

from __future__ import annotations

import random

import numpy as np
import pytest

from app.live_stats import LiveScore
from fer_models.pipeline import FrameResult, PipelineSettings
from fer_models.scoring import ScoringInputError, score_session
from tests.fer_models.test_scoring_accumulator import _same, random_timeline


def test_live_score_equals_score_session_while_the_session_grows():
    rng = random.Random(5)
    for _ in range(40):
        t, pred, manual = random_timeline(rng)
        live = LiveScore()
        for i in range(len(t)):
            live.add(t[i], pred[i], manual[i])
            if rng.random() < 0.05:
                _same(live.result(), score_session(t[: i + 1], pred[: i + 1], manual[: i + 1]))
        _same(live.result(), score_session(t, pred, manual))
        assert live.n_rows == len(t)


def test_live_score_hands_out_copies_and_defers_a_refused_row():
    live = LiveScore()
    for i in range(10):
        live.add(i / 10, "Happy", "Happy")
    first = live.result()
    first["accuracy"] = -1.0
    assert live.result()["accuracy"] == 1.0
    live.add(0.5, "Happy", "Happy")  # time goes backwards: the logging goes on, the score reports it
    live.add(1.0, "Happy", "Happy")
    with pytest.raises(ScoringInputError, match="row 11: time goes backwards"):
        live.result()


def test_recorder_live_score_is_incremental_and_equals_the_file_score(tmp_path, model_dir, monkeypatch):
    from app import session as session_module
    from app.session import SessionRecorder
    from fer_models.model_folder import load_model_folder
    from fer_models.scoring_cli import score_file

    rec = SessionRecorder(tmp_path / "s", load_model_folder(model_dir), PipelineSettings(), "test")
    probs = np.full(7, 1 / 7, np.float32)
    rng = random.Random(2)
    manual = ""
    for i in range(900):  # 30 s at 30 fps, label changes every 0.3-3 s, predictions late and noisy
        t = 0.5 + i / 30
        if rng.random() < 0.03:
            manual = rng.choice(["", "Happy", "Sad", "Fear"])
            rec.set_manual_label(manual, t)
        pred = rng.choice([None, "Neutral"]) if rng.random() < 0.2 else (manual or None)
        rec.log_frame(i, t, FrameResult(None, probs, probs, None, pred, {}))

    def no_full_rescore(*args, **kwargs):
        raise AssertionError("the live score must not re-score every row")

    monkeypatch.setattr(session_module, "score_session", no_full_rescore)
    live = rec.score_live()
    monkeypatch.undo()
    reference = score_session(rec._score_time, rec._score_pred, rec._score_manual)
    _same(live, reference)
    assert live["n_segments"] > 3
    rec.logger.close()
    _same(score_file(tmp_path / "s" / "per_frame.csv"), reference)
    assert rec.score() == reference
    # other thresholds than the panel's still work (the reference over the kept rows)
    _same(rec.score_live(min_hold_ms=1000), score_session(rec._score_time, rec._score_pred, rec._score_manual,
                                                          min_hold_ms=1000))
