from __future__ import annotations

import csv
import io
import subprocess
import sys

import numpy as np
import pytest

from fer_models.errors import ArtifactError
from fer_models.session_log import (
    LabelInterval, SessionLogger, label_at, per_frame_base_columns, read_actions, read_events, read_label_intervals,
    read_per_frame, write_label_intervals,
)

EARLIER_HEADER = ("frame_index,time_sec,manual_label,pred_label,prob_Angry,prob_Disgust,prob_Fear,prob_Happy,"
                  "prob_Sad,prob_Surprise,prob_Neutral")


def test_header_starts_with_the_earlier_scripts_columns(tmp_path):
    log = SessionLogger(tmp_path)
    log.close()
    header = (tmp_path / "per_frame.csv").read_text().splitlines()[0]
    assert header.startswith(EARLIER_HEADER + ",")
    assert ",".join(per_frame_base_columns()) == EARLIER_HEADER
    assert (tmp_path / "events.csv").read_text().splitlines()[0] == \
        "label,start_frame,end_frame,start_time_sec,end_time_sec,source"
    assert (tmp_path / "actions.csv").read_text().splitlines()[0] == "time_sec,kind,value"


def test_label_segments_become_events(tmp_path):
    log = SessionLogger(tmp_path)
    p = np.full(7, 1 / 7)
    labels = ["", "Happy", "Happy", "Happy", "", "Sad", "Sad", "Fear"]
    for i, lab in enumerate(labels):
        if i == 5:
            log.note_label_source("click")
        log.log_frame(i, i * 0.1, lab, "Happy" if i % 2 else None, p)
    log.log_action(0.8, "set_alpha", 0.5)
    log.close()
    ev = read_events(tmp_path / "events.csv")
    assert [(e.label, e.start_frame, e.end_frame) for e in ev] == [("Happy", 1, 3), ("Sad", 5, 6), ("Fear", 7, 7)]
    assert ev[0].source == "hotkey" and ev[1].source == "click"
    assert ev[1].start_time_sec == pytest.approx(0.5) and ev[1].end_time_sec == pytest.approx(0.6)
    rows = read_per_frame(tmp_path / "per_frame.csv")
    assert rows["pred_label"][:2] == ["(unstable)", "Happy"]
    assert rows["manual_label"] == labels
    assert read_actions(tmp_path / "actions.csv") == [(0.8, "set_alpha", "0.5")]


def test_rows_are_on_disk_before_close_and_survive_a_crash(tmp_path):
    """A child process writes rows and dies with os._exit: every written row must be readable."""
    code = f"""
import os, numpy as np
from fer_models.session_log import SessionLogger
log = SessionLogger(r"{tmp_path}")
for i in range(5):
    log.log_frame(i, i / 10, "Happy", "Happy", np.full(7, 1 / 7))
log.log_action(0.5, "note", "before crash")
os._exit(1)
"""
    subprocess.run([sys.executable, "-c", code], check=False)
    rows = read_per_frame(tmp_path / "per_frame.csv")
    assert rows["frame_index"] == ["0", "1", "2", "3", "4"]
    assert read_actions(tmp_path / "actions.csv")[-1][2] == "before crash"
    # the open Happy segment was never closed; it is rebuilt from per_frame.csv by the scorer's segmentation
    assert read_events(tmp_path / "events.csv") == []


def test_readers_refuse_missing_columns_and_ragged_rows(tmp_path):
    bad = tmp_path / "per_frame.csv"
    bad.write_text("frame_index,time_sec,pred_label\n0,0.0,Happy\n")
    with pytest.raises(ArtifactError, match="missing required columns") as info:
        read_per_frame(bad)
    assert str(bad) in str(info.value)
    bad.write_text(EARLIER_HEADER + "\n0,0.0,,Happy,1,0,0,0,0,0\n")
    with pytest.raises(ArtifactError, match="line 2: expected 11 fields, found 10"):
        read_per_frame(bad)


def test_appending_with_other_columns_is_refused(tmp_path):
    (tmp_path / "events.csv").write_text("a,b\n")
    with pytest.raises(ArtifactError, match="exists with other columns"):
        SessionLogger(tmp_path)


def test_label_intervals_roundtrip_and_lookup(tmp_path):
    path = write_label_intervals(tmp_path / "gt.csv", [LabelInterval(1000, 2000, "Sad"), LabelInterval(0, 1000, "Happy")])
    iv = read_label_intervals(path)
    assert [r.label for r in iv] == ["Happy", "Sad"]
    assert label_at(iv, 999.9) == "Happy" and label_at(iv, 1000) == "Sad" and label_at(iv, 2500) == ""
    path.write_text("start_ms,end_ms,label\n0,100,joy\n")
    with pytest.raises(ArtifactError, match="line 2: unknown label 'joy'"):
        read_label_intervals(path)
    path.write_text("start_ms,end_ms,label\n0,100,Happy\n50,150,Sad\n")
    with pytest.raises(ArtifactError, match="overlap"):
        read_label_intervals(path)


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("line, problem", [
    ("0,nan,Happy", "must be finite numbers"),
    ("nan,100,Happy", "must be finite numbers"),
    ("0,inf,Happy", "must be finite numbers"),
    ("-500,-100,Sad", "wholly before video time 0"),
    ("-500,0,Sad", "wholly before video time 0"),
])
def test_label_intervals_that_could_never_apply_are_refused_with_the_line(tmp_path, line, problem):
    path = tmp_path / "gt.csv"
    path.write_text(f"start_ms,end_ms,label\n0,100,Fear\n{line}\n")
    with pytest.raises(ArtifactError, match=f"line 3: .*{problem}") as info:
        read_label_intervals(path)
    assert str(info.value).startswith(str(path))


def test_an_interval_starting_before_zero_still_applies_from_zero(tmp_path):
    path = tmp_path / "gt.csv"
    path.write_text("start_ms,end_ms,label\n-200,100,Happy\n")
    iv = read_label_intervals(path)
    assert label_at(iv, 0.0) == "Happy" and label_at(iv, 100.0) == ""


def test_write_errors_name_the_file(tmp_path):
    import errno

    from fer_models.session_log import CsvLogWriter

    class FullDisk(io.StringIO):
        def flush(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    w = CsvLogWriter(tmp_path / "log.csv", ["a", "b"])
    w.write([1, 2])
    w._fh.close()
    w._fh = FullDisk()
    w._writer = csv.writer(w._fh)
    with pytest.raises(ArtifactError, match="No space left on device") as info:
        w.write([3, 4])
    assert str(info.value).startswith(str(tmp_path / "log.csv"))
    assert isinstance(info.value, OSError)  # callers that catch OSError still do
    assert (tmp_path / "log.csv").read_text().splitlines() == ["a,b", "1,2"]  # the rows written stay

    (tmp_path / "blocker").write_text("x")
    with pytest.raises(ArtifactError, match="cannot") as info:
        CsvLogWriter(tmp_path / "blocker" / "log.csv", ["a"])
    assert str(tmp_path / "blocker") in str(info.value)
