"""``fer-train session-video`` and the session loop it feeds: a labelled face video from an index split,
replayed with recorded consent so that its crops are saved, then mined (issue 15)."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from app.replay import replay_video
from fer_models.session_log import read_actions, read_csv_table, read_label_intervals, read_per_frame
from training.cli import main
from training.index import load_index
from training.mine import mine_sessions
from training.session_video import face_times_ms, make_session_video, merged_intervals, order_positions


@pytest.fixture(scope="module")
def mini_index(tmp_path_factory, mini_tree):
    """This module's own copy of the mini index (the shared fixture's object is re-pointed by other tests)."""
    from training.index import build_index, write_index

    out = tmp_path_factory.mktemp("sv_index") / "index"
    write_index(build_index(mini_tree, progress=False), out)
    return load_index(out)


def test_face_times_tile_the_video_without_gaps():
    times = face_times_ms(4, 0.5, 15.0)  # 7.5 frames per face: rounding alternates 7 / 8 frames
    assert times[0][0] == 0.0 and all(a[1] == b[0] for a, b in zip(times, times[1:]))
    frames = [round((b - a) * 15.0 / 1000.0) for a, b in times]
    assert sum(frames) == 30 and set(frames) == {7, 8}


def test_consecutive_faces_of_one_class_form_one_segment():
    times = [(0, 100), (100, 200), (200, 300), (300, 400)]
    got = merged_intervals(times, ["Happy", "Happy", "Sad", "Happy"])
    assert [(r.start_ms, r.end_ms, r.label) for r in got] == [(0, 200, "Happy"), (200, 300, "Sad"),
                                                             (300, 400, "Happy")]


def test_name_order_plays_a_subjects_sequence_in_order_across_class_folders():
    ids = ["happy/S002_001_3.png", "anger/S001_002_2.png", "anger/S001_002_1.png", "sadness/S001_001_9.png"]
    assert order_positions(ids, range(4), "name", 0) == [3, 2, 1, 0]
    shuffled = order_positions(ids, range(4), "shuffle", 3)
    assert sorted(shuffled) == [0, 1, 2, 3] and shuffled == order_positions(ids, range(4), "shuffle", 3)


def test_the_video_shows_each_face_when_faces_csv_says(tmp_path, mini_index):
    rec = make_session_video(mini_index.path, ["test"], tmp_path / "v", seconds_each=0.4, fps=10.0,
                             face_px=96, size=(160, 120))
    assert rec["n_faces"] == 14 and rec["n_frames"] == 56 and rec["fingerprint"] == mini_index.fingerprint
    with (tmp_path / "v" / "faces.csv").open() as fh:
        faces = list(csv.DictReader(fh))
    cap = cv2.VideoCapture(str(tmp_path / "v" / "video.avi"))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 56
    # the middle frame of each face's time range shows that face (MJPG is lossy: compare loosely)
    from training.data import get_store

    store = get_store(mini_index)
    for row in faces[:5]:
        mid = int((float(row["start_ms"]) + float(row["end_ms"])) / 2 / 100.0)
        face = cv2.resize(store.get(mini_index.sample_ids.index(row["sample_id"])), (96, 96))
        shown = frames[mid][12:108, 32:128, 0].astype(float)
        assert np.abs(shown - face).mean() < 12
    labels = read_label_intervals(tmp_path / "v" / "labels.csv")
    assert labels[-1].end_ms == pytest.approx(5600.0)
    per_face = {r["sample_id"]: r["label"] for r in faces}
    assert sorted(per_face) == sorted(mini_index.sample_ids[p] for p in mini_index.positions("test"))
    with pytest.raises(Exception, match="already holds a session video"):
        make_session_video(mini_index.path, ["test"], tmp_path / "v")


def test_replay_with_consent_saves_crops_that_mining_reads(tmp_path, mini_index):
    """The whole loop on real faces and the bundled model: video -> replay with consent -> mine."""
    make_session_video(mini_index.path, ["train"], tmp_path / "v", seconds_each=1.0, fps=10.0)
    session = tmp_path / "session"
    res = replay_video(tmp_path / "v" / "video.avi", session, None, tmp_path / "v" / "labels.csv",
                       crops_consent="test fixture: FER2013 faces, no person filmed")
    assert res.n_faces > 0.8 * res.n_frames  # YuNet finds most enlarged FER2013 faces
    actions = [(k, v) for _, k, v in read_actions(session / "actions.csv")]
    assert ("clip_consent", "granted") in actions
    assert ("clip_consent_record", "test fixture: FER2013 faces, no person filmed") in actions
    assert actions[-1][0] != "clip_saving" or actions[-1][1].startswith("off")
    assert ("clip_saving", f"off ({res.n_faces} crops)") in actions
    crops = read_csv_table(session / "crops" / "crops.csv", ("frame_index", "time_sec", "file"))
    frames = read_per_frame(session / "per_frame.csv")
    with_face = [i for i, w in zip(frames["frame_index"], frames["face_w"]) if w]
    assert crops["frame_index"] == with_face
    assert not (session / "clips").exists()  # the video is the source: no second copy of it

    mined = mine_sessions([session], tmp_path / "mined", stride_sec=0.0)
    back = load_index(tmp_path / "mined")
    assert back.fingerprint == mined.fingerprint
    pred = dict(zip(frames["frame_index"], frames["pred_label"]))
    manual = dict(zip(frames["frame_index"], frames["manual_label"]))
    for sid in mined.sample_ids:  # only frames where the model disagreed with the held label
        frame = str(int(sid.split("/f")[1].split(".")[0]))
        assert pred[frame] != manual[frame] and manual[frame]
    assert len(mined) > 0


def test_a_replay_without_consent_saves_no_pixels(tmp_path, mini_index):
    make_session_video(mini_index.path, ["test"], tmp_path / "v", seconds_each=0.3, fps=10.0, max_faces=3)
    session = tmp_path / "session"
    replay_video(tmp_path / "v" / "video.avi", session, None, tmp_path / "v" / "labels.csv")
    assert not (session / "crops").exists()
    assert not any(p.suffix in (".png", ".jpg", ".avi") for p in session.rglob("*"))
    assert "clip_consent" not in [k for _, k, _ in read_actions(session / "actions.csv")]


def test_cli(tmp_path, mini_index, capsys):
    out = tmp_path / "v"
    assert main(["session-video", "--index", str(mini_index.path), "--split", "val", "test", "--out", str(out),
                 "--seconds-each", "0.2", "--size", "320x240", "--face-px", "160"]) == 0
    assert "28 faces" in capsys.readouterr().out
    rec = json.loads((out / "session_video.json").read_text())
    assert rec["splits"] == ["val", "test"] and rec["size"] == [320, 240]
    assert main(["session-video", "--index", str(mini_index.path), "--out", str(tmp_path / "w"),
                 "--size", "big"]) == 2
    assert "640x480" in capsys.readouterr().err
