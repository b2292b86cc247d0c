"""The alignment gate refuses shuffled, truncated, class-reordered and wrong-index soft labels."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from fer_models.calibration import softmax
from fer_models.errors import ArtifactError, ClassListMismatch
from training.alignment import check_alignment, require_aligned
from training.artifacts import arrays_sha256, load_npz, save_npz
from training.cli import main
from training.index import build_index
from training.softlabel_files import write_softlabels

from .conftest import good_logits, mark_diagnosed


@pytest.fixture
def folder(mini_index, tmp_path):
    z = good_logits(mini_index.labels)
    return mark_diagnosed(write_softlabels(tmp_path / "run" / "softlabels" / mini_index.short_name, mini_index, z,
                                           2.0, "teacher", {"producer": {"checkpoint": "none"}}))


def _rewrite(folder, edit, rehash=True):
    """Edit the arrays as a buggy exporter would; by default also rewrite the recorded hash to match."""
    arrays = load_npz(folder / "softlabels.npz")
    arrays = edit(arrays)
    save_npz(folder / "softlabels.npz", **arrays)
    if rehash:
        meta = json.loads((folder / "alignment.json").read_text())
        meta["arrays_sha256"] = arrays_sha256(arrays)
        (folder / "alignment.json").write_text(json.dumps(meta))


def test_valid_folder_passes(folder, mini_index):
    sl = require_aligned(folder, mini_index)
    assert sl.arrays["probs"].shape == (56, 7) and sl.temperature == 2.0
    assert folder.name == f"fer2013-{mini_index.fingerprint[:8]}"
    meta = json.loads((folder / "alignment.json").read_text())
    assert meta["n_rows"] == 56 and meta["index_fingerprint"] == mini_index.fingerprint
    assert set(meta["recorded_accuracy"]) == {"train", "val", "test"}
    # a run folder resolves to its softlabels/<index>-<fp8> child
    assert require_aligned(folder.parent.parent, mini_index).path == folder


def test_shuffled_rows_refused(folder, mini_index):
    perm = np.random.default_rng(0).permutation(len(mini_index))

    def shuffle_values(a):  # sample ids left in place, values shuffled: caught by the accuracy check
        a["logits"], a["probs"] = a["logits"][perm], a["probs"][perm]
        return a

    _rewrite(folder, shuffle_values)
    with pytest.raises(ArtifactError, match="accuracy on .* was recorded at export: rows or class columns"):
        require_aligned(folder, mini_index)


def test_shuffled_rows_with_ids_refused(folder, mini_index):
    perm = np.random.default_rng(1).permutation(len(mini_index))
    _rewrite(folder, lambda a: {k: v[perm] for k, v in a.items()})
    with pytest.raises(ArtifactError, match="rows are in another order than the index"):
        require_aligned(folder, mini_index)


def test_edited_arrays_refused_by_hash(folder, mini_index):
    def bump(a):
        a["logits"] = a["logits"].copy()
        a["logits"][0, 0] += 0.5
        return a

    _rewrite(folder, bump, rehash=False)
    with pytest.raises(ArtifactError, match="arrays_sha256 mismatch"):
        require_aligned(folder, mini_index)


def test_truncated_refused(folder, mini_index):
    _rewrite(folder, lambda a: {k: v[:-5] for k, v in a.items()})
    with pytest.raises(ArtifactError, match="arrays hold 51 rows .* the index has 56: truncated"):
        require_aligned(folder, mini_index)


def test_reordered_classes_refused(folder, mini_index):
    meta = json.loads((folder / "alignment.json").read_text())
    meta["classes"] = [meta["classes"][1], meta["classes"][0], *meta["classes"][2:]]
    (folder / "alignment.json").write_text(json.dumps(meta))
    with pytest.raises(ClassListMismatch, match="different order"):
        require_aligned(folder, mini_index)


def test_reordered_class_columns_refused(folder, mini_index):
    order = [3, 1, 2, 0, 4, 5, 6]  # Happy and Angry columns swapped, everything else rewritten to fit

    def swap(a):
        a["logits"], a["probs"] = a["logits"][:, order], a["probs"][:, order]
        return a

    _rewrite(folder, swap)
    with pytest.raises(ArtifactError, match="rows or class columns are shuffled"):
        require_aligned(folder, mini_index)


def test_wrong_index_refused(folder, mini_index, mini_tree, tmp_path):
    tree = tmp_path / "other"
    shutil.copytree(mini_tree, tree)
    for f in sorted((tree / "train" / "angry").glob("*.jpg"))[:2]:  # same size, other rows
        f.unlink()
    other = build_index(tree, progress=False)
    with pytest.raises(ArtifactError, match="made for index .* but this is index"):
        require_aligned(folder, other)


def test_probs_not_matching_logits_refused(folder, mini_index):
    def other_t(a):
        a["probs"] = softmax(a["logits"].astype(np.float64) / 1.0).astype(np.float32)
        return a

    _rewrite(folder, other_t)
    with pytest.raises(ArtifactError, match="probs are not softmax"):
        require_aligned(folder, mini_index)


def test_check_alignment_records_failure_and_gate_refuses(folder, mini_index, tmp_path, capsys):
    perm = np.random.default_rng(0).permutation(len(mini_index))

    def shuffle_values(a):
        a["logits"], a["probs"] = a["logits"][perm], a["probs"][perm]
        return a

    _rewrite(folder, shuffle_values)
    res = check_alignment(folder, mini_index)
    assert res["status"] == "failed" and res["problems"]
    meta = json.loads((folder / "alignment.json").read_text())
    assert meta["diagnostic"]["status"] == "failed"
    assert main(["check-alignment", str(folder), "--index", str(mini_index.path)]) == 1
    assert "alignment failed" in capsys.readouterr().out


def _real_teacher(mini_index, tmp_path):
    """A random-weight ResNet18 checkpoint, its logits on every index row and its producer record."""
    from fer_models.files import sha256_file
    from training.data import FERDataset, crop_spec_to_dict, make_crop_spec
    from training.evaluate import predict_logits
    from training.models import checkpoint_payload, create_model, save_checkpoint

    spec = make_crop_spec(32)
    model = create_model("resnet18", 7, 1, 32).eval()
    ckpt = save_checkpoint(tmp_path / "best.pt", checkpoint_payload(
        model, backbone="resnet18", classes=mini_index.classes, input_size=32, in_chans=1, stem_stride=4,
        crop_spec=crop_spec_to_dict(spec)))
    z, _ = predict_logits(model, FERDataset(mini_index, spec))
    return z, {"producer": {"checkpoint": str(ckpt), "checkpoint_sha256": sha256_file(ckpt)}}


def test_diagnostic_recomputes_rows_from_checkpoint(mini_index, tmp_path):
    """Real model: export passes; a row edited as a buggy exporter would (hash and probs refitted) is caught."""
    z, producer = _real_teacher(mini_index, tmp_path)
    folder = write_softlabels(tmp_path / "sl", mini_index, z, 2.0, "teacher", producer)
    res = check_alignment(folder, mini_index, n_rows=56)
    assert res["status"] == "passed" and res["max_abs_diff"] < 1e-4

    def nudge(a):
        a["logits"] = a["logits"].copy()
        a["logits"][10] += np.float32(0.05)  # same argmax, so accuracy cannot notice
        a["probs"] = softmax(a["logits"].astype(np.float64) / 2.0).astype(np.float32)
        return a

    _rewrite(folder, nudge)
    with pytest.raises(ArtifactError, match="diagnostic is stale"):  # the passed verdict no longer applies
        require_aligned(folder, mini_index)
    res = check_alignment(folder, mini_index, n_rows=56)  # and recomputing the rows finds the edited one
    assert res["status"] == "failed"
    assert any("recomputed rows differ" in p and mini_index.sample_ids[10] in p for p in res["problems"])
    with pytest.raises(ArtifactError, match="diagnostic failed"):
        require_aligned(folder, mini_index)


def test_softlabels_refuse_a_checkpoint_trained_on_the_blurred_copy(mini_index, tmp_path):
    """A checkpoint whose crop spec carries the old input low-pass is obsolete: named, nothing written."""
    from training.data import crop_spec_to_dict, make_crop_spec
    from training.models import checkpoint_payload, create_model, save_checkpoint
    from training.softlabels import export_softlabels

    spec = {**crop_spec_to_dict(make_crop_spec(32)), "blur_sigma": 0.06}
    model = create_model("resnet18", 7, 1, 32).eval()
    save_checkpoint(tmp_path / "run" / "best.pt", checkpoint_payload(
        model, backbone="resnet18", classes=mini_index.classes, input_size=32, in_chans=1, stem_stride=4,
        crop_spec=spec))
    with pytest.raises(ArtifactError, match=r"best.pt.*blur_sigma 0.06.*obsolete"):
        export_softlabels(tmp_path / "run", mini_index.path, out=tmp_path / "sl", device="cpu", progress=False)
    assert not (tmp_path / "sl").exists()
    spec["blur_sigma"] = 0.0  # checkpoints of the sharp era written before the field went away still load
    save_checkpoint(tmp_path / "run" / "best.pt", checkpoint_payload(
        model, backbone="resnet18", classes=mini_index.classes, input_size=32, in_chans=1, stem_stride=4,
        crop_spec=spec))
    folder = export_softlabels(tmp_path / "run", mini_index.path, out=tmp_path / "sl", device="cpu",
                               diagnostic_rows=8, progress=False)
    assert json.loads((folder / "alignment.json").read_text())["diagnostic"]["status"] == "passed"


def test_gate_runs_a_missing_diagnostic_before_anything_uses_the_folder(mini_index, tmp_path, capsys):
    """Never-checked soft labels are recomputed from their producer first; no producer, no training."""
    z, producer = _real_teacher(mini_index, tmp_path)
    folder = write_softlabels(tmp_path / "sl", mini_index, z, 2.0, "teacher", producer)
    assert json.loads((folder / "alignment.json").read_text())["diagnostic"]["status"] == "not_run"
    assert require_aligned(folder, mini_index).path == folder
    assert "running it now" in capsys.readouterr().err
    assert json.loads((folder / "alignment.json").read_text())["diagnostic"]["status"] == "passed"

    orphan = write_softlabels(tmp_path / "orphan", mini_index, good_logits(mini_index.labels), 2.0, "teacher",
                              {"producer": {"checkpoint": str(tmp_path / "gone.pt")}})
    with pytest.raises(ArtifactError, match="gone.pt.*checkpoint that produced the soft labels not found"):
        require_aligned(orphan, mini_index)
    wrong = write_softlabels(tmp_path / "wrong", mini_index, good_logits(mini_index.labels), 2.0, "teacher", producer)
    with pytest.raises(ArtifactError, match="wrong.*alignment diagnostic failed.*recomputed rows differ"):
        require_aligned(wrong, mini_index)


def test_flip_tta_soft_labels_are_the_mean_of_both_views_and_the_diagnostic_uses_it(mini_index, tmp_path):
    """``--tta flip``: each row's logits are the mean of the face's and its mirror's; the producer records
    it, so the diagnostic recomputes rows the same way (and a folder whose record lost it fails)."""
    import torch

    from training.data import FERDataset, crop_spec_to_dict, make_crop_spec
    from training.evaluate import predict_logits
    from training.models import checkpoint_payload, create_model, save_checkpoint
    from training.softlabels import export_softlabels

    spec = make_crop_spec(32)
    torch.manual_seed(0)
    model = create_model("resnet18", 7, 1, 32).eval()
    save_checkpoint(tmp_path / "run" / "best.pt", checkpoint_payload(
        model, backbone="resnet18", classes=mini_index.classes, input_size=32, in_chans=1, stem_stride=4,
        crop_spec=crop_spec_to_dict(spec)))
    ds = FERDataset(mini_index, spec)
    plain, _ = predict_logits(model, ds)
    flipped, _ = predict_logits(model.to(memory_format=torch.channels_last), ds, tta="flip", channels_last=True)
    x = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.inference_mode():
        mirror = model(torch.flip(x, dims=[3])).numpy()
    assert np.allclose(flipped, (plain + mirror) / 2, atol=1e-4)
    assert not np.allclose(flipped, plain, atol=1e-3)  # a random net is not mirror-symmetric
    with pytest.raises(ValueError, match="test-time augmentation"):
        predict_logits(model, ds, tta="five-crop")

    folder = export_softlabels(tmp_path / "run", mini_index.path, out=tmp_path / "sl", device="cpu",
                               diagnostic_rows=16, progress=False, tta="flip")
    meta = json.loads((folder / "alignment.json").read_text())
    assert meta["producer"]["tta"] == "flip" and meta["diagnostic"]["status"] == "passed"
    assert meta["diagnostic"]["tta"] == "flip"
    meta["producer"]["tta"] = "none"  # a record that no longer says how the rows were made
    (folder / "alignment.json").write_text(json.dumps(meta))
    res = check_alignment(folder, mini_index, n_rows=16)
    assert res["status"] == "failed" and any("recomputed rows differ" in p for p in res["problems"])
