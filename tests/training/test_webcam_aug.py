"""Webcam-style augmentation: off by default, the existing augmentation bit-exact, each op doing what it says."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fer_models.errors import ArtifactError
from training.data import AugmentConfig, FERDataset, augment_image, make_crop_spec
from training.webcam_aug import OPS, WebcamAugConfig, WebcamOp, apply_webcam, motion_kernel

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "training" / "configs" / "augment" / "webcam_aug.json"

# sha256 of augment_image's outputs (and of the generator state each one leaves) for the default,
# webcam() and random-erasing configs below, computed with training/data.py BEFORE the webcam ops
# were added (git 5d108f3). A changed value means the augmentation the running trainings resume
# with has changed: their resumed epochs would no longer be bit-exact.
AUGMENT_REFERENCE_SHA256 = "57044edebcf809e199e38f6a1e052cff4e92db651d049cd4c743572a2e6f790f"


def _images() -> list[np.ndarray]:
    r = np.random.default_rng(123)
    yy, xx = np.mgrid[0:48, 0:48]
    return [((xx * 3 + yy * 2) % 256).astype(np.uint8), r.integers(0, 256, (48, 48), dtype=np.uint8),
            np.full((40, 40), 128, np.uint8)]


def test_existing_augmentation_is_unchanged_bit_for_bit():
    h = hashlib.sha256()
    for cfg in (AugmentConfig(), AugmentConfig.webcam(), dataclasses.replace(AugmentConfig(), erase_prob=0.5)):
        for i, img in enumerate(_images()):
            for epoch in range(4):
                rng = np.random.default_rng((7, epoch, i))
                out = augment_image(img, rng, cfg)
                h.update(out.tobytes())
                h.update(rng.random(1).tobytes())  # how many numbers it drew, too
    assert h.hexdigest() == AUGMENT_REFERENCE_SHA256
    # and the defaults the running trainings were started with
    assert dataclasses.asdict(AugmentConfig()) == {
        "hflip": 0.5, "rotate_deg": 10.0, "scale": (0.9, 1.1), "translate": 0.08, "brightness": 0.2,
        "contrast": 0.2, "noise_std": 0.0, "blur_prob": 0.0, "erase_prob": 0.0}


def test_dataset_without_webcam_config_gives_the_plain_augmented_view(mini_index):
    spec = make_crop_spec(48)
    plain = FERDataset(mini_index, spec, split="train", augment=AugmentConfig(), seed=5)
    off = FERDataset(mini_index, spec, split="train", augment=AugmentConfig(), seed=5, webcam=WebcamAugConfig())
    on = FERDataset(mini_index, spec, split="train", augment=AugmentConfig(), seed=5,
                    webcam=WebcamAugConfig.from_json(CONFIG))
    changed = 0
    for ds in (plain, off, on):
        ds.set_epoch(2)
    for i in range(len(plain)):
        pos = int(plain.positions[i])
        ref = augment_image(plain.store.get(pos), np.random.default_rng((5, 2, pos)), AugmentConfig())
        assert np.array_equal(plain.image(i), ref)
        assert np.array_equal(off.image(i), ref)
        changed += not np.array_equal(on.image(i), ref)
    assert changed > len(plain) // 3  # the shipped config does fire


def test_default_config_is_off_and_returns_the_same_object():
    cfg = WebcamAugConfig()
    assert not cfg.active and all(getattr(cfg, op).prob == 0 for op in OPS)
    img = _images()[0]
    assert apply_webcam(img, cfg, (1, 2, 3)) is img


def test_shipped_config_loads_and_round_trips():
    cfg = WebcamAugConfig.from_json(CONFIG)
    assert cfg.active and all(getattr(cfg, op).prob > 0 for op in OPS)
    again = WebcamAugConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()


def test_webcam_draws_are_deterministic_per_key_and_do_not_touch_other_ops():
    cfg = WebcamAugConfig.from_json(CONFIG)
    img = _images()[1]
    a, b = apply_webcam(img, cfg, (3, 1, 9)), apply_webcam(img, cfg, (3, 1, 9))
    assert np.array_equal(a, b)
    outs = {apply_webcam(img, cfg, (3, e, 9)).tobytes() for e in range(8)}
    assert len(outs) > 1  # other epochs, other views
    # switching jpeg off leaves what the ops before it drew unchanged: same output as long as jpeg did not fire
    only_noise = WebcamAugConfig(noise=WebcamOp(1.0, (5.0, 5.0)))
    noise_and_jpeg_off = WebcamAugConfig(noise=WebcamOp(1.0, (5.0, 5.0)), jpeg=WebcamOp(0.0, (20.0, 20.0)))
    assert np.array_equal(apply_webcam(img, only_noise, (1, 1, 1)), apply_webcam(img, noise_and_jpeg_off, (1, 1, 1)))


def _only(op: str, value: float) -> WebcamAugConfig:
    return WebcamAugConfig(**{op: WebcamOp(1.0, (value, value))})


def test_each_op_changes_the_image_the_way_it_says():
    yy, xx = np.mgrid[0:48, 0:48]
    img = (40 + (xx // 6 % 2) * 150 + yy).astype(np.uint8)  # stripes: edges to blur, levels to shift
    key = (0, 0, 0)
    assert apply_webcam(img, _only("exposure", 0.5), key).mean() == pytest.approx(img.mean() * 0.5, abs=1.0)
    dark = apply_webcam(img, _only("gamma", 2.0), key)
    assert dark.mean() < img.mean() - 20 and np.array_equal(apply_webcam(img, _only("gamma", 1.0), key), img)
    checker = ((xx // 4 + yy // 4) % 2 * 200 + 20).astype(np.uint8)  # edges both ways: any blur angle shows

    def edges(a: np.ndarray) -> float:
        f = a.astype(np.float64)
        return float(np.abs(np.diff(f, axis=0)).mean() + np.abs(np.diff(f, axis=1)).mean())

    for op, v in (("motion_blur", 0.1), ("downscale", 0.3)):
        for k in range(4):
            assert edges(apply_webcam(checker, _only(op, v), (0, k, 0))) < 0.8 * edges(checker), (op, k)
    noisy = apply_webcam(np.full((48, 48), 128, np.uint8), _only("noise", 8.0), key).astype(np.float64)
    assert 6.0 < noisy.std() < 10.0
    jpeg = apply_webcam(img, _only("jpeg", 10.0), key)
    assert jpeg.shape == img.shape and not np.array_equal(jpeg, img)
    assert np.abs(jpeg.astype(int) - img).mean() > np.abs(apply_webcam(img, _only("jpeg", 95.0), key).astype(int)
                                                          - img).mean()
    rgb = np.dstack([img] * 3)
    assert apply_webcam(rgb, WebcamAugConfig.from_json(CONFIG), (0, 1, 2)).shape == rgb.shape


def test_motion_kernel_is_normalised_and_odd():
    for length, angle in ((2.0, 0.0), (5.2, 33.0), (9.0, 90.0)):
        k = motion_kernel(length, angle)
        assert k.shape[0] % 2 == 1 and k.shape[0] >= 3 and k.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("payload, problem", [
    ({"blurr": {"prob": 0.1}}, "unknown keys"),
    ({"noise": {"prob": 1.5, "range": [1, 2]}}, "prob must lie"),
    ({"jpeg": {"prob": 0.5, "range": [60, 20]}}, "low <= high"),
    ({"gamma": {"prob": 0.5, "range": "x"}}, "two numbers"),
    ({"noise": {"p": 0.5}}, "expected"),
])
def test_bad_config_files_are_refused_naming_the_file(tmp_path, payload, problem):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(ArtifactError, match=problem) as exc:
        WebcamAugConfig.from_json(path)
    assert "bad.json" in str(exc.value)
