"""NegL: the loss -log(1 - p_c̄) (and not -log p_c̄), and the confusion-guided, gated complementary-label draw."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_models.classes import FER7
from fer_models.errors import ArtifactError, ClassListMismatch
from training.losses import NEGL_IGNORE, negl_loss
from training.negl import (DEFAULT_CONFIG, NeglConfigError, NeglSelector, batch_generator, complementary_weights,
                           gate_mask, load_negl_config, negl_config_record, read_teacher_confusion,
                           select_complementary, uncertainty)

from .conftest import good_logits


def _np_negl(z: np.ndarray, comp: np.ndarray) -> float:
    """-log(1 - p_c) in float64 from the definition (1 - p_c as the sum of the other probabilities)."""
    z = z - z.max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    vals = [-math.log(sum(p[i, j] for j in range(z.shape[1]) if j != c))
            for i in range(len(z)) for c in np.atleast_1d(comp[i]) if c >= 0]
    return float(np.mean(vals))


# ----------------------------------------------------------------------------- the loss

def test_negl_matches_definition_for_one_and_k_negatives():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 7, generator=g, dtype=torch.float64) * 2
    one = torch.tensor([1, 0, 6, 2, 3, 5])
    assert negl_loss(z, one).item() == pytest.approx(_np_negl(z.numpy(), one.numpy()), rel=1e-6)
    many = torch.tensor([[1, 2], [0, -1], [6, 5], [-1, -1], [3, 4], [5, 0]])
    assert negl_loss(z, many).item() == pytest.approx(_np_negl(z.numpy(), many.numpy()), rel=1e-6)
    # the ignored slots are out of the mean: the used pairs alone give the same value
    assert negl_loss(z, many).item() == pytest.approx(
        negl_loss(z[[0, 0, 1, 2, 2, 4, 4, 5, 5]], torch.tensor([1, 2, 0, 6, 5, 3, 4, 5, 0])).item(), rel=1e-6)


def _p_change_after_sgd(loss_fn, comp: torch.Tensor, lr: float = 1.0, scale: float = 1.0,
                        z0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(p before, p after) one SGD step of ``loss_fn`` on a toy batch whose logits are the parameters."""
    g = torch.Generator().manual_seed(1)
    z = torch.nn.Parameter(z0.clone() if z0 is not None else torch.randn(len(comp), 7, generator=g) * scale)
    before = torch.softmax(z.detach(), 1)
    opt = torch.optim.SGD([z], lr=lr)
    loss_fn(z, comp).backward()
    opt.step()
    return before, torch.softmax(z.detach(), 1)


def _picked(p: torch.Tensor, comp: torch.Tensor) -> torch.Tensor:
    return p.gather(1, comp.clamp(min=0))[comp >= 0]


def test_one_sgd_step_lowers_the_complementary_probability():
    comp = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    before, after = _p_change_after_sgd(negl_loss, comp)
    assert torch.all(_picked(after, comp[:, None]) < _picked(before, comp[:, None]))


def test_k_negatives_lower_their_total_and_none_rises_when_balanced():
    """With K negatives per sample the step lowers their total mass in every row; when they are equally
    likely (and each below 1/K) every one of them falls. (When one dominates, a much smaller one can rise a
    little as mass leaves the dominant one: a property of the pair average that DESIGN.md §5 defines.)"""
    g = torch.Generator().manual_seed(2)
    comp = torch.stack([torch.randperm(7, generator=g)[:3] for _ in range(64)])
    comp[::5, 2] = NEGL_IGNORE
    before, after = _p_change_after_sgd(negl_loss, comp, scale=2.0)
    used = (comp >= 0).float()
    total = lambda p: (p.gather(1, comp.clamp(min=0)) * used).sum(1)  # noqa: E731
    assert torch.all(total(after) < total(before))

    z0 = torch.randn(64, 7, generator=g)
    z0.scatter_(1, comp.clamp(min=0), 0.0)  # the complementary logits of a row are equal
    before, after = _p_change_after_sgd(negl_loss, comp, z0=z0)
    assert torch.all(_picked(before, comp) < 1 / 3)
    assert torch.all(_picked(after, comp) < _picked(before, comp))


