"""Video -> detection -> crop -> ONNX -> calibration -> smoothing -> logs -> fer-score, on real FER2013 faces."""

from __future__ import annotations

import json

import cv2
import pytest

from app.__main__ import main as fer_demo
from fer_models.classes import FER7
from fer_models.scoring_cli import main as fer_score
from fer_models.session_log import read_events, read_per_frame
from tests.factories import fer_images, make_model_folder, write_slideshow

FPS = 15.0
SECONDS = 1.4
SEQUENCE = ["Happy", "Sad", "Surprise", "Neutral"]


@pytest.fixture(scope="module")
def slideshow(tmp_path_factory, fer2013_dir):
    folder = tmp_path_factory.mktemp("video")
    by_class = {FER7[k]: p for p, k in fer_images(fer2013_dir, per_class=1)}
    faces = [cv2.imread(str(by_class[c]), cv2.IMREAD_GRAYSCALE) for c in SEQUENCE]
    n = write_slideshow(folder / "show.avi", faces, SECONDS, FPS)
    seg_ms = SECONDS * 1000
    labels = folder / "gt.csv"
    labels.write_text("start_ms,end_ms,label\n" + "".join(
        f"{i * seg_ms:.1f},{(i + 1) * seg_ms:.1f},{c.lower()}\n" for i, c in enumerate(SEQUENCE)))
    return folder / "show.avi", labels, n


def test_replay_writes_consistent_logs_and_fer_score_agrees(tmp_path, slideshow, capsys):
    video, labels, n_frames = slideshow
    model_dir = make_model_folder(tmp_path / "model")
    out = tmp_path / "session"
    assert fer_demo(["--replay", str(video), "--model", str(model_dir), "--labels", str(labels),
                     "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == n_frames == 4 * round(SECONDS * FPS)
    assert summary["faces"] >= 0.8 * n_frames

    rows = read_per_frame(out / "per_frame.csv")
    assert len(rows["frame_index"]) == n_frames
    per_seg = round(SECONDS * FPS)
    expected_manual = [c for c in SEQUENCE for _ in range(per_seg)]
    assert rows["manual_label"] == expected_manual
    assert all(p in FER7 or p == "(unstable)" for p in rows["pred_label"])
    t = [float(v) for v in rows["time_sec"]]
    assert t == sorted(t) and t[1] == pytest.approx(1 / FPS, abs=1e-6)
    assert all(float(v) >= 0 for v in rows["ms_total"])

    events = read_events(out / "events.csv")
    assert [(e.label, e.start_frame, e.end_frame) for e in events] == [
        (c, i * per_seg, (i + 1) * per_seg - 1) for i, c in enumerate(SEQUENCE)]
    assert all(e.source == "labels_file" for e in events)

    settings = json.loads((out / "settings.json").read_text())
    assert settings["smoothing"] == {"alpha": 0.7, "delta": 0.08, "window": 15, "min_count": 8, "window_ms": None}
    assert (out / "model_card.json").is_file()
    assert not list(out.glob("*.png")) and not list(out.glob("*.jpg"))  # privacy: no pixels on disk

    assert fer_score([str(out / "per_frame.csv"), "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored == pytest.approx(summary["score"])
    assert scored["n_segments"] == 4  # every 1.4 s segment is longer than min_hold
    # rows within 250 ms of a change are excluded: 1.4 s segments at 15 fps keep t in [t0+0.25, t_last-0.25]
    assert scored["n_scored_frames"] == 4 * sum(
        1 for i in range(per_seg) if 0.25 - 1e-9 <= i / FPS <= (per_seg - 1) / FPS - 0.25 + 1e-9)
    demo_summary = (out / "demo_results_summary.csv").read_text().splitlines()  # inside the folder named by --out
    assert len(demo_summary) == 2 and "linear-0" in demo_summary[1]
    assert not (out.parent / "demo_results_summary.csv").exists()


def test_replay_refuses_a_missing_video_and_a_bad_model(tmp_path, capsys):
    model_dir = make_model_folder(tmp_path / "model")
    assert fer_demo(["--replay", str(tmp_path / "nope.avi"), "--model", str(model_dir), "--out", str(tmp_path / "s")]) == 2
    assert "nope.avi: video file not found" in capsys.readouterr().err
    (model_dir / "model_card.json").write_text("{}")
    assert fer_demo(["--replay", str(tmp_path / "nope.avi"), "--model", str(model_dir), "--out", str(tmp_path / "s")]) == 2
    assert "model_card.json: model card lacks required keys" in capsys.readouterr().err
