"""Ensembles: weights applied, fused vs split outputs, val-only weight search, members gated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fer_models.calibration import load_calibration, softmax
from fer_models.errors import ArtifactError
from training.alignment import check_alignment, require_aligned
from training.cli import main
from training.ensemble import search_weights, simplex_grid
from training.softlabel_files import write_softlabels

from .conftest import good_logits, mark_diagnosed


def _member(root, index, name, logits):
    return mark_diagnosed(write_softlabels(root / name / "softlabels" / index.short_name, index, logits, 2.0,
                                           "teacher", {"producer": {"checkpoint": f"{name}.pt"}}))


def _config(path, members, **extra):
    path.write_text(json.dumps({"name": path.stem, "temperature": 2.0, "members": members, **extra}))
    return path


def test_fixed_weights_fused_and_split(mini_index, tmp_path):
    z1 = good_logits(mini_index.labels, seed=1)
    z2 = good_logits(mini_index.labels, strength=1.0, seed=2)
    _member(tmp_path, mini_index, "rn18", z1)
    _member(tmp_path, mini_index, "b3", z2)
    cfg = _config(tmp_path / "rn18_b3.json", [{"name": "rn18", "path": "rn18", "weight": 0.7},
                                              {"name": "b3", "path": "b3", "weight": 0.3}])
    out = tmp_path / "ens"
    assert main(["ensemble", str(cfg), "--index", str(mini_index.path), "--out", str(out),
                 "--root", str(tmp_path)]) == 0

    expected = 0.7 * softmax(z1 / 2.0) + 0.3 * softmax(z2 / 2.0)
    fused = require_aligned(out, mini_index)  # run-folder form resolves to softlabels/<index>-<fp8>
    assert fused.kind == "ensemble_fused"
    np.testing.assert_allclose(fused.arrays["probs"], expected, atol=1e-6)
    np.testing.assert_allclose(softmax(fused.arrays["logits"] / 2.0), expected, atol=1e-5)
    assert [m["weight"] for m in fused.meta["members"]] == pytest.approx([0.7, 0.3])

    split = require_aligned(out / "softlabels_split" / mini_index.short_name, mini_index)
    assert split.kind == "ensemble_split"
    assert split.arrays["member_logits"].shape == (2, 56, 7)
    np.testing.assert_allclose(split.arrays["member_logits"][0], z1, atol=1e-6)
    np.testing.assert_allclose(split.arrays["member_probs"][1], softmax(z2 / 2.0), atol=1e-6)
    assert split.arrays["weights"].tolist() == pytest.approx([0.7, 0.3])
    assert split.arrays["member_names"].tolist() == ["rn18", "b3"]
    np.testing.assert_allclose(split.probs(), expected, atol=1e-6)

    for d in (fused.path, split.path):
        assert json.loads((d / "alignment.json").read_text())["diagnostic"]["status"] == "passed"
    meta = json.loads((out / "ensemble.json").read_text())
    assert meta["weights"] == pytest.approx({"rn18": 0.7, "b3": 0.3}) and meta["temperature"] == 2.0
    for name in ("metrics_val.json", "metrics_test.json", "confusion_test.png", "calibration.json",
                 "reliability_metrics.json", "classes.json"):
        assert (out / name).is_file(), name
    assert load_calibration(out).split == "val"
    # classifier logits of the ensemble: log of the T=1 weighted average
    val = mini_index.positions("val")
    clf = np.load(out / "logits_val.npz")["logits"]
    np.testing.assert_allclose(np.exp(clf), (0.7 * softmax(z1) + 0.3 * softmax(z2))[val], atol=1e-5)

    # a member changed after the ensemble was built is caught by the fused diagnostic
    _member(tmp_path, mini_index, "b3", good_logits(mini_index.labels, seed=9))
    res = check_alignment(fused.path, mini_index)
    assert res["status"] == "failed" and any("b3 changed" in p for p in res["problems"])


def test_weight_search_uses_val_only(mini_index, tmp_path):
    labels = mini_index.labels
    val, test = mini_index.splits == "val", mini_index.splits == "test"
    rng = np.random.default_rng(0)
    good_val = good_logits(labels, strength=6.0, seed=3)
    good_val[test] = rng.normal(0, 1, (test.sum(), 7))  # right on val, noise on test
    good_test = good_logits(labels, strength=6.0, seed=4)
    good_test[val] = rng.normal(0, 1, (val.sum(), 7))  # noise on val, right on test
    _member(tmp_path, mini_index, "a", good_val)
    _member(tmp_path, mini_index, "b", good_test)
    cfg = _config(tmp_path / "s.json", [{"name": "a", "path": "a"}, {"name": "b", "path": "b"}],
                  weights="search", search={"metric": "nll", "step": 0.1})
    out = tmp_path / "ens"
    assert main(["ensemble", str(cfg), "--index", str(mini_index.path), "--out", str(out),
                 "--root", str(tmp_path), "--no-calibrate"]) == 0
    w = json.loads((out / "ensemble.json").read_text())["weights"]
    assert w["a"] >= 0.8, w  # test rows would have asked for b
    assert "val" in json.loads((out / "ensemble.json").read_text())["weights_source"]
    assert (out / "weight_search.csv").read_text().count("\n") == 12


def test_search_helpers():
    g = simplex_grid(3, 0.25)
    assert len(g) == 15 and np.allclose(g.sum(1), 1)
    z = np.stack([np.eye(7)[np.arange(14) % 7] * 5, np.zeros((14, 7))])
    w, table = search_weights(z, np.arange(14) % 7, 0.5)
    assert w.tolist() == [1.0, 0.0] and len(table) == 3


def test_misaligned_member_refused(mini_index, tmp_path, mini_tree):
    good = _member(tmp_path, mini_index, "ok", good_logits(mini_index.labels))
    bad = _member(tmp_path, mini_index, "bad", good_logits(mini_index.labels, seed=5))
    meta = json.loads((bad / "alignment.json").read_text())
    meta["index_fingerprint"] = "0" * 64
    (bad / "alignment.json").write_text(json.dumps(meta))
    cfg = _config(tmp_path / "c.json", [{"name": "ok", "path": str(good), "weight": 0.5},
                                        {"name": "bad", "path": str(bad), "weight": 0.5}])
    with pytest.raises(ArtifactError, match="made for index"):
        from training.ensemble import build_ensemble

        build_ensemble(cfg, mini_index, tmp_path / "out")
    assert not (tmp_path / "out" / "softlabels").exists()


def test_example_configs_are_valid():
    from pathlib import Path

    from training.ensemble import load_config

    folder = Path(__file__).resolve().parents[2] / "training" / "configs"
    cfgs = {p.stem: load_config(p) for p in folder.glob("*.json")}
    assert [m["weight"] for m in cfgs["rn18_b3"]["members"]] == [0.7, 0.3]
    assert [m["weight"] for m in cfgs["four_way"]["members"]] == [0.25] * 4
    # the sharp-data ensembles of issue 10: pairwise 0.7/0.3, equal split of three, val-searched
    assert [m["weight"] for m in cfgs["sharp_rn18_rn50"]["members"]] == [0.7, 0.3]
    assert len({m["weight"] for m in cfgs["sharp_equal3"]["members"]}) == 1
    assert cfgs["sharp_val3"]["weights"] == "search"
    assert [m["path"] for m in cfgs["sharp_equal3"]["members"]] == [m["path"] for m in cfgs["sharp_val3"]["members"]]


def _evaluated_ensemble(folder, accuracy, nll, fingerprint="abc"):
    folder.mkdir(parents=True)
    (folder / "ensemble.json").write_text(json.dumps({"index_fingerprint": fingerprint}))
    (folder / "metrics_val.json").write_text(json.dumps({"accuracy": accuracy, "nll": nll}))
    return folder


def test_pick_ensemble_takes_best_val_accuracy_then_nll(tmp_path, capsys):
    from training.ensemble import best_on_val

    a = _evaluated_ensemble(tmp_path / "ens_a", 0.68, 0.90)
    b = _evaluated_ensemble(tmp_path / "ens_b", 0.70, 0.95)
    c = _evaluated_ensemble(tmp_path / "ens_c", 0.70, 0.91)
    assert best_on_val([a, b, c]) == c
    assert main(["pick-ensemble", str(a), str(b)]) == 0
    assert capsys.readouterr().out.strip() == str(b)
    d = _evaluated_ensemble(tmp_path / "ens_d", 0.71, 0.9, fingerprint="other")
    with pytest.raises(ArtifactError, match="different indexes"):
        best_on_val([a, d])
    (a / "metrics_val.json").unlink()
    assert main(["pick-ensemble", str(a), str(b)]) == 2
    assert "metrics_val.json" in capsys.readouterr().err
