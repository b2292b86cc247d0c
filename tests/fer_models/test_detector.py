from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_models import detector as det_mod
from fer_models.detector import FaceDetector, detector_spec, resolve_yunet_model, sha256_of
from fer_models.errors import DetectorUnavailable
from tests.factories import fer_images, place_on_canvas


def test_manifest_matches_the_installed_opencv_and_shared_hashes(shared_dir):
    spec = detector_spec()
    expected = "face_detection_yunet_2026may.onnx" if int(cv2.__version__.split(".")[0]) >= 5 \
        else "face_detection_yunet_2023mar.onnx"
    assert spec.file == expected
    assert sha256_of(shared_dir / "models" / spec.file) == spec.sha256
    assert detector_spec(4).sha256 == sha256_of(shared_dir / "models" / "face_detection_yunet_2023mar.onnx")


def test_resolution_order(monkeypatch, tmp_path, shared_dir):
    spec = detector_spec()
    shared_file = shared_dir / "models" / spec.file
    # 1. explicit path wins
    assert resolve_yunet_model(shared_file) == shared_file
    # 2. environment folder (what the tests use)
    assert resolve_yunet_model() == shared_file
    # 3. user cache (platformdirs), when no env var is set
    monkeypatch.delenv("FER_YUNET_DIR")
    cache = det_mod.user_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / spec.file).write_bytes(shared_file.read_bytes())
    assert resolve_yunet_model() == cache / spec.file
    # a corrupted cached copy is passed over for the bundled one, not used
    (cache / spec.file).write_bytes(b"not a model")
    assert resolve_yunet_model() == det_mod.bundled_model_path(spec.file)
    (cache / spec.file).unlink()


def test_bundled_detector_works_offline_out_of_the_box(monkeypatch):
    """The README's first command on a machine without network: no env var, no cache, downloads off."""
    monkeypatch.delenv("FER_YUNET_DIR")
    monkeypatch.setenv("FER_OFFLINE", "1")
    spec = detector_spec()
    path = resolve_yunet_model()
    assert path == det_mod.bundled_model_path(spec.file) and sha256_of(path) == spec.sha256
    for major in (4, 5):  # both OpenCV generations' files ship, with their licence
        assert sha256_of(det_mod.bundled_model_path(detector_spec(major).file)) == detector_spec(major).sha256
    assert "MIT License" in (path.parent / "LICENSE-YuNet.txt").read_text()
    assert FaceDetector().detect_largest(np.zeros((240, 320, 3), np.uint8)) is None


def test_offline_without_any_good_copy_names_every_place_searched(monkeypatch, tmp_path):
    spec = detector_spec()
    bad_dir = tmp_path / "env"
    bad_dir.mkdir()
    (bad_dir / spec.file).write_bytes(b"corrupt")
    monkeypatch.setenv("FER_YUNET_DIR", str(bad_dir))
    monkeypatch.setenv("FER_OFFLINE", "1")
    monkeypatch.setattr(det_mod, "bundled_model_path", lambda f: tmp_path / "no_bundle" / f)
    with pytest.raises(DetectorUnavailable) as info:
        resolve_yunet_model()
    msg = str(info.value)
    assert f"FER_YUNET_DIR folder {bad_dir / spec.file} (SHA-256" in msg and "does not match" in msg
    assert str(det_mod.user_cache_dir() / spec.file) in msg and str(tmp_path / "no_bundle" / spec.file) in msg
    assert spec.url in msg and "FER_YUNET_MODEL" in msg and "FER_OFFLINE=1" in msg


def test_download_is_verified(monkeypatch, tmp_path, shared_dir):
    """The download path, fed from a local file URL: a wrong hash leaves no file behind."""
    spec = detector_spec()
    src = shared_dir / "models" / spec.file
    target = tmp_path / "dl" / spec.file
    det_mod.download_verified(src.as_uri(), target, spec.sha256)
    assert sha256_of(target) == spec.sha256
    bad = tmp_path / "dl2" / spec.file
    with pytest.raises(ValueError, match="expected"):
        det_mod.download_verified(src.as_uri(), bad, "0" * 64)
    assert not bad.exists() and not list(bad.parent.glob("*.part"))


def test_finds_upscaled_fer2013_faces_with_landmarks(fer2013_dir):
    det = FaceDetector()
    imgs = fer_images(fer2013_dir, per_class=10)
    found = 0
    for path, _ in imgs:
        canvas, (x0, y0, s, _) = place_on_canvas(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
        face = det.detect_largest(canvas)
        if face is None:
            continue
        found += 1
        x, y, w, h = face.box
        cx, cy = x + w / 2, y + h / 2
        assert x0 <= cx <= x0 + s and y0 <= cy <= y0 + s  # the box is on the pasted face
        assert face.landmarks.shape == (5, 2)
        assert face.landmarks[0, 0] < face.landmarks[1, 0]  # right eye (image left) before left eye
    assert found / len(imgs) >= 0.85  # about 93% here


def test_min_face_and_largest_selection(fer2013_dir):
    det = FaceDetector(min_face=96)
    face = cv2.imread(str(fer_images(fer2013_dir, per_class=1)[3][0]), cv2.IMREAD_GRAYSCALE)
    canvas, _ = place_on_canvas(face, face_px=220, center=(200, 240))
    small = cv2.resize(face, (110, 110), interpolation=cv2.INTER_CUBIC)
    canvas[185:295, 480:590] = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    faces = det.detect(canvas)
    assert faces and faces[0].box[0] < 320  # the big face first
    det.min_face = 150
    assert all(f.size >= 150 for f in det.detect(canvas))
    det.min_face = 500
    assert det.detect(canvas) == []
    assert det.detect_largest(np.zeros((240, 320, 3), np.uint8)) is None


def test_tracking_region_size_is_a_setting_and_too_small_is_refused(fer2013_dir):
    """``roi_px`` (benchmarks/pipeline.py --roi-px) sets the side of the region detect_near searches; the
    region re-finds the face the full detection found, in frame pixels, at the default and a larger side."""
    face = cv2.imread(str(fer_images(fer2013_dir, per_class=1)[3][0]), cv2.IMREAD_GRAYSCALE)
    canvas, _ = place_on_canvas(face, face_px=220, center=(300, 240))
    for roi in (128, 160):
        det = FaceDetector(roi_px=roi)
        full = det.detect_largest(canvas)
        near = det.detect_near(canvas, full)
        assert det.roi_px == roi and near is not None
        assert np.allclose(near.box[:2], full.box[:2], atol=0.1 * full.size)
        assert abs(near.size - full.size) < 0.15 * full.size
    with pytest.raises(ValueError, match="roi_px"):
        FaceDetector(roi_px=16)