def test_the_earlier_wrong_sign_is_caught():
    """-log p_c̄ (the earlier system's NegL) raises p_c̄: the check above fails for it, negl_loss passes."""
    def wrong(logits, comp):
        return -F.log_softmax(logits, 1).gather(1, comp[:, None]).mean()

    comp = torch.tensor([0, 1, 2, 3, 4, 5, 6, 0])
    before, after = _p_change_after_sgd(wrong, comp)
    assert torch.all(_picked(after, comp[:, None]) > _picked(before, comp[:, None]))
    z = torch.tensor([[3.0, 0.0, 0.0]])
    assert negl_loss(z, torch.tensor([0])).item() != pytest.approx(wrong(z, torch.tensor([0])).item(), rel=1e-3)


def test_finite_when_p_rounds_to_one_and_for_huge_logits():
    z = torch.tensor([[1e4, 0.0, 0.0, 0.0], [40.0, -40.0, 0.0, 1.0], [-1e4, 1e4, 0.0, 0.0]], requires_grad=True)
    comp = torch.tensor([0, 0, 1])
    loss = negl_loss(z, comp)
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(z.grad).all()
    # the exact value: -log(1 - p_c) = logsumexp(z) - logsumexp(z without c)
    expected = [(torch.logsumexp(r, 0) - torch.logsumexp(torch.cat([r[:c], r[c + 1:]]), 0)).item()
                for r, c in zip(z.detach().double(), comp.tolist())]
    assert loss.item() == pytest.approx(float(np.mean(expected)), rel=1e-5)
    # float32 1 - softmax would give log(0) = inf here
    assert torch.isinf(-torch.log(1 - torch.softmax(z.detach(), 1)[0, 0]))


def test_no_used_pair_gives_zero_with_a_gradient():
    z = torch.randn(3, 7, requires_grad=True)
    loss = negl_loss(z, torch.full((3, 2), NEGL_IGNORE))
    loss.backward()
    assert loss.item() == 0.0 and z.grad is not None and torch.all(z.grad == 0)


