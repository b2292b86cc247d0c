"""SessionRecorder (app/session.py): never appends to an old session; score.json is written before the summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.session import SessionRecorder
from fer_models.errors import ArtifactError
from fer_models.model_folder import load_model_folder
from fer_models.pipeline import FrameResult, PipelineSettings


def _frames(rec: SessionRecorder, n: int = 5) -> None:
    p = np.full(7, 1 / 7, np.float32)
    for i in range(n):
        rec.log_frame(i, i / 10, FrameResult(None, p, p, None, None, {}))


def test_a_folder_holding_a_session_is_never_appended_to(tmp_path, model_dir):
    model = load_model_folder(model_dir)
    rec = SessionRecorder(tmp_path / "s", model, PipelineSettings(), "test")
    _frames(rec)
    rec.close(0.4, tmp_path / "summary.csv")
    before = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()}
    with pytest.raises(ArtifactError, match="already holds a session") as info:
        SessionRecorder(tmp_path / "s", model, PipelineSettings(), "test")
    assert str(info.value).startswith(str(tmp_path / "s"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir()} == before


def test_score_json_is_written_before_the_summary_row(tmp_path, model_dir):
    model = load_model_folder(model_dir)
    rec = SessionRecorder(tmp_path / "s", model, PipelineSettings(), "test")
    _frames(rec)
    (tmp_path / "summary.csv").mkdir()  # the summary cannot be written
    with pytest.raises(ArtifactError) as info:
        rec.close(0.4, tmp_path / "summary.csv")
    assert str(info.value).startswith(str(tmp_path / "summary.csv"))
    assert rec.closed and rec.final_score is not None
    assert json.loads((tmp_path / "s" / "score.json").read_text()) == rec.final_score
