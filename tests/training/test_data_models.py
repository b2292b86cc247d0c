"""Dataset preprocessing parity with the app, deterministic augmentation, model factory and checkpoint refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fer_models.classes import FER7
from fer_models.errors import ArtifactError, ClassListMismatch
from fer_models.face_crop import prepare_face
from training.data import AugmentConfig, FERDataset, make_crop_spec, stratified_subset
from training.models import (checkpoint_payload, create_model, load_pretrained, model_from_checkpoint,
                             save_checkpoint)


def test_dataset_uses_app_preprocessing(mini_index):
    spec = make_crop_spec(40, 1)
    ds = FERDataset(mini_index, spec, split="val")
    assert len(ds) == 14
    x, y, pos = ds[3]
    assert x.shape == (1, 40, 40) and x.dtype == torch.float32
    assert y == mini_index.labels[pos] and mini_index.splits[pos] == "val"
    expected = prepare_face(ds.store.get(pos), spec)  # the function the live app calls
    assert np.array_equal(x.numpy(), expected)
    x3, _, _ = FERDataset(mini_index, make_crop_spec(40, 3), split="val")[3]
    assert x3.shape == (3, 40, 40)


def test_augmentation_is_deterministic_per_epoch_and_leaves_index(mini_index):
    fp = mini_index.fingerprint
    ds = FERDataset(mini_index, make_crop_spec(48), split="train", augment=AugmentConfig.webcam(), seed=7)
    a0 = ds.image(0)
    assert np.array_equal(a0, ds.image(0))  # same (seed, epoch, row) -> same view
    ds.set_epoch(1)
    assert not np.array_equal(a0, ds.image(0))  # a new view each epoch
    ds.set_epoch(0)
    assert np.array_equal(a0, ds.image(0))
    raw = ds.store.get(int(ds.positions[0]))
    assert not np.array_equal(a0, raw) and raw.shape == a0.shape
    assert mini_index.fingerprint == fp


def test_stratified_subset_keeps_classes_and_order():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    pos = np.arange(100) + 1000
    sub = stratified_subset(pos, labels, 20, seed=0)
    assert np.all(np.diff(sub) > 0)
    counts = np.bincount(labels[sub - 1000])
    assert counts.tolist() == [10, 6, 4]


@pytest.mark.parametrize("backbone, stem, size, expect_hw", [
    ("resnet18", None, 48, 2),        # native stride 4 -> 48/32
    ("resnet18", 2, 48, 3),           # no maxpool -> 48/16
    ("resnet18", 1, 32, 4),           # 32/8
    ("mobilenetv3_large_100", 1, 32, 2),
])
def test_stem_stride_keeps_feature_maps_larger(backbone, stem, size, expect_hw):
    m = create_model(backbone, 7, 1, size, stem_stride=stem).eval()
    with torch.no_grad():
        feats = m.forward_features(torch.zeros(1, 1, size, size))
        out = m(torch.zeros(2, 1, size, size))
    assert feats.shape[-1] == expect_hw and out.shape == (2, 7)


def test_last_stride_gives_the_stem_1_maps_with_native_early_layers(tmp_path):
    """--last-stride 1: 3x3 final maps at 48 px like stem stride 1, but the first stages keep the native
    resolution; the same parameter shapes (checkpoints interchange), recorded and re-applied on load."""
    native = create_model("mobilenetv3_large_100", 7, 1, 48).eval()
    last1 = create_model("mobilenetv3_large_100", 7, 1, 48, last_stride=1).eval()
    stem1 = create_model("mobilenetv3_large_100", 7, 1, 48, stem_stride=1).eval()
    x = torch.zeros(1, 1, 48, 48)
    with torch.no_grad():
        assert [m.forward_features(x).shape[-1] for m in (native, last1, stem1)] == [2, 3, 3]
        early = lambda m: m.blocks[1](m.blocks[0](m.bn1(m.conv_stem(x)))).shape[-1]  # noqa: E731 (bn1 holds the act)
        assert [early(m) for m in (native, last1, stem1)] == [12, 12, 24]
    assert {k: v.shape for k, v in native.state_dict().items()} == {k: v.shape for k, v in last1.state_dict().items()}
    assert create_model("mobilenetv3_large_100", 7, 1, 48, last_stride=2).blocks[5][0].conv_dw.stride == (2, 2)
    path = tmp_path / "l1.pt"
    save_checkpoint(path, checkpoint_payload(last1, backbone="mobilenetv3_large_100", classes=FER7, input_size=48,
                                             in_chans=1, stem_stride=2, last_stride=1, epoch=0))
    rebuilt, ck = model_from_checkpoint(path, classes=FER7)
    assert ck["last_stride"] == 1 and rebuilt.blocks[5][0].conv_dw.stride == (1, 1)
    with pytest.raises(ValueError, match="mobilenetv3"):
        create_model("resnet18", 7, 1, 48, last_stride=1)
    with pytest.raises(ValueError, match="1 or 2"):
        create_model("mobilenetv3_large_100", 7, 1, 48, last_stride=4)


def test_other_backbones_build():
    for name, kw in (("convnext_tiny", dict(stem_stride=2)), ("vit_tiny_patch16_224", dict(stem_stride=8))):
        m = create_model(name, 7, 1, 32, **kw).eval()
        with torch.no_grad():
            assert m(torch.zeros(1, 1, 32, 32)).shape == (1, 7)
    with pytest.raises(ValueError, match="not supported"):
        create_model("alexnet", 7)


def _save(tmp_path, backbone="resnet18", classes=FER7, stem=2):
    m = create_model(backbone, len(classes), 1, 32, stem_stride=stem)
    path = tmp_path / f"{backbone}.pt"
    save_checkpoint(path, checkpoint_payload(m, backbone=backbone, classes=classes, input_size=32, in_chans=1,
                                             stem_stride=stem, epoch=0))
    return m, path


def test_checkpoint_roundtrip_records_metadata(tmp_path):
    m, path = _save(tmp_path)
    m2, ck = model_from_checkpoint(path, classes=FER7, backbone="resnet18")
    assert ck["stem_stride"] == 2 and ck["input_size"] == 32 and ck["classes"] == list(FER7)
    assert isinstance(m2.maxpool, torch.nn.Identity)  # stem option re-applied
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])


def test_checkpoint_class_mismatch_refused(tmp_path):
    other = ["Angry", "Fear", "Disgust", "Happy", "Sad", "Surprise", "Neutral"]
    _, path = _save(tmp_path, classes=other)
    with pytest.raises(ClassListMismatch, match="different order"):
        model_from_checkpoint(path, classes=FER7)
    with pytest.raises(ClassListMismatch):
        load_pretrained(create_model("resnet18", 7, 1, 32), path, classes=FER7)


def test_checkpoint_backbone_mismatch_refused_with_ratio(tmp_path):
    _, path = _save(tmp_path, "resnet18")
    target = create_model("mobilenetv3_large_100", 7, 1, 32)
    with pytest.raises(ArtifactError, match=r"match the requested backbone for only \d+\.\d%"):
        load_pretrained(target, path, classes=FER7)
    with pytest.raises(ArtifactError, match="expected 'mobilenetv3_large_100'"):
        model_from_checkpoint(path, backbone="mobilenetv3_large_100")
    # the same backbone loads completely
    ratio = load_pretrained(create_model("resnet18", 7, 1, 32, stem_stride=2), path, classes=FER7)
    assert ratio == pytest.approx(1.0)


def test_loader_workers_give_the_same_augmented_batches(mini_index):
    from torch.utils.data import DataLoader

    ds = FERDataset(mini_index, make_crop_spec(32), split="train", augment=AugmentConfig(), seed=3)
    ds.set_epoch(2)
    a = next(iter(DataLoader(ds, batch_size=8, num_workers=0)))
    b = next(iter(DataLoader(ds, batch_size=8, num_workers=2)))
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])


def test_random_erasing_paints_one_grey_rectangle():
    from training.data import augment_image

    img = (np.arange(48 * 48) % 251).astype(np.uint8).reshape(48, 48)  # no two equal neighbours in a row
    cfg = AugmentConfig(hflip=0, rotate_deg=0, scale=(1, 1), translate=0, brightness=0, contrast=0, erase_prob=1.0)
    for seed in range(20):
        out = augment_image(img, np.random.default_rng(seed), cfg)
        changed = out != img
        ys, xs = np.nonzero(changed)
        assert len(ys) > 0
        box = out[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
        assert len(np.unique(box)) == 1  # one flat grey rectangle
        assert 0.01 * 48 * 48 <= box.size <= 0.3 * 48 * 48
    assert np.array_equal(augment_image(img, np.random.default_rng(0), AugmentConfig(
        hflip=0, rotate_deg=0, scale=(1, 1), translate=0, brightness=0, contrast=0)), img)
