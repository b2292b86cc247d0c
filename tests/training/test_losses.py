"""KD / DKD against direct computations, and the T^2 gradient rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from training.losses import dkd_loss, dkd_terms, kd_loss


def _np_softmax(z):
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _kl(p, q):
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=1)))


@pytest.fixture()
def batch():
    g = torch.Generator().manual_seed(0)
    zs = torch.randn(16, 7, generator=g) * 2
    zt = torch.randn(16, 7, generator=g) * 2
    y = torch.randint(0, 7, (16,), generator=g)
    return zs, zt, y


def test_kd_matches_direct_formula(batch):
    zs, zt, y = batch
    T, a = 2.0, 0.5
    s, t, lab = zs.numpy().astype(np.float64), zt.numpy().astype(np.float64), y.numpy()
    ce = -np.mean(np.log(_np_softmax(s)[np.arange(16), lab]))
    expected = (1 - a) * ce + a * T * T * _kl(_np_softmax(t / T), _np_softmax(s / T))
    assert kd_loss(zs, zt, y, alpha=a, temperature=T).item() == pytest.approx(expected, rel=1e-5)


def test_dkd_terms_match_direct_formula(batch):
    zs, zt, y = batch
    T = 2.0
    s, t, lab = zs.numpy().astype(np.float64), zt.numpy().astype(np.float64), y.numpy()
    ps, pt = _np_softmax(s / T), _np_softmax(t / T)
    idx = np.arange(16)
    bs = np.stack([ps[idx, lab], 1 - ps[idx, lab]], 1)
    bt = np.stack([pt[idx, lab], 1 - pt[idx, lab]], 1)
    tckd = _kl(bt, bs) * T * T
    mask = np.ones_like(ps, bool)
    mask[idx, lab] = False
    ps_nt = ps[mask].reshape(16, 6) / ps[mask].reshape(16, 6).sum(1, keepdims=True)
    pt_nt = pt[mask].reshape(16, 6) / pt[mask].reshape(16, 6).sum(1, keepdims=True)
    nckd = _kl(pt_nt, ps_nt) * T * T
    got_t, got_n = dkd_terms(zs, zt, y, T)
    assert got_t.item() == pytest.approx(tckd, rel=1e-4)
    assert got_n.item() == pytest.approx(nckd, rel=1e-4)
    ce = -np.mean(np.log(_np_softmax(s)[idx, lab]))
    total = dkd_loss(zs, zt, y, alpha=0.5, beta=4.0, temperature=T, warmup=0.5).item()
    assert total == pytest.approx(ce + 0.5 * (0.5 * tckd + 4.0 * nckd), rel=1e-4)
    # the earlier scripts' balance: (1 - a) CE + a T^2 (TCKD + b NCKD) with a = 0.5, b = 4
    legacy = dkd_loss(zs, zt, y, alpha=0.5, beta=0.5 * 4.0, temperature=T, ce_weight=0.5).item()
    assert legacy == pytest.approx(0.5 * ce + 0.5 * (tckd + 4.0 * nckd), rel=1e-4)


def _grads(loss_fn, zs, zt, y, **kw):
    z = zs.clone().requires_grad_(True)
    loss_fn(z, zt, y, **kw).backward()
    return z.grad


@pytest.mark.parametrize("loss_fn, kw", [(kd_loss, {"alpha": 0.5}), (dkd_loss, {"alpha": 0.5, "beta": 4.0})])
def test_temperature_scales_only_the_kl_gradients(batch, loss_fn, kw):
    zs, zt, y = batch
    ce_grad = _grads(lambda z, t, yy: F.cross_entropy(z, yy), zs, zt, y)
    weight = (1 - kw["alpha"]) if loss_fn is kd_loss else 1.0
    for T in (1.0, 4.0):
        total = _grads(loss_fn, zs, zt, y, temperature=T, **kw)
        kl_part = total - weight * ce_grad
        # the CE gradient inside the total is exactly the plain CE gradient (never multiplied by T^2)
        no_teacher = _grads(loss_fn, zs, zs.detach().clone(), y, temperature=T, **kw)  # teacher == student
        # with the teacher equal to the student every KL term and its gradient vanish, whatever T:
        # what remains is exactly the weighted CE gradient, so T never scales the CE term
        assert torch.allclose(no_teacher, weight * ce_grad, atol=1e-5)
        assert torch.isfinite(kl_part).all()
    # T^2 keeps the KL gradient magnitude comparable across T (it does not vanish as 1/T^2)
    g1 = (_grads(loss_fn, zs, zt, y, temperature=1.0, **kw) - weight * ce_grad).norm()
    g4 = (_grads(loss_fn, zs, zt, y, temperature=4.0, **kw) - weight * ce_grad).norm()
    assert 0.1 < (g4 / g1).item() < 10


def test_split_targets_weight_member_kl_terms(batch):
    zs, zt, y = batch
    zt2 = zt.flip(0)
    split = kd_loss(zs, [(zt, 0.7), (zt2, 0.3)], y, alpha=1.0)
    direct = 0.7 * kd_loss(zs, zt, y, alpha=1.0) + 0.3 * kd_loss(zs, zt2, y, alpha=1.0)
    assert split.item() == pytest.approx(direct.item(), rel=1e-6)
    d_split = dkd_loss(zs, [(zt, 3.0), (zt2, 1.0)], y)  # weights are normalised
    d_direct = F.cross_entropy(zs, y) + 0.75 * (dkd_loss(zs, zt, y) - F.cross_entropy(zs, y)) \
        + 0.25 * (dkd_loss(zs, zt2, y) - F.cross_entropy(zs, y))
    assert d_split.item() == pytest.approx(d_direct.item(), rel=1e-5)
    with pytest.raises(ValueError):
        kd_loss(zs, [], y)
    assert math.isfinite(dkd_loss(zs, zt, y, warmup=0.0).item())
