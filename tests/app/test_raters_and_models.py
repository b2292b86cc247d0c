"""Rater B, the annotator lag and the second model, through the Qt-free controller (SyncRunner, no threads)."""

from __future__ import annotations

import json

from fer_models.agreement import agreement_from_intervals
from fer_models.scoring_cli import main as fer_score_main, score_file
from fer_models.session_log import (LabelInterval, read_actions, read_csv_table, read_label_intervals,
                                    read_per_frame, write_label_intervals)
from tests.app.fakes import SyncRunner


def _runner() -> SyncRunner:
    return SyncRunner.instances[-1]


def test_rater_b_paints_its_own_track_saved_as_its_own_file(make_controller, plain_video, tmp_path):
    c = make_controller()
    assert c.start_video(plain_video, play=False)
    ms = lambda f: f * 100.0  # noqa: E731 - 10 fps
    c.set_label("Happy")  # rater A from frame 0
    for _ in range(4):
        c.step(1)
    c.set_label("")
    c.seek(0)
    c.set_rater("B")
    assert c.active_track is c.track_b and c.session.paint_track is c.track_b
    assert c.shown_label == ""  # B has nothing under the playhead yet
    c.set_label("Sad")  # rater B from frame 0
    for _ in range(2):
        c.step(1)
    c.set_label("Happy")  # B: Happy from frame 2
    c.step(1)
    c.set_label("")  # frame 3, on screen, gets no label
    assert [c.track.label_at(ms(f)) for f in range(6)] == ["Happy"] * 4 + ["", ""]
    assert [c.track_b.label_at(ms(f)) for f in range(6)] == ["Sad", "Sad", "Happy", "", "", ""]
    saved_b = tmp_path / "rater_b.csv"
    assert c.save_labels(saved_b)  # Save labels saves the rater being labelled
    assert read_label_intervals(saved_b) == c.track_b.intervals
    assert c.shown_label == ""  # B's frame 3
    c.set_rater("A")
    assert c.shown_label == c.label_under_playhead == "Happy"  # A's frame 3
    folder = c.session.folder
    c.stop()
    # per_frame.csv carries rater A's labels only: frames 0-4, the seek back to 0, then 1-3 while B was
    # painted; B's Sad never reaches it
    rows = read_per_frame(folder / "per_frame.csv")
    assert rows["manual_label"] == [""] + ["Happy"] * 8
    a = read_label_intervals(folder / "video_labels.csv")
    b = read_label_intervals(folder / "video_labels_b.csv")
    assert a == c.track.intervals and b == c.track_b.intervals
    agreement = json.loads((folder / "agreement.json").read_text())
    assert agreement["kappa"] == agreement_from_intervals(a, b)["kappa"] and agreement["b"] == "video_labels_b.csv"
    kinds = [(k, v) for _, k, v in read_actions(folder / "actions.csv")]
    assert ("rater", "B") in kinds and ("rater", "A") in kinds
    assert sum(k == "video_label_b" for k, _ in kinds) == 3 and sum(k == "video_label" for k, _ in kinds) == 2
    assert ("labels_saved_b", str(saved_b)) in kinds


def test_labels_files_load_into_each_rater(make_controller, slideshow, tmp_path):
    b_file = write_label_intervals(tmp_path / "b.csv", [LabelInterval(0.0, 1500.0, "Happy"),
                                                        LabelInterval(1500.0, 3600.0, "Angry")])
    c = make_controller()
    assert c.start_video(slideshow["video"], labels=slideshow["labels"], labels_b=b_file, play=False)
    assert c.track.intervals == slideshow["intervals"]
    assert c.track_b.intervals == read_label_intervals(b_file)
    bad = tmp_path / "bad.csv"
    bad.write_text("start_ms,end_ms,label\n0,10,Joy\n")
    c.set_rater("B")
    assert not c.load_labels(bad)
    assert c.track_b.intervals == read_label_intervals(b_file)  # a refused file changes nothing
    assert "Labels file refused" in c.seen["message"][-1][1] and str(bad) in c.seen["message"][-1][1]
    c.stop()


