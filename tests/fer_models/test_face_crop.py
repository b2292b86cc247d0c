from __future__ import annotations

import cv2
import numpy as np
import pytest

from fer_models.detector import FaceDetector
from fer_models.face_crop import CropSpec, crop_face, crop_transform, eye_angle_deg, prepare_face
from fer_models.framing import measure_framing_margin, place_on_canvas
from tests.factories import fer_images


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


@pytest.fixture(scope="module")
def faces(fer2013_dir):
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p, _ in fer_images(fer2013_dir, per_class=4)]


def test_prepare_face_shapes_and_normalisation(faces):
    img = faces[0]
    spec = CropSpec(input_size=64, clahe=False)
    x = prepare_face(img, spec)
    assert x.shape == (1, 64, 64) and x.dtype == np.float32
    ref = (cv2.resize(img, (64, 64), interpolation=cv2.INTER_LINEAR) / 255.0 - 0.5) / 0.5
    assert np.allclose(x[0], ref, atol=1e-5)
    with_clahe = prepare_face(img, CropSpec(input_size=64, clahe=True))
    assert not np.allclose(with_clahe, x)
    three = prepare_face(img, CropSpec(input_size=48, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3, clahe=False))
    assert three.shape == (3, 48, 48) and np.array_equal(three[0], three[2])
    rgb = prepare_face(cv2.cvtColor(img, cv2.COLOR_GRAY2BGR), CropSpec(input_size=32, channels=3, color="rgb",
                                                                   mean=(0.4, 0.5, 0.6), std=(1, 1, 1)))
    assert rgb.shape == (3, 32, 32) and not np.allclose(rgb[0], rgb[2])  # per-channel means differ


def test_fer2013_framing_margin_is_measured(fer2013_dir, detector):
    paths = [p for p, _ in fer_images(fer2013_dir, per_class=10)]
    m = measure_framing_margin(paths, detector)
    assert m.detection_rate >= 0.85
    # FER2013 images are tight crops: YuNet's box is about as large as the image itself.
    assert -0.15 < m.margin_median < 0.1


def test_crop_of_the_pasted_square_is_the_training_input(faces):
    """The affine crop is exact: cropping the pasted square back out gives prepare_face of the original."""
    spec = CropSpec(input_size=48, clahe=False, align_eyes=False, crop_margin=0.0)
    for img in faces[:6]:
        canvas, square = place_on_canvas(img)
        live = crop_face(canvas, square, None, spec)
        assert np.corrcoef(live.ravel(), prepare_face(img, spec).ravel())[0, 1] > 0.99


def test_measured_margin_frames_faces_like_training_images(faces, detector):
    """With the detector's box, the measured FER2013 margin matches training framing better than 0.30.

    Pixel agreement is limited by how much YuNet's box varies from face to face (+-20% in size),
    so the test compares margins rather than asking for a perfect match.
    """
    def median_corr(margin):
        spec = CropSpec(input_size=48, clahe=False, align_eyes=False, crop_margin=margin)
        corrs = []
        for img in faces:
            canvas, _ = place_on_canvas(img)
            face = detector.detect_largest(canvas)
            if face is not None:
                live = crop_face(canvas, face.box, face.landmarks, spec)
                corrs.append(np.corrcoef(live.ravel(), prepare_face(img, spec).ravel())[0, 1])
        return float(np.median(corrs))

    assert median_corr(-0.03) > median_corr(0.30) + 0.1


def test_eye_alignment_levels_the_eyes(faces):
    # full-resolution detection: YuNet's landmarks on a 320 px downscale follow a tilt less closely
    detector = FaceDetector(detect_width=None)
    canvas, _ = place_on_canvas(faces[5], face_px=260)
    rot = cv2.warpAffine(canvas, cv2.getRotationMatrix2D((320, 240), 20, 1.0), (640, 480),
                         borderMode=cv2.BORDER_REPLICATE)
    face = detector.detect_largest(rot)
    upright = detector.detect_largest(canvas)
    assert face is not None and upright is not None
    # rotating the image by +20 degrees (counter-clockwise) turns the eye line by about -20 degrees
    assert eye_angle_deg(face.landmarks) - eye_angle_deg(upright.landmarks) == pytest.approx(-20, abs=5)
    m, _ = crop_transform(face.box, face.landmarks, 0.0, True, 64)
    eyes = cv2.transform(face.landmarks[None, :2].astype(np.float64), m)[0]
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1.0  # level after alignment
    assert eyes[0, 0] < eyes[1, 0]  # and not flipped
    spec = CropSpec(input_size=48, clahe=False, crop_margin=0.0)
    a = crop_face(rot, face.box, face.landmarks, spec)
    b = crop_face(canvas, upright.box, upright.landmarks, spec)
    unaligned = crop_face(rot, face.box, face.landmarks, CropSpec(input_size=48, clahe=False, crop_margin=0.0,
                                                                 align_eyes=False))
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > np.corrcoef(unaligned.ravel(), b.ravel())[0, 1]


def test_crop_is_deterministic_and_handles_faces_at_the_edge(faces, detector):
    canvas, _ = place_on_canvas(faces[2], face_px=200, center=(100, 240))
    face = detector.detect_largest(canvas)
    spec = CropSpec()
    a = crop_face(canvas, face.box, face.landmarks, spec)
    b = crop_face(canvas.copy(), face.box, face.landmarks.copy(), spec)
    assert np.array_equal(a, b) and a.shape == (1, 64, 64) and np.isfinite(a).all()
    edge = crop_face(canvas, (-50, -50, 200, 200), None, spec)  # box partly outside the frame
    assert edge.shape == (1, 64, 64) and np.isfinite(edge).all()


def test_card_of_a_blurred_data_model_is_refused_as_obsolete(tmp_path):
    """Cards asking for the blurred-copy low-pass (input_blur > 0) name the problem instead of loading."""
    from fer_models.errors import ArtifactError
    from fer_models.model_card import load_model_card
    from tests.factories import make_model_folder

    with pytest.raises(ArtifactError, match=r"model_card.json.*input_blur 0.06.*obsolete"):
        load_model_card(make_model_folder(tmp_path / "m", extra={"input_blur": 0.06}))
    assert load_model_card(make_model_folder(tmp_path / "ok", extra={"input_blur": 0.0})).input_size > 0
