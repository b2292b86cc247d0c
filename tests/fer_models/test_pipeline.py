from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fer_models.detector import FaceDetector
from fer_models.model_folder import load_model_folder
from fer_models.pipeline import FramePipeline, PipelineSettings
from tests.factories import fer_images, make_model_folder, place_on_canvas


@pytest.fixture()
def pipeline(tmp_path):
    model = load_model_folder(make_model_folder(tmp_path / "m"))
    return FramePipeline(model, FaceDetector(), PipelineSettings(alpha=0.0, window=3, min_count=2, redetect_every=1))


@pytest.fixture(scope="module")
def frame(fer2013_dir):
    img = cv2.imread(str(fer_images(fer2013_dir, per_class=1)[3][0]), cv2.IMREAD_GRAYSCALE)
    return place_on_canvas(img)[0]


def test_process_times_every_stage_and_never_touches_the_frame(pipeline, frame):
    before = frame.copy()
    r = pipeline.process(frame, 0.0)
    assert r.face is not None and r.probs is not None and r.probs.shape == (7,)
    assert set(r.timings_ms) == {"detect", "crop", "infer", "smooth", "total"}
    assert r.timings_ms["total"] >= r.timings_ms["detect"]
    assert np.array_equal(frame, before)
    assert r.label is None  # min_count 2: one frame is not enough
    assert pipeline.process(frame, 0.1).label is not None


def test_face_lost_resets_smoothing(pipeline, frame):
    pipeline.process(frame, 0.0)
    pipeline.process(frame, 0.1)
    blank = np.zeros_like(frame)
    r = pipeline.process(blank, 0.2)
    assert r.face is None and r.label is None and r.probs is None
    assert pipeline.process(frame, 0.3).label is None  # history was cleared


def test_settings_apply_from_the_next_frame_and_bad_values_are_refused(pipeline, frame):
    pipeline.update_settings(min_count=1, window=1)
    assert pipeline.process(frame, 0.0).label is not None
    with pytest.raises(ValueError, match="cannot exceed"):
        pipeline.update_settings(min_count=5)
    assert pipeline.settings.min_count == 1
    pipeline.update_settings(min_face=400)
    assert pipeline.process(frame, 0.1).face is None  # the face is ~240 px


def test_thresholds_hide_weak_labels(tmp_path, frame):
    folder = make_model_folder(tmp_path / "t")
    (folder / "calibration.json").write_text(json.dumps({"temperature": 1.0}))
    plain = FramePipeline(load_model_folder(folder), FaceDetector(), PipelineSettings(window=1, min_count=1))
    r = plain.process(frame, 0.0)
    assert r.label is not None
    top = float(r.smoothed[r.label_index])
    assert top < 0.99
    for thr, shown in ((top - 0.01, True), (min(1.0, top + 0.01), False)):
        (folder / "calibration.json").write_text(json.dumps({"temperature": 1.0, "thresholds": [thr] * 7}))
        p = FramePipeline(load_model_folder(folder), FaceDetector(), PipelineSettings(window=1, min_count=1))
        r = p.process(frame, 0.0)
        assert r.probs is not None and (r.label is not None) == shown, thr


def _iou(a, b):
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return iw * ih / (aw * ah + bw * bh - iw * ih)


def test_tracking_between_full_detections_is_stable(tmp_path, frame):
    model = load_model_folder(make_model_folder(tmp_path / "m"))
    p = FramePipeline(model, FaceDetector(), PipelineSettings(redetect_every=5))
    boxes = [p.process(frame, i / 30).face.box for i in range(10)]
    assert boxes[0] == boxes[5]  # frames 0 and 5 are full detections of the same frame
    assert boxes[1] == boxes[2] == boxes[3] == boxes[4]  # tracked frames search the same anchored region
    assert _iou(boxes[0], boxes[1]) > 0.8
    blank = np.zeros_like(frame)
    assert p.process(blank, 0.5).face is None  # a lost face falls back to full detection, which finds none


def test_user_changes_clamp_min_count_to_the_window_in_one_place():
    s = PipelineSettings()  # window 15, min count 8
    assert s.with_changes(window=5) == PipelineSettings(window=5, min_count=5)
    assert s.with_changes(min_count=40).min_count == 15
    assert s.with_changes(window_ms=600.0, min_count=40).min_count == 40  # a window in ms does not bound it
    assert PipelineSettings(window_ms=600.0, min_count=40).with_changes(window_ms=None).min_count == 15
    assert s.with_changes(window=5).changes_from(s) == {"window": 5, "min_count": 5}
    with pytest.raises(ValueError):
        s.with_changes(alpha=1.0)  # what a clamp cannot fix is still refused


def test_the_crop_spec_is_built_per_settings_or_model_change_not_per_frame(pipeline, frame, monkeypatch, tmp_path):
    from fer_models.model_folder import FerModel

    calls = []
    original = FerModel.crop_spec

    def counting(self, **overrides):
        calls.append(overrides)
        return original(self, **overrides)

    monkeypatch.setattr(FerModel, "crop_spec", counting)
    for i in range(3):
        pipeline.process(frame, i / 10)
    assert calls == []
    pipeline.update_settings(clahe=False, crop_margin=0.5)
    assert calls == [{"align_eyes": None, "clahe": False, "crop_margin": 0.5}]
    r = pipeline.process(frame, 0.3)
    assert r.face is not None and len(calls) == 1
    pipeline.set_model(load_model_folder(make_model_folder(tmp_path / "other", seed=3)))
    pipeline.process(frame, 0.4)
    assert len(calls) == 2
