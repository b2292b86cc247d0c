"""Mining app sessions: consent gates, which frames qualify, caps, minority classes first, a usable index."""

from __future__ import annotations

import csv
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from fer_models.classes import FER7, UNSTABLE
from fer_models.errors import ArtifactError
from fer_models.session_log import SessionLogger
from training.cli import main
from training.index import load_index
from training.mine import SessionRefused, mine_sessions, read_session, select, spread_order

FPS = 10.0


def fake_session(root: Path, name: str, segments, consent: str | None = "granted", crops: bool = True,
                 size: int = 48) -> Path:
    """A session folder to the app's contract, written with the app's own logger.

    ``segments``: (manual_label or "", n_frames, pred_label or None for (unstable)) runs, FPS frames a second.
    Every frame with a face gets a crop (crops/{frame:07d}.png + crops/crops.csv) when ``crops``.
    """
    folder = root / name
    log = SessionLogger(folder)
    if consent is not None:
        log.log_action(0.0, "clip_consent", consent)
    log.log_action(0.0, "session_start", "camera 0")
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    rows = []
    frame = 0
    for manual, n, pred in segments:
        for _ in range(n):
            t = frame / FPS
            probs = np.full(7, 0.05)
            if pred and pred != UNSTABLE:
                probs[FER7.index(pred)] = 0.7
            probs /= probs.sum()
            log.log_frame(frame, t, manual, pred, probs.tolist(),
                          {"face_x": 10.0, "face_y": 20.0, "face_w": 150.0 + frame, "face_h": 160.0})
            rows.append((frame, t))
            frame += 1
    log.log_action(frame / FPS, "session_end", "")
    log.close()
    if crops:
        (folder / "crops").mkdir()
        with (folder / "crops" / "crops.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["frame_index", "time_sec", "file"])
            for f, t in rows:
                cv2.imwrite(str(folder / "crops" / f"{f:07d}.png"), rng.integers(0, 256, (size, size), dtype=np.uint8))
                w.writerow([f, round(t, 6), f"{f:07d}.png"])
    return folder


def test_only_scored_disagreeing_class_predictions_with_crops_are_mined(tmp_path):
    s = fake_session(tmp_path, "s1", [
        ("", 10, "Happy"),           # no label held: never mined
        ("Happy", 30, "Sad"),        # 3 s held, predicted Sad: mined except the first/last 250 ms
        ("Happy", 0, None),
        ("Fear", 4, "Angry"),        # 0.3 s: shorter than min hold, not scored
        ("Surprise", 20, UNSTABLE),  # unstable is not a class prediction
        ("Neutral", 20, "Neutral"),  # agrees
    ])
    sess = read_session(s, stride_sec=0.0)
    cands = sess.candidates
    assert set(cands) == {FER7.index("Happy")}
    times = [c.time_sec for c in cands[FER7.index("Happy")]]
    # Happy rows are t = 1.0 .. 3.9 s; scored from 1.25 to 3.65 s
    assert min(times) == pytest.approx(1.3) and max(times) == pytest.approx(3.6)
    index = mine_sessions([s], tmp_path / "out", stride_sec=0.0)
    assert len(index) == len(times)
    assert set(index.splits) == {"train"} and set(index.labels) == {FER7.index("Happy")}
    assert index.sample_ids[0] == "s1/f0000013.png"
    back = load_index(tmp_path / "out")
    assert back.fingerprint == index.fingerprint
    first = tmp_path / "out" / "images" / "s1" / "f0000013.png"
    assert first.read_bytes() == (s / "crops" / "0000013.png").read_bytes()
    with (tmp_path / "out" / "mined.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["manual_label"] == "Happy" and rows[0]["pred_label"] == "Sad" and rows[0]["face_w"] == "163.0"
    meta = json.loads((tmp_path / "out" / "index.json").read_text())["mining"]
    assert meta["split"] == "train" and meta["sessions"][0]["consent"] == "granted"


def test_the_mined_index_feeds_a_dataset(tmp_path):
    from training.data import FERDataset, make_crop_spec

    s = fake_session(tmp_path, "s1", [("Sad", 30, "Happy")])
    index = mine_sessions([s], tmp_path / "out")
    ds = FERDataset(load_index(tmp_path / "out"), make_crop_spec(48), split="train")
    x, y, pos = ds[0]
    assert tuple(x.shape) == (1, 48, 48) and y == FER7.index("Sad") and len(ds) == len(index)


@pytest.mark.parametrize("consent, crops, problem", [
    (None, True, "no clip_consent row"),
    ("declined", True, "declined"),
    ("granted", False, "no crops"),
])
def test_sessions_without_consent_or_crops_are_refused_by_name(tmp_path, consent, crops, problem):
    good = fake_session(tmp_path, "good", [("Sad", 30, "Happy")])
    bad = fake_session(tmp_path, "bad_session", [("Sad", 30, "Happy")], consent=consent, crops=crops)
    with pytest.raises(SessionRefused, match=problem) as exc:
        mine_sessions([good, bad], tmp_path / "out")
    assert "bad_session" in str(exc.value)
    assert not (tmp_path / "out").exists()  # nothing written
    index = mine_sessions([good, bad], tmp_path / "out", skip_refused=True)
    assert {sid.split("/")[0] for sid in index.sample_ids} == {"good"}
    refused = json.loads((tmp_path / "out" / "index.json").read_text())["mining"]["refused"]
    assert len(refused) == 1 and "bad_session" in refused[0]


def test_a_later_decline_withdraws_consent(tmp_path):
    s = fake_session(tmp_path, "s1", [("Sad", 30, "Happy")])
    with (s / "actions.csv").open("a") as fh:
        fh.write("2.0,clip_consent,declined\n")
    with pytest.raises(SessionRefused, match="s1: the last clip consent answer in actions.csv is 'declined'"):
        mine_sessions([s], tmp_path / "out")


def test_a_decline_followed_by_consent_is_consent(tmp_path):
    # the app asks again each time clip saving is turned on; crops exist only after the user agreed
    s = fake_session(tmp_path, "s1", [("Sad", 30, "Happy")], consent=None)
    lines = (s / "actions.csv").read_text().splitlines()
    (s / "actions.csv").write_text("\n".join(lines + ["0.5,clip_consent,declined", "1.0,clip_consent,granted"]) + "\n")
    assert len(mine_sessions([s], tmp_path / "out")) > 0


def test_crops_of_another_session_are_refused(tmp_path):
    s = fake_session(tmp_path, "s1", [("Sad", 30, "Happy")])
    text = (s / "crops" / "crops.csv").read_text().replace("\n15,1.5,", "\n15,9.5,")
    (s / "crops" / "crops.csv").write_text(text)
    with pytest.raises(ArtifactError, match=r"crops\.csv: frame 15 has time_sec 9.5"):
        mine_sessions([s], tmp_path / "out")


def test_caps_minority_first_and_sessions_take_turns(tmp_path):
    # session a: lots of wrong Happy, a little wrong Fear; session b: wrong Happy only. Happy is common.
    a = fake_session(tmp_path, "a", [("Happy", 60, "Sad"), ("Fear", 20, "Surprise")])
    b = fake_session(tmp_path, "b", [("Happy", 60, "Neutral")])
    sa, sb = read_session(a, stride_sec=0.0), read_session(b, stride_sec=0.0)
    chosen = select([sa, sb], per_class_cap=10, per_session_cap=8)
    per = {(c.session, FER7[c.manual]) for c in chosen}
    n = lambda s, k: sum(1 for c in chosen if c.session == s and FER7[c.manual] == k)  # noqa: E731
    # Fear (rarest) is taken first from a's budget; Happy then shares its cap of 10 between a and b
    assert n("a", "Fear") == 8 and n("a", "Happy") == 0 and n("b", "Happy") == 8
    assert ("a", "Fear") in per and sum(1 for c in chosen if c.session == "a") <= 8
    chosen = select([sa, sb], per_class_cap=6, per_session_cap=100)
    assert n("a", "Happy") == 3 and n("b", "Happy") == 3 and n("a", "Fear") == 6  # turns, then the class cap
    # a session's picks are spread over its time, not its first frames
    picked = sorted(c.time_sec for c in chosen if c.session == "b")
    assert picked[-1] - picked[0] > 2.0


def test_stride_thins_consecutive_frames_and_spread_order_is_a_permutation(tmp_path):
    s = fake_session(tmp_path, "s1", [("Sad", 40, "Happy")])
    all_rows = read_session(s, stride_sec=0.0).candidates[FER7.index("Sad")]
    thinned = read_session(s, stride_sec=0.5).candidates[FER7.index("Sad")]
    assert len(thinned) < len(all_rows) / 3
    assert all(b.time_sec - a.time_sec >= 0.5 - 1e-9 for a, b in zip(thinned, thinned[1:]))
    for n in (0, 1, 7, 50):
        assert sorted(spread_order(n)) == list(range(n))


def test_bad_session_files_are_named(tmp_path):
    s = fake_session(tmp_path, "s1", [("Sad", 30, "Happy")])
    text = (s / "per_frame.csv").read_text().splitlines()
    text[5] = text[5].replace(",Sad,", ",Sadd,", 1)
    (s / "per_frame.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(ArtifactError, match=r"per_frame\.csv: line 6: unknown manual_label 'Sadd'"):
        mine_sessions([s], tmp_path / "out")
    with pytest.raises(ArtifactError, match="session folder not found"):
        mine_sessions([tmp_path / "nope"], tmp_path / "out")


def test_cli(tmp_path, capsys):
    s = fake_session(tmp_path, "s1", [("Sad", 30, "Happy")])
    out = tmp_path / "out"
    assert main(["mine", str(s), "--out", str(out)]) == 0
    assert "mined" in capsys.readouterr().out
    assert main(["mine", str(s), "--out", str(out)]) == 2  # refuses to overwrite
    assert main(["mine", str(s), "--out", str(out), "--force"]) == 0
    bad = fake_session(tmp_path, "nocon", [("Sad", 30, "Happy")], consent=None)
    assert main(["mine", str(bad), "--out", str(tmp_path / "o2")]) == 2
    assert "nocon" in capsys.readouterr().err


def test_agreeing_frames_join_the_mistakes_in_the_asked_ratio(tmp_path):
    s = fake_session(tmp_path, "s1", [("Happy", 30, "Sad"), ("Sad", 40, "Sad"), ("Angry", 40, "Angry")])
    index = mine_sessions([s], tmp_path / "out", agreeing_ratio=2.0)
    with (tmp_path / "out" / "mined.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    mistakes = [r for r in rows if r["kind"] == "mistake"]
    agreeing = [r for r in rows if r["kind"] == "agreeing"]
    only = mine_sessions([s], tmp_path / "out0")  # the default: mistakes only, as before
    n = len(only)
    assert n > 0 and sorted(r["sample_id"] for r in mistakes) == sorted(only.sample_ids)
    assert len(agreeing) == 2 * n and all(r["manual_label"] == r["pred_label"] for r in agreeing)
    assert {r["manual_label"] for r in agreeing} == {"Sad", "Angry"}  # spread over the session, both segments
    assert len(index) == 3 * n and len(set(index.sample_ids)) == 3 * n
    meta = json.loads((tmp_path / "out" / "index.json").read_text())["mining"]
    assert meta["agreeing_ratio"] == 2.0 and meta["sessions"][0]["n_agreeing"] == 2 * n
    assert sum(meta["per_class_agreeing"].values()) == 2 * n and sum(meta["per_class"].values()) == n
    with pytest.raises(ValueError, match=">= 0"):
        mine_sessions([s], tmp_path / "out1", agreeing_ratio=-1)
