"""Face crops saved with clips (issue 15): only with consent, exactly the model's input, indexed by frame.

The contract ``fer-train mine`` reads: ``<session>/crops/{frame_index:07d}.png`` (uint8, the model's input
size, after alignment and CLAHE, before mean/std; grey or RGB as the card says) and ``crops/crops.csv``
(``frame_index,time_sec,file``).
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from app.clip_writer import CROPS_COLUMNS, CropWriter
from fer_models.detector import FaceDetector
from fer_models.face_crop import WORK_SCALE, align_and_crop, crop_face, crop_face_and_image, prepare_face
from fer_models.model_folder import load_model_folder
from fer_models.session_log import read_actions, read_csv_table, read_per_frame
from tests.app.fakes import SyncRunner
from tests.factories import make_model_folder


def _runner() -> SyncRunner:
    return SyncRunner.instances[-1]


def _crop_rows(folder):
    table = read_csv_table(folder / "crops" / "crops.csv", CROPS_COLUMNS)
    assert list(table) == list(CROPS_COLUMNS)  # the exact header, nothing more
    return table


def test_declined_consent_writes_no_crops(make_controller, slideshow):
    c = make_controller(ask_consent=lambda folder: False)
    c.start_video(slideshow["video"])
    assert not c.set_clips(True)
    assert not c.pipeline.keep_crops
    _runner().pump(6)
    folder = c.session.folder
    c.stop()
    assert not (folder / "crops").exists() and not (folder / "clips").exists()
    assert [v for _, k, v in read_actions(folder / "actions.csv") if k == "clip_consent"] == ["declined"]
    assert not any(p.suffix == ".png" for p in folder.rglob("*"))


def test_no_consent_no_crops_even_if_the_pipeline_keeps_them(make_controller, slideshow):
    """The session writes crops only after consent, whatever the pipeline hands it."""
    c = make_controller()
    c.start_video(slideshow["video"])
    c.pipeline.set_keep_crops(True)  # a bug elsewhere must still not write pixels
    _runner().pump(4)
    assert c.session.last_item.result.crop is not None
    with pytest.raises(PermissionError):
        c.session.start_clips()
    folder = c.session.folder
    c.stop()
    assert not (folder / "crops").exists()


def test_granted_consent_saves_the_model_input_of_every_face_frame(make_controller, slideshow):
    c = make_controller(ask_consent=lambda folder: True)
    c.start_video(slideshow["video"])
    r = _runner()
    r.pump(3)  # frames before consent: no crops
    assert c.set_clips(True) and c.pipeline.keep_crops and c.clips_saving
    r.pump(8)
    assert not c.set_clips(False) and not c.pipeline.keep_crops
    r.pump(3)  # after clip saving stops: no crops
    folder = c.session.folder
    spec = c.model.crop_spec()
    c.stop()

    rows = _crop_rows(folder)
    frames = read_per_frame(folder / "per_frame.csv")
    logged = dict(zip(frames["frame_index"], frames["time_sec"]))
    with_face = [i for i, w in zip(frames["frame_index"], frames["face_w"]) if w]
    saved = [int(i) for i in rows["frame_index"]]
    assert saved == [int(i) for i in with_face[3:11]]  # exactly the face frames while saving was on
    assert rows["file"] == [f"{i:07d}.png" for i in saved]
    assert [rows["time_sec"][k] for k in range(len(saved))] == [logged[str(i)] for i in saved]
    for name in rows["file"]:
        img = cv2.imread(str(folder / "crops" / name), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint8 and img.shape == (spec.input_size, spec.input_size)  # gray card
    assert sorted(p.name for p in (folder / "crops").iterdir()) == sorted(rows["file"] + ["crops.csv"])
    kinds = [v for _, k, v in read_actions(folder / "actions.csv") if k == "clip_saving"]
    assert kinds == ["on", "off (8 frames, 8 crops)"]


@pytest.mark.parametrize("card", [
    dict(input_size=64, channels=1, color="gray", mean=[0.5], std=[0.5], clahe=True),
    dict(input_size=48, channels=3, color="gray", mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3], clahe=False),
    dict(input_size=56, channels=3, color="rgb", mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
         clahe=True),
], ids=["gray", "gray-3ch", "rgb"])
def test_a_saved_crop_is_the_aligned_face_before_clahe(tmp_path, slideshow, card):
    model = load_model_folder(make_model_folder(tmp_path / "m", **card))
    spec = model.crop_spec()
    cap = cv2.VideoCapture(str(slideshow["video"]))
    ok, frame = cap.read()
    cap.release()
    assert ok
    face = FaceDetector().detect_largest(frame)
    assert face is not None
    tensor, image = crop_face_and_image(frame, face.box, face.landmarks, spec)
    # the tensor is exactly the live path's, and the image comes from the same alignment
    np.testing.assert_array_equal(tensor, crop_face(frame, face.box, face.landmarks, spec))
    aligned = align_and_crop(frame, face.box, face.landmarks, spec.crop_margin, spec.align_eyes,
                             max_side=WORK_SCALE * spec.input_size)
    np.testing.assert_array_equal(prepare_face(aligned, spec), tensor)
    expected_shape = (spec.input_size, spec.input_size) + (() if card["color"] == "gray" else (3,))
    assert image.dtype == np.uint8 and image.shape == expected_shape
    # before CLAHE: the saved face has the frame's own contrast, not the equalised one the model saw
    no_clahe = prepare_face(aligned, replace(spec, clahe=False))
    again = prepare_face(image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                         replace(spec, clahe=False))
    np.testing.assert_allclose(again, no_clahe, rtol=0, atol=1e-5)
    if spec.clahe:
        assert np.abs(again - tensor).max() > 0.05  # so the saved face is not the equalised one
    writer = CropWriter(tmp_path / "session")
    path = writer.write(12, 0.8, image)
    writer.close()
    assert path.name == "0000012.png"
    back = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # grey, or BGR as OpenCV reads an RGB PNG
    if card["color"] == "rgb":  # the PNG holds RGB as RGB: OpenCV's channel 2 is red
        np.testing.assert_array_equal(back[..., 2], image[..., 0])
    else:
        np.testing.assert_array_equal(back, image)
    assert read_csv_table(tmp_path / "session" / "crops" / "crops.csv", CROPS_COLUMNS) == {
        "frame_index": ["12"], "time_sec": ["0.8"], "file": ["0000012.png"]}


def test_a_failing_crop_write_stops_saving_and_keeps_the_session(make_controller, slideshow, monkeypatch):
    c = make_controller(ask_consent=lambda folder: True)
    c.start_video(slideshow["video"])
    assert c.set_clips(True)
    _runner().pump(2)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(c.session.folder / "crops" / "x.png"))

    monkeypatch.setattr("app.clip_writer.atomic_write_bytes", full_disk)
    _runner().pump(2)
    assert not c.clips_saving and not c.pipeline.keep_crops
    level, text = c.seen["message"][-1]
    assert level == "error" and "No space left on device" in text and "Clip saving stopped" in text
    _runner().pump(2)  # the session goes on
    folder = c.session.folder
    c.stop()
    assert len(read_per_frame(folder / "per_frame.csv")["frame_index"]) == 6
    assert len(_crop_rows(folder)["frame_index"]) == 2  # the rows written before the failure stay
