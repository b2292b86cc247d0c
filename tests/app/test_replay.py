"""``fer-demo --replay`` on bad input: every fault ends with a message naming the path, or a warning
where the run can go on, and nothing already on disk is lost or overwritten."""

from __future__ import annotations

import builtins
import errno
import io
import json
from pathlib import Path

import numpy as np
import pytest

from app.__main__ import main as fer_demo
from app.replay import replay_video
from fer_models.classes import FER7
from fer_models.errors import ArtifactError, ClassListMismatch
from fer_models.model_folder import load_model_folder
from fer_models.session_log import read_actions, read_csv_table, read_per_frame
from tests.factories import make_linear_onnx, make_model_folder, truncate_file, write_frames_video


@pytest.fixture
def video(tmp_path) -> Path:
    return write_frames_video(tmp_path / "clip.avi", 6)


def _replay(capsys, *argv) -> tuple[int, str, str]:
    rc = fer_demo(["--replay", *[str(a) for a in argv]])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refuse_writes_under(monkeypatch, folder: Path, err: int = errno.EROFS, only: Path | None = None) -> None:
    """Make every open-for-writing under ``folder`` (or of the one file ``only``) fail as on a read-only disk.

    A chmod would not do: these tests may run as root, whom permissions do not stop.
    """
    real_open, real_io_open = builtins.open, io.open
    folder = folder.resolve()

    def guarded(real):
        def fake(file, mode="r", *args, **kwargs):
            if isinstance(file, (str, Path)) and any(m in mode for m in "wax+"):
                p = Path(file).resolve()
                if (only is None and folder in (p, *p.parents)) or (only is not None and p == only.resolve()):
                    raise OSError(err, "Read-only file system", str(file))
            return real(file, mode, *args, **kwargs)
        return fake

    monkeypatch.setattr(builtins, "open", guarded(real_open))
    monkeypatch.setattr(io, "open", guarded(real_io_open))


# ----------------------------------------------------------------------------- 1: an existing session folder

def test_an_existing_session_folder_is_refused_and_left_untouched(tmp_path, model_dir, video, capsys):
    out = tmp_path / "session"
    rc, _, err = _replay(capsys, video, "--model", model_dir, "--out", out)
    assert rc == 0, err
    before = _snapshot(out)
    assert "per_frame.csv" in before and "score.json" in before

    rc, stdout, err = _replay(capsys, video, "--model", model_dir, "--out", out)
    assert rc == 2 and stdout == ""
    assert str(out) in err and "already holds a session" in err and "choose another --out" in err
    assert "Traceback" not in err
    assert _snapshot(out) == before  # not one byte of the old session changed


def test_a_non_empty_folder_is_refused_but_an_empty_one_is_used(tmp_path, model_dir, video, capsys):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("keep me")
    rc, _, err = _replay(capsys, video, "--model", model_dir, "--out", other)
    assert rc == 2 and str(other) in err and "not empty" in err and "choose another --out" in err
    assert _snapshot(other) == {"todo.txt": b"keep me"}

    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = _replay(capsys, video, "--model", model_dir, "--out", empty)
    assert rc == 0, err
    assert len(read_per_frame(empty / "per_frame.csv")["frame_index"]) == 6


def test_out_that_is_a_file_is_refused(tmp_path, model_dir, video, capsys):
    out = tmp_path / "session.txt"
    out.write_text("x")
    rc, _, err = _replay(capsys, video, "--model", model_dir, "--out", out)
    assert rc == 2 and str(out) in err and "not a folder" in err and out.read_text() == "x"


# ----------------------------------------------------------------------------- 2 and 3: the model checks

@pytest.mark.parametrize("breakage", ["nan", "inf"])
def test_replay_refuses_a_model_with_non_finite_outputs(tmp_path, video, capsys, breakage):
    folder = make_model_folder(tmp_path / "m")
    if breakage == "nan":
        make_linear_onnx(folder / "model.onnx", bias=np.full(7, np.nan))
    else:
        make_linear_onnx(folder / "model.onnx", weights=np.full((64 * 64, 7), 1e38))
    out = tmp_path / "session"
    rc, _, err = _replay(capsys, video, "--model", folder, "--out", out)
    assert rc == 2 and str(folder / "model.onnx") in err and "not finite" in err
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("classes", [
    ["Happy", "Angry", "Disgust", "Fear", "Sad", "Surprise", "Neutral"],  # every file reordered consistently
    list(FER7) + ["Contempt"],  # an 8-class folder used to crash in scoring after all logs were written
], ids=["reordered", "eight"])
def test_replay_refuses_the_class_lists_the_window_refuses(tmp_path, video, capsys, classes):
    folder = make_model_folder(tmp_path / "m", classes=classes)
    out = tmp_path / "session"
    rc, _, err = _replay(capsys, video, "--model", folder, "--out", out)
    assert rc == 2 and str(folder / "classes.json") in err and "FER7" in err
    assert not out.exists()
    # the library entry point refuses a loaded model the same way, before the first frame
    with pytest.raises(ClassListMismatch, match="FER7"):
        replay_video(video, out, load_model_folder(folder))
    assert not out.exists()


# ----------------------------------------------------------------------------- 4: disk errors and the summary