def test_the_lag_is_used_for_the_live_and_final_scores_and_recorded(make_controller, slideshow, monkeypatch):
    c = make_controller(lag_ms=0.0)
    assert c.start_video(slideshow["video"], labels=slideshow["labels"])
    r = _runner()
    r.pump(10)
    assert c.set_lag_ms(300)
    assert not c.set_lag_ms(float("nan")) and c.lag_ms == 300.0
    r.play_to_end()
    live = c.session.recorder.score_live()
    folder = c.session.folder
    final = c.stop()
    per_frame = folder / "per_frame.csv"
    assert final["lag_ms"] == 300 and live == final
    assert {k: v for k, v in final.items() if k != "lag_ms"} == score_file(per_frame, lag_ms=300)
    assert json.loads((folder / "score.json").read_text()) == final
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert fer_score_main([str(per_frame), "--lag-ms", "300", "--json"]) == 0
    assert json.loads(out.getvalue()) == final  # score.json is what fer-score --lag-ms prints
    summary = read_csv_table(folder.parent / "demo_results_summary.csv", ["session", "lag_ms", "accuracy"])
    assert summary["session"] == [folder.name] and float(summary["lag_ms"][0]) == 300.0
    assert float(summary["accuracy"][0]) == final["accuracy"]
    assert ("set_lag_ms", "300.0") in [(k, v) for _, k, v in read_actions(folder / "actions.csv")]
    assert "annotator lag of 300 ms" in [t for lvl, t in c.seen["message"] if lvl == "info"][-1]


def test_a_second_model_runs_on_the_same_faces_and_is_compared(make_controller, other_model_dir, slideshow, tmp_path):
    c = make_controller()
    assert not c.load_second_model(tmp_path / "nope") and c.second_model is None
    assert "Second model refused" in c.seen["message"][-1][1]
    assert c.load_second_model(other_model_dir)
    assert [m.model_id for m in c.pipeline.extra_models] == ["linear-1"]
    assert c.start_video(slideshow["video"], labels=slideshow["labels"])
    _runner().pump(25)
    session = c.session
    points = list(session.timeline)
    assert len(points) == 25 and all(p.pred_b is not None for p in points)
    assert session.last_item.extra and session.last_item.extra[0].face.box == session.last_item.result.face.box
    folder = session.folder
    c.stop()
    a, b = read_per_frame(folder / "per_frame.csv"), read_per_frame(folder / "model_b" / "per_frame.csv")
    for col in ("frame_index", "time_sec", "manual_label", "face_x", "face_w"):
        assert a[col] == b[col], col
    assert b["model_id"][0] == "linear-1"
    comp = json.loads((folder / "comparison.json").read_text())
    assert comp["a"]["score"] == score_file(folder / "per_frame.csv")
    assert comp["b"]["score"] == score_file(folder / "model_b" / "per_frame.csv")
    assert comp["b"]["model_id"] == "linear-1" and comp["n_frames"] == 25
    assert [p.pred_b for p in points] == [x if x != "(unstable)" else "" for x in b["pred_label"]]
    summary = read_csv_table(folder.parent / "demo_results_summary.csv", ["session", "model_id"])
    assert summary["session"] == [folder.name, f"{folder.name}/model_b"]
    assert summary["model_id"] == ["linear-0", "linear-1"]
    # removed: the pipeline runs the first model alone again
    c.clear_second_model()
    assert c.pipeline.extra_models == [] and c.second_model is None


def test_a_second_model_opened_mid_session_is_logged_but_not_compared(make_controller, other_model_dir, slideshow):
    c = make_controller()
    assert c.start_video(slideshow["video"], labels=slideshow["labels"])
    _runner().pump(5)
    assert c.load_second_model(other_model_dir)
    _runner().pump(5)
    folder = c.session.folder
    c.stop()
    assert len(read_per_frame(folder / "model_b" / "per_frame.csv")["frame_index"]) == 5
    assert not (folder / "comparison.json").exists()
    level, text = c.seen["message"][-1]
    assert level == "warning" and "ran on 5 of the 10 frames" in text
