"""``fer-demo --replay VIDEO --model A --model B``: one decode and detection, a crop per model, two sessions
and comparison.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.__main__ import main as fer_demo
from app.replay import replay_compare
from fer_models.detector import FaceDetector
from fer_models.scoring_cli import score_file
from fer_models.session_log import read_actions, read_csv_table, read_per_frame
from tests.factories import make_model_folder


@pytest.fixture(scope="module")
def model_b(tmp_path_factory) -> Path:
    """Another model whose card asks for another crop: 48 px, no CLAHE, no eye alignment, margin 0.2."""
    return make_model_folder(tmp_path_factory.mktemp("ab") / "linear-b48", input_size=48, seed=4, clahe=False,
                             align_eyes=False, crop_margin=0.2)


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = fer_demo([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_ab_replay_writes_two_sessions_and_the_comparison(tmp_path, capsys, model_dir, model_b, slideshow):
    out = tmp_path / "ab"
    rc, stdout, err = _run(capsys, "--replay", slideshow["video"], "--labels", slideshow["labels"],
                           "--model", model_dir, "--model", model_b, "--out", out, "--bootstrap", "300",
                           "--seed", "7")
    assert rc == 0, err
    line = json.loads(stdout)
    comp = json.loads((out / "comparison.json").read_text())
    assert line["comparison_json"] == str(out / "comparison.json")
    assert [s["session_dir"] for s in line["sessions"]] == [str(out / "A"), str(out / "B")]
    assert comp["models"]["A"]["model_id"] == "linear-0" and comp["models"]["B"]["model_id"] == "linear-4"
    rows = {k: read_per_frame(out / k / "per_frame.csv") for k in ("A", "B")}
    # the very same frames and detections: frame, time, manual label and face box identical on every row
    for col in ("frame_index", "time_sec", "manual_label", "face_x", "face_y", "face_w", "face_h", "det_score"):
        assert rows["A"][col] == rows["B"][col], col
    assert len(rows["A"]["frame_index"]) == slideshow["frames"] == comp["frames"]
    assert sum(1 for w in rows["A"]["face_w"] if w) == comp["faces"] > 0
    # each session is an ordinary one: fer-score gives its score.json, which comparison.json shows side by side
    for k, key in (("A", "a"), ("B", "b")):
        score = json.loads((out / k / "score.json").read_text())
        assert score == score_file(out / k / "per_frame.csv") == comp[key]["score"]
        assert (out / k / "model_card.json").is_file()
        assert "compared_with" in [kind for _, kind, _ in read_actions(out / k / "actions.csv")]
    assert json.loads((out / "B" / "model_card.json").read_text())["input_size"] == 48  # B's own crop
    for m in ("accuracy", "macro_f1"):
        a, b = comp["metrics"][m]["a"], comp["metrics"][m]["b"]
        assert comp["metrics"][m]["b_minus_a"] == pytest.approx(b - a)
        boot = comp["bootstrap"][m]
        assert boot["a"] == pytest.approx(a, abs=1e-12) and boot["b"] == pytest.approx(b, abs=1e-12)
        assert boot["ci_low"] <= boot["b_minus_a"] <= boot["ci_high"]
        assert line["b_minus_a"][m]["ci_low"] == boot["ci_low"]
    assert comp["bootstrap"]["n_resamples"] == 300 and comp["bootstrap"]["seed"] == 7
    assert comp["bootstrap"]["n_segments"] == 3
    differ = [i for i, (x, y) in enumerate(zip(rows["A"]["pred_label"], rows["B"]["pred_label"])) if x != y]
    assert comp["disagreements"]["n_frames"] == len(differ) == line["disagreeing_frames"]
    assert [f["frame_index"] for f in comp["disagreements"]["frames"]] == [
        int(rows["A"]["frame_index"][i]) for i in differ][:500]
    summary = read_csv_table(out / "demo_results_summary.csv", ["session", "model_id"])
    assert summary["session"] == ["A", "B"] and summary["model_id"] == ["linear-0", "linear-4"]


def test_the_face_is_detected_once_per_frame_for_both_models(tmp_path, model_dir, model_b, slideshow):
    calls = []

    class CountingDetector(FaceDetector):
        def detect_largest(self, frame):
            calls.append("full")
            return super().detect_largest(frame)

        def detect_near(self, frame, face):
            calls.append("near")
            return super().detect_near(frame, face)

    res = replay_compare(slideshow["video"], tmp_path / "ab", [model_dir, model_b], slideshow["labels"],
                         detector=CountingDetector(), max_frames=12, n_resamples=20)
    assert res.sessions[0].n_frames == 12
    # one detection (full, or tracked near the last face) per frame, not one per model
    assert 12 <= len(calls) <= 13  # a tracked frame that loses the face falls back to one full detection


def test_the_same_model_twice_agrees_everywhere(tmp_path, model_dir, slideshow):
    res = replay_compare(slideshow["video"], tmp_path / "same", [model_dir, model_dir], slideshow["labels"],
                         n_resamples=50)
    c = res.comparison
    assert c["disagreements"]["n_frames"] == 0 and c["disagreements"]["frames"] == []
    assert c["bootstrap"]["accuracy"]["b_minus_a"] == 0.0
    assert (c["bootstrap"]["accuracy"]["ci_low"], c["bootstrap"]["accuracy"]["ci_high"]) == (0.0, 0.0)
    assert c["a"]["score"] == c["b"]["score"]


def test_ab_refusals_name_the_problem_and_write_nothing(tmp_path, capsys, model_dir, model_b, slideshow):
    out = tmp_path / "ab"
    rc, _, err = _run(capsys, "--replay", slideshow["video"], "--model", model_dir, "--model", model_b,
                      "--model", model_dir, "--out", out)
    assert rc == 2 and "--model was given 3 times" in err and not out.exists()
    rc, _, err = _run(capsys, "--replay", slideshow["video"], "--labels-b", slideshow["labels"], "--out", out)
    assert rc == 2 and "--labels-b applies to --video only" in err and not out.exists()
    rc, _, err = _run(capsys, "--replay", slideshow["video"], "--model", model_dir, "--out", out, "--seed", "3")
    assert rc == 2 and "--seed apply to an A/B replay only" in err and not out.exists()
    rc, _, err = _run(capsys, "--replay", slideshow["video"], "--model", model_dir, "--model", model_b,
                      "--out", out, "--bootstrap", "0")
    assert rc == 2 and "--bootstrap must be at least 1" in err and not out.exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    rc, _, err = _run(capsys, "--replay", slideshow["video"], "--model", model_dir, "--model", broken,
                      "--out", out)
    assert rc == 2 and str(broken) in err and "Traceback" not in err and not out.exists()
    (out / "old").mkdir(parents=True)
    rc, _, err = _run(capsys, "--replay", slideshow["video"], "--model", model_dir, "--model", model_b,
                      "--out", out)
    assert rc == 2 and "not empty" in err and sorted(p.name for p in out.iterdir()) == ["old"]


def test_an_ab_replay_with_a_consent_record_saves_each_models_own_crops(tmp_path, capsys, model_dir, model_b,
                                                                        slideshow):
    out = tmp_path / "ab"
    rc, _, err = _run(capsys, "--replay", slideshow["video"], "--labels", slideshow["labels"], "--model", model_dir,
                      "--model", model_b, "--out", out, "--bootstrap", "20", "--save-crops", "fixture faces")
    assert rc == 0, err
    sizes = {}
    for name in ("A", "B"):
        rows = read_csv_table(out / name / "crops" / "crops.csv", ("frame_index", "time_sec", "file"))
        frames = read_per_frame(out / name / "per_frame.csv")
        assert rows["frame_index"] == [i for i, w in zip(frames["frame_index"], frames["face_w"]) if w]
        import cv2

        sizes[name] = cv2.imread(str(out / name / "crops" / rows["file"][0]), cv2.IMREAD_UNCHANGED).shape
        kinds = [(k, v) for _, k, v in read_actions(out / name / "actions.csv")]
        assert ("clip_consent", "granted") in kinds and ("clip_consent_record", "fixture faces") in kinds
    assert sizes == {"A": (64, 64), "B": (48, 48)}  # each card's own input size
