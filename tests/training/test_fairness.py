"""Fairness strata: pose from landmarks, bins, bootstrap CIs, index and session sources, marked small strata."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from fer_models.calibration import NO_LABEL, Calibration, save_calibration
from fer_models.classes import FER7, write_classes_json
from training.artifacts import save_npz
from training.cli import main
from training.fairness import (NO_LANDMARKS, bin_label, bootstrap_metrics, face_brightness, image_features,
                               pose_from_landmarks, present_macro_f1, run_strata)
from training.index import build_index, load_index, write_index

from .conftest import good_logits
from .test_mine import fake_session

REPO = Path(__file__).resolve().parents[2]


def _face(roll_deg: float = 0.0, yaw_deg: float = 0.0, d: float = 60.0) -> np.ndarray:
    """YuNet-order landmarks of a face with the given roll, and a nose offset that means ``yaw_deg``."""
    pts = np.array([[-d / 2, 0.0], [d / 2, 0.0], [0.4 * d * math.tan(math.radians(yaw_deg)), 30.0],
                    [-20.0, 55.0], [20.0, 55.0]])
    a = math.radians(roll_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return pts @ rot.T + [200.0, 150.0]


@pytest.mark.parametrize("roll, yaw", [(0.0, 0.0), (12.0, 0.0), (0.0, 20.0), (-8.0, -30.0)])
def test_pose_from_landmarks(roll, yaw):
    r, y = pose_from_landmarks(_face(roll, yaw))
    assert r == pytest.approx(roll, abs=1e-6) and y == pytest.approx(yaw, abs=1e-6)


def test_bins_and_brightness():
    edges = (0.0, 5.0, 15.0, 180.0)
    assert bin_label(-3.0, edges, absolute=True, unit=" deg") == "|0-5 deg|"
    assert bin_label(15.0, edges, absolute=True) == "|15-180|"
    assert bin_label(None, edges) is None and bin_label(float("nan"), edges) is None
    assert bin_label(300.0, (0.0, 128.0, math.inf)) == ">=128"
    img = np.zeros((50, 50), np.uint8)
    img[10:40, 10:40] = 200  # the face region: the border (background) does not count
    assert face_brightness(img) == pytest.approx(200.0)


def test_present_macro_f1_and_bootstrap():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 6, 400)
    pred = np.where(rng.random(400) < 0.7, y, rng.integers(0, 7, 400))
    pred[:20] = NO_LABEL
    assert present_macro_f1(pred, y) == pytest.approx(f1_score(y, pred, labels=np.unique(y), average="macro"))
    b = bootstrap_metrics(pred, y, n_boot=300, n_classes=7)
    acc = b["accuracy"]
    assert acc["value"] == pytest.approx(np.mean(pred == y)) and acc["ci_low"] < acc["value"] < acc["ci_high"]
    small = bootstrap_metrics(pred[:40], y[:40], n_boot=300)["accuracy"]
    assert small["ci_high"] - small["ci_low"] > acc["ci_high"] - acc["ci_low"]  # fewer faces, wider interval
    assert len(b["per_class_f1"]["value"]) == 7
    assert bootstrap_metrics(pred[:0], y[:0])["accuracy"]["value"] is None


def test_image_features_mark_undetected_faces():
    imgs = [np.full((48, 48), 60, np.uint8), np.full((48, 48), 200, np.uint8), None]
    calls = iter([(1.0, 30.0), None])
    f = image_features(imgs, lambda img: next(calls))
    assert f.strata["brightness"][0].startswith("dark") and f.strata["brightness"][1].startswith("very bright")
    assert f.strata["brightness"][2] is None
    assert f.strata["yaw"] == ["|25-90 deg|", NO_LANDMARKS, None]
    assert "face_size" in f.notes and NO_LANDMARKS in f.order["roll"]


@pytest.fixture(scope="module")
def scored_index(tmp_path_factory, mini_tree):
    out = tmp_path_factory.mktemp("strata_idx") / "index"
    write_index(build_index(mini_tree, progress=False), out)
    return load_index(out)


def _run(root: Path, index, name: str, strength: float, thresholds=None) -> Path:
    """A run folder holding only test logits (as fer-train evaluate writes them) and a calibration."""
    run = root / name
    run.mkdir()
    write_classes_json(run, index.classes)
    pos = index.positions("test")
    z = good_logits(index.labels[pos], strength=strength, seed=len(name))
    save_npz(run / "logits_test.npz", logits=z, labels=index.labels[pos], positions=pos,
             sample_id=np.array([index.sample_ids[p] for p in pos]), index_fingerprint=np.array(index.fingerprint),
             classes=np.array(index.classes))
    save_calibration(run, Calibration(temperature=1.5, thresholds=thresholds, classes=list(index.classes)))
    return run


def test_index_source_before_after_with_pose_and_marked_strata(scored_index, tmp_path):
    before = _run(tmp_path, scored_index, "before", 0.5)
    after = _run(tmp_path, scored_index, "after", 4.0, thresholds=[0.3] * 7)
    out = tmp_path / "strata"
    r = run_strata(out, [scored_index.path], [str(before), str(after)], min_n=10, n_boot=200)
    for name in ("summary.csv", "strata.csv", "strata.json", "strata.png"):
        assert (out / name).is_file(), name
    s_before, s_after = r["summary"]
    assert s_before["model"] == "before" and s_after["vs"] == "before"
    assert s_after["accuracy"] > s_before["accuracy"] and s_after["accuracy_diff"] > 0
    assert s_before["coverage"] == 1.0 and s_after["coverage"] <= 1.0
    assert s_before["ece"] is not None and s_before["n"] == len(scored_index.positions("test"))
    kinds = {row["kind"] for row in r["strata"]}
    assert kinds == {"brightness", "roll", "yaw"}  # no face size for dataset images, said in the notes
    assert "face_size" in r["notes"][f"{scored_index.name}:test"]
    for kind in kinds:  # every face is in exactly one stratum of each kind, per model
        rows = [x for x in r["strata"] if x["kind"] == kind and x["model"] == "before"]
        assert sum(x["n"] for x in rows) == s_before["n"]
        assert all(x["few"] == (x["n"] < 10) for x in rows)
        assert all((x["accuracy"] is None) == (x["n"] == 0) for x in rows)  # empty strata listed, not dropped
    assert any(x["n"] == 0 for x in r["strata"])
    with (out / "strata.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == len(r["strata"])


def test_a_calibration_override_and_a_model_folder(scored_index, tmp_path):
    run = _run(tmp_path, scored_index, "r", 3.0)
    strict = tmp_path / "strict.json"
    save_calibration(strict, Calibration(temperature=1.0, thresholds=[0.99] * 7, classes=list(FER7)))
    default_model = REPO / "resources" / "models" / "default"
    r = run_strata(tmp_path / "o", [scored_index.path], [f"{run}@{strict}", str(default_model)], n_boot=50,
                   pose=False)
    assert r["summary"][0]["coverage"] < 0.5 and r["summary"][0]["calibration"] == str(strict)
    assert r["summary"][1]["model"] == "default" and 0.0 <= r["summary"][1]["accuracy"] <= 1.0
    assert {row["kind"] for row in r["strata"]} == {"brightness"}


def test_replayed_sessions_are_paired_and_stratified_by_face_size(tmp_path):
    segs = [("Happy", 40, "Happy"), ("Sad", 40, "Happy"), ("Angry", 30, "Angry")]
    a = fake_session(tmp_path, "replay_before", segs)
    b = fake_session(tmp_path, "replay_after", [("Happy", 40, "Happy"), ("Sad", 40, "Sad"), ("Angry", 30, "Angry")])
    c = fake_session(tmp_path, "other", [("Fear", 30, "Fear")], crops=False)
    r = run_strata(tmp_path / "o", sessions=[a, b, c], n_boot=100, pose=False, min_n=40)
    by = {row["model"]: row for row in r["summary"]}
    assert by["replay_after"]["vs"] == "replay_before" and by["replay_after"]["accuracy_diff"] > 0.2
    assert by["replay_before"]["source"] == by["replay_after"]["source"] != by["other"]["source"]
    assert by["other"]["ece"] is None  # sessions log labels, not probabilities
    sizes = [x for x in r["strata"] if x["kind"] == "face_size" and x["model"] == "replay_before"]
    assert sum(x["n"] for x in sizes) == by["replay_before"]["n"] and any(x["few"] for x in sizes)
    other_kinds = {x["kind"] for x in r["strata"] if x["model"] == "other"}
    assert other_kinds == {"face_size"} and "lighting unavailable" in r["notes"]["session:other"]["brightness"]


def test_cli_and_bad_input(scored_index, tmp_path, capsys):
    run = _run(tmp_path, scored_index, "r", 3.0)
    assert main(["strata", "--out", str(tmp_path / "o"), "--index", str(scored_index.path), "--run", str(run),
                 "--bootstrap", "50", "--no-pose"]) == 0
    assert "strata" in capsys.readouterr().out
    assert main(["strata", "--out", str(tmp_path / "o2"), "--index", str(scored_index.path)]) == 2
    assert "needs at least one --run" in capsys.readouterr().err
    assert main(["strata", "--out", str(tmp_path / "o3"), "--session", str(tmp_path)]) == 2
    assert "not a session folder" in capsys.readouterr().err
    data = json.loads((tmp_path / "o" / "strata.json").read_text())
    assert data["min_n"] == 30 and data["bins"]["brightness"][0] == 0.0


def test_resampling_groups_takes_whole_groups():
    from training.aggregate import resample_indices

    groups = np.repeat([7, 3, 9], [5, 2, 4])
    rng = np.random.default_rng(1)
    for _ in range(20):
        idx = resample_indices(rng, len(groups), groups)
        drawn = groups[idx]
        for g, size in ((7, 5), (3, 2), (9, 4)):
            assert np.sum(drawn == g) % size == 0  # a group comes with all its rows or not at all
        assert len(np.unique(idx)) <= len(idx)
    assert np.array_equal(resample_indices(np.random.default_rng(0), 5), np.random.default_rng(0).integers(0, 5, 5))


def test_session_intervals_resample_segments_not_frames(tmp_path):
    """Ten segments of 40 near-identical frames, half of them right: the interval of a 10-segment sample,
    not of 400 independent frames."""
    segs = [("Happy" if i % 2 else "Sad", 40, "Happy") for i in range(10)]
    s = fake_session(tmp_path, "s", segs, crops=False)
    row = run_strata(tmp_path / "o", sessions=[s], n_boot=400, pose=False)["summary"][0]
    width = row["accuracy_ci_high"] - row["accuracy_ci_low"]
    frames = bootstrap_metrics(np.where(np.arange(400) % 80 < 40, 1, 3), np.full(400, 3), n_boot=400)
    frame_width = frames["accuracy"]["ci_high"] - frames["accuracy"]["ci_low"]
    assert width > 2.5 * frame_width  # about sqrt(40 / 1) times wider in theory; the frame CI is ~0.1 wide