def test_bad_complementary_input_is_refused():
    z = torch.randn(3, 7)
    with pytest.raises(ValueError, match=r"\[0, 7\)"):
        negl_loss(z, torch.tensor([0, 7, 1]))
    with pytest.raises(ValueError, match="class indices"):
        negl_loss(z, torch.tensor([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="N = 3"):
        negl_loss(z, torch.tensor([0, 1]))


# ----------------------------------------------------------------------------- the draw

def _confusion() -> np.ndarray:
    rng = np.random.default_rng(0)
    m = rng.integers(1, 50, (7, 7)).astype(float)
    m[2, 5], m[5, 2] = 400, 300  # Fear <-> Surprise, as on FER2013
    m[1, 3] = 0                  # Disgust is never taken for Happy
    np.fill_diagonal(m, 900)
    return m


def test_draw_follows_the_confusion_row_and_never_the_true_class():
    w = complementary_weights(_confusion())
    n = 20000
    labels = torch.full((n,), 2)
    comp = select_complementary(labels, w, 1, generator=torch.Generator().manual_seed(0))[:, 0]
    freq = torch.bincount(comp, minlength=7).double() / n
    expected = w[2] / w[2].sum()
    assert freq[2] == 0 and torch.allclose(freq, expected, atol=0.015)
    disgust = select_complementary(torch.full((2000,), 1), w, 3, generator=torch.Generator().manual_seed(1))
    assert not torch.any(disgust == 1) and not torch.any(disgust == 3)  # true class and zero-count class


def test_k_draws_are_distinct_and_short_rows_get_fewer():
    w = complementary_weights(np.eye(7) * 5 + np.diag(np.ones(6), 1))  # row y confuses only with y + 1
    comp = select_complementary(torch.arange(7), w, 3, generator=torch.Generator().manual_seed(0))
    for y in range(6):
        assert comp[y].tolist() == [y + 1, NEGL_IGNORE, NEGL_IGNORE]
    assert comp[6].tolist() == [NEGL_IGNORE] * 3  # Neutral confuses with nothing here
    many = select_complementary(torch.zeros(500, dtype=torch.long), complementary_weights(_confusion()), 4,
                                generator=torch.Generator().manual_seed(2))
    assert all(len(set(r.tolist())) == 4 for r in many)


def test_never_a_class_the_teacher_finds_likely():
    w = complementary_weights(_confusion())
    n = 4000
    labels = torch.full((n,), 2)
    tp = torch.full((n, 7), 0.05)
    tp[: n // 2, 5] = 0.6  # the teacher thinks the first half may well be Surprise
    comp = select_complementary(labels, w, 2, teacher_probs=tp, teacher_prob_max=0.5,
                                generator=torch.Generator().manual_seed(0))
    assert not torch.any(comp[: n // 2] == 5)
    assert torch.mean((comp[n // 2:] == 5).any(1).double()) > 0.5  # still the favourite where allowed


def test_class_ratio_thins_minority_negatives():
    w = complementary_weights(_confusion())
    ratio = [1.0, 0.25, 0.5, 1.0, 1.0, 0.0, 1.0]
    n = 8000
    labels = torch.arange(7).repeat_interleave(n // 7)
    comp = select_complementary(labels, w, 1, class_ratio=ratio, generator=torch.Generator().manual_seed(0))
    used = (comp[:, 0] != NEGL_IGNORE).double()
    for k, r in enumerate(ratio):
        assert used[labels == k].mean().item() == pytest.approx(r, abs=0.04), FER7[k]


def test_gating_on_entropy_and_margin():
    cfg = load_negl_config(DEFAULT_CONFIG)
    probs = torch.tensor([[0.97] + [0.005] * 6, [0.4, 0.35] + [0.05] * 5, [1 / 7] * 7])
    ent, margin = uncertainty(probs)
    assert ent[2].item() == pytest.approx(1.0, abs=1e-6) and ent[0] < ent[1] < ent[2]
    assert margin.tolist() == pytest.approx([0.965, 0.05, 0.0], abs=1e-6)
    mask = gate_mask(probs, cfg)  # default: margin <= 0.5
    assert mask.tolist() == [False, True, True]
    w = complementary_weights(_confusion())
    comp = select_complementary(torch.tensor([0, 0, 0]), w, 1, gate=mask, generator=torch.Generator().manual_seed(0))
    assert comp[0, 0] == NEGL_IGNORE and (comp[1:, 0] != NEGL_IGNORE).all()


def test_draw_is_deterministic_under_a_seed():
    w = complementary_weights(_confusion())
    labels = torch.randint(0, 7, (300,), generator=torch.Generator().manual_seed(5))
    a = select_complementary(labels, w, 2, class_ratio=[0.5] * 7, generator=batch_generator(3, 1, 7))
    b = select_complementary(labels, w, 2, class_ratio=[0.5] * 7, generator=batch_generator(3, 1, 7))
    c = select_complementary(labels, w, 2, class_ratio=[0.5] * 7, generator=batch_generator(3, 1, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)


# ----------------------------------------------------------------------------- configs

def _write(tmp_path, name, drop=(), **changes):
    """The default config with ``changes`` applied and the keys in ``drop`` removed."""
    data = {**json.loads(DEFAULT_CONFIG.read_text()), **changes}
    for k in drop:
        data.pop(k)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_default_config_loads_and_is_recorded():
    cfg = load_negl_config(DEFAULT_CONFIG, FER7)
    assert cfg.classes == FER7 and len(cfg.class_ratio) == 7
    assert cfg.class_ratio[FER7.index("Disgust")] < 1 and cfg.class_ratio[FER7.index("Fear")] < 1
    rec = negl_config_record(cfg)
    assert rec["sha256"] == hashlib.sha256(DEFAULT_CONFIG.read_bytes()).hexdigest()
    assert rec["content"] == json.loads(DEFAULT_CONFIG.read_text()) and rec["path"] == str(DEFAULT_CONFIG)


@pytest.mark.parametrize("changes, key", [
    ({"ratio": 1.0}, "ratio"),
    ({"weight": -1}, "weight"),
    ({"negatives_per_sample": 7}, "negatives_per_sample"),
    ({"class_ratio": {c: 1.0 for c in FER7 if c != "Fear"}}, "Fear"),
    ({"class_ratio": {**{c: 1.0 for c in FER7}, "Contempt": 0.5}}, "class_ratio.Contempt"),
    ({"class_ratio": {**{c: 1.0 for c in FER7}, "Fear": 1.5}}, "class_ratio.Fear"),
    ({"teacher_prob_max": 0}, "teacher_prob_max"),
    ({"confusion_split": "test"}, "confusion_split"),
    ({"gate": {"source": "student"}}, "gate"),
    ({"gate": {"source": "student", "margin": 0.3}}, "gate.margin"),
    ({"exclude": {"Fear": ["Contempt"]}}, "exclude.Fear"),
])
def test_bad_config_names_the_file_and_the_key(tmp_path, changes, key):
    path = _write(tmp_path, "bad_negl.json", **changes)
    with pytest.raises(NeglConfigError) as err:
        load_negl_config(path, FER7)
    assert str(path) in str(err.value) and key in str(err.value)


def test_missing_key_is_named(tmp_path):
    path = _write(tmp_path, "no_gate.json", drop=("gate",))
    with pytest.raises(NeglConfigError, match=r"no_gate.json: missing key\(s\) \['gate'\]"):
        load_negl_config(path, FER7)


def test_config_with_another_class_order_is_refused(tmp_path):
    path = _write(tmp_path, "swapped.json", classes=["Disgust", "Angry", *FER7[2:]])
    with pytest.raises(ClassListMismatch, match="swapped.json"):
        load_negl_config(path, FER7)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ArtifactError, match="broken.json"):
        load_negl_config(broken)


def test_exclude_rules_zero_the_pair():
    w = complementary_weights(_confusion(), exclude=[(2, 5)])
    assert w[2, 5] == 0 and w[5, 2] > 0 and torch.all(torch.diagonal(w) == 0)


# ----------------------------------------------------------------------------- teacher confusions

def test_reads_the_confusion_files_that_evaluate_writes(tmp_path, mini_index):
    from training.evaluate import write_split_report

    pos = mini_index.positions("val")
    logits = good_logits(mini_index.labels[pos], seed=4)
    runs = []
    for i in range(2):
        run = tmp_path / f"teacher{i}"
        run.mkdir()
        metrics = write_split_report(run, "val", logits, pos, mini_index, mini_index.classes)
        runs.append(run)
    m, sources = read_teacher_confusion(runs, mini_index.classes, "val")
    pred = logits.argmax(1)
    direct = np.zeros((7, 7))
    np.add.at(direct, (mini_index.labels[pos], pred), 1)
    assert np.array_equal(m, 2 * direct) and metrics["n"] == len(pos)
    assert [s["n"] for s in sources] == [len(pos)] * 2 and all(len(s["sha256"]) == 64 for s in sources)

    other = list(mini_index.classes)
    other[0], other[1] = other[1], other[0]
    with pytest.raises(ClassListMismatch, match="confusion_val.json"):
        read_teacher_confusion(runs, other, "val")
    with pytest.raises(ArtifactError, match="confusion_train.json"):
        read_teacher_confusion(runs, mini_index.classes, "train")
    with pytest.raises(ValueError, match="test"):
        read_teacher_confusion(runs, mini_index.classes, "test")


def test_selector_uses_teacher_probabilities_and_reports_pairs():
    cfg = load_negl_config(DEFAULT_CONFIG, FER7)
    with pytest.raises(ValueError, match="--teacher"):
        NeglSelector(cfg, _confusion())
    n = 64
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 7, (n,), generator=g)
    zt = torch.randn(2, n, 7, generator=g).numpy()
    zt[:, :, 5] += 8.0  # both teachers say Surprise for every row
    sel = NeglSelector(cfg, _confusion(), zt, [0.5, 0.5], sources=[{"file": "x"}])
    student = torch.zeros(n, 7)  # uniform student: every row is unstable
    comp = sel.select(labels, torch.arange(n), student, batch_generator(0, 0, 0))
    assert not torch.any(comp == 5) and torch.any(comp != NEGL_IGNORE)
    loss, pairs = sel.loss(student.requires_grad_(), labels, torch.arange(n), batch_generator(0, 0, 0))
    assert pairs == int((comp != NEGL_IGNORE).sum()) and math.isfinite(loss.item())
    assert loss.item() == pytest.approx(-math.log(6 / 7), rel=1e-5)  # uniform p: -log(1 - 1/7)
    rec = sel.record()
    assert rec["sha256"] == cfg.sha256 and rec["confusion_sources"] == [{"file": "x"}]