def test_summary_goes_into_the_session_folder_or_where_summary_says(tmp_path, model_dir, video, capsys):
    out = tmp_path / "a"
    rc, stdout, err = _replay(capsys, video, "--model", model_dir, "--out", out)
    assert rc == 0, err
    assert not (tmp_path / "demo_results_summary.csv").exists()  # nothing outside the folder the user named
    rows = read_csv_table(out / "demo_results_summary.csv", ["session", "model_id"])
    assert rows["session"] == ["a"] and rows["model_id"] == ["linear-0"]
    assert json.loads(stdout)["summary_csv"] == str(out / "demo_results_summary.csv")

    summary = tmp_path / "results" / "all.csv"
    for name in ("b", "c"):
        rc, stdout, err = _replay(capsys, video, "--model", model_dir, "--out", tmp_path / name, "--summary", summary)
        assert rc == 0, err
    assert read_csv_table(summary, ["session"])["session"] == ["b", "c"]
    assert not (tmp_path / "b" / "demo_results_summary.csv").exists()


def test_a_summary_with_other_columns_is_refused_before_the_first_frame(tmp_path, model_dir, video, capsys):
    summary = tmp_path / "summary.csv"
    summary.write_text("a,b\n1,2\n")
    out = tmp_path / "session"
    rc, _, err = _replay(capsys, video, "--model", model_dir, "--out", out, "--summary", summary)
    assert rc == 2 and str(summary) in err and "other columns" in err
    assert not out.exists() and summary.read_text() == "a,b\n1,2\n"


def test_summary_flag_needs_replay(capsys):
    assert fer_demo(["--summary", "x.csv"]) == 2
    assert "--summary" in capsys.readouterr().err


def test_read_only_out_is_a_message_naming_the_path_not_a_traceback(tmp_path, model_dir, video, capsys,
                                                                  monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    _refuse_writes_under(monkeypatch, out)
    rc, stdout, err = _replay(capsys, video, "--model", model_dir, "--out", out)
    assert rc == 2 and stdout == ""
    assert err.startswith("fer-demo: error: ") and "Traceback" not in err
    assert str(out) in err and "Read-only file system" in err


def test_out_below_a_file_is_a_message_naming_the_path(tmp_path, model_dir, video, capsys):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "session"
    rc, _, err = _replay(capsys, video, "--model", model_dir, "--out", out)
    assert rc == 2 and str(out) in err and "Traceback" not in err


def test_a_failing_summary_keeps_the_logs_and_score_json(tmp_path, model_dir, video, capsys, monkeypatch):
    summary = tmp_path / "summary.csv"
    _refuse_writes_under(monkeypatch, tmp_path, only=summary)
    out = tmp_path / "session"
    rc, _, err = _replay(capsys, video, "--model", model_dir, "--out", out, "--summary", summary)
    assert rc == 2 and str(summary) in err and "Read-only file system" in err and "Traceback" not in err
    assert str(out) in err  # says where the session's logs and score are
    monkeypatch.undo()
    score = json.loads((out / "score.json").read_text())
    assert score["n_segments"] == 0
    assert len(read_per_frame(out / "per_frame.csv")["frame_index"]) == 6
    assert [k for _, k, _ in read_actions(out / "actions.csv")][-1] == "session_end"


# ----------------------------------------------------------------------------- 8: empty and truncated videos

def test_a_video_without_frames_is_an_error(tmp_path, model_dir, capsys):
    empty = write_frames_video(tmp_path / "empty.avi", 0)
    out = tmp_path / "session"
    rc, _, err = _replay(capsys, empty, "--model", model_dir, "--out", out)
    assert rc == 2 and str(empty) in err and "no frame" in err
    assert not out.exists()


def test_a_truncated_video_is_replayed_with_a_warning(tmp_path, model_dir, capsys):
    clip = truncate_file(write_frames_video(tmp_path / "cut.avi", 20), 0.5)
    out = tmp_path / "session"
    rc, stdout, err = _replay(capsys, clip, "--model", model_dir, "--out", out)
    assert rc == 0, err
    n = json.loads(stdout)["frames"]
    assert 0 < n < 20
    assert f"fer-demo: warning: {clip}: read {n} of the 20 frames the container declares" in err
    actions = read_actions(out / "actions.csv")
    warnings = [v for _, k, v in actions if k == "warning"]
    assert len(warnings) == 1 and f"read {n} of the 20 frames" in warnings[0]
    assert "video_frames" in [k for _, k, _ in actions]
    reported = json.loads(stdout)["warnings"]
    assert len(reported) == 1 and reported[0].startswith(f"{clip}: read {n} of the 20 frames")


def test_a_whole_video_or_max_frames_gives_no_warning(tmp_path, model_dir, video, capsys):
    for name, extra in (("whole", []), ("part", ["--max-frames", "3"])):
        out = tmp_path / name
        rc, stdout, err = _replay(capsys, video, "--model", model_dir, "--out", out, *extra)
        assert rc == 0 and "warning" not in err, err
        assert json.loads(stdout)["warnings"] == []
        assert "warning" not in [k for _, k, _ in read_actions(out / "actions.csv")]


def test_replay_errors_are_artifact_errors_from_the_library_too(tmp_path, model_dir):
    empty = write_frames_video(tmp_path / "empty.avi", 0)
    with pytest.raises(ArtifactError, match="no frame"):
        replay_video(empty, tmp_path / "s", load_model_folder(model_dir))


# ----------------------------------------------------------------------------- face crops need a consent record

def test_save_crops_needs_a_consent_record(tmp_path, model_dir, video, capsys):
    rc, _, err = _replay(capsys, video, "--out", tmp_path / "s", "--model", model_dir, "--save-crops", "  ")
    assert rc == 2 and "needs the consent record" in err and not (tmp_path / "s").exists()


def test_save_crops_applies_to_replay_only(capsys):
    assert fer_demo(["--save-crops", "P01 agreed"]) == 2
    assert "--replay only" in capsys.readouterr().err
