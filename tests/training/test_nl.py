"""NL: DeepMemoryOptimizer's update rule, convergence of both inner modes against AdamW, chunking, checkpoints."""

from __future__ import annotations

import io
import math

import pytest
import torch

from training.nl import DeepMemoryOptimizer, MemoryMLP, optimizer_state_bytes


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny problems: one thread is faster than two on a loaded machine, and the results do not depend on it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _least_squares(seed: int = 0, n: int = 256, d: int = 20):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = x @ torch.randn(d, generator=g) + 0.1 * torch.randn(n, generator=g)
    return lambda w: ((x @ w - y) ** 2).mean()


def _logistic(seed: int = 0, n: int = 256, d: int = 10):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x @ torch.randn(d, generator=g) > 0).float()
    return lambda w: torch.nn.functional.binary_cross_entropy_with_logits(x @ w, y)


def _train(loss_of, d: int, opt_factory, steps: int) -> list[float]:
    w = torch.zeros(d, requires_grad=True)
    opt = opt_factory([w])
    losses = []
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = loss_of(w)
            loss.backward()
            return loss.detach()

        losses.append(float(closure()))
        opt.step(closure) if isinstance(opt, DeepMemoryOptimizer) and opt.config["inner"] == "meta" else opt.step()
    losses.append(float(loss_of(w).detach()))
    return losses


@pytest.mark.parametrize("problem, d, lr, steps", [(_least_squares, 20, 0.05, 200), (_logistic, 10, 0.05, 200)])
@pytest.mark.parametrize("inner", ["local", "meta"])
def test_both_modes_converge_like_adamw(problem, d, lr, steps, inner):
    loss_of = problem()
    adamw = _train(loss_of, d, lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=0.0), steps)
    nl = _train(loss_of, d, lambda p: DeepMemoryOptimizer(p, lr=lr, inner=inner, weight_decay=0.0), steps)
    assert all(math.isfinite(v) for v in nl)
    start = nl[0]
    assert start == adamw[0]
    # NL closes at least 99% of the gap AdamW closes under the same schedule
    assert start - nl[-1] >= 0.99 * (start - adamw[-1]), (inner, nl[-1], adamw[-1])


@pytest.mark.parametrize("inner", ["local", "meta"])
def test_the_memory_actually_learns(inner):
    opt_holder = {}

    def factory(p):
        opt_holder["opt"] = DeepMemoryOptimizer(p, lr=0.05, inner=inner, meta_every=2, weight_decay=0.0)
        return opt_holder["opt"]

    _train(_least_squares(1), 20, factory, 40)
    last = opt_holder["opt"].memory.net[-1]
    assert last.weight.abs().sum() > 0  # zero at initialisation
    if inner == "local":
        assert opt_holder["opt"].last_memory_loss is not None and math.isfinite(opt_holder["opt"].last_memory_loss)
    else:
        assert opt_holder["opt"].last_meta_loss is not None and math.isfinite(opt_holder["opt"].last_meta_loss)


def test_update_rule_of_the_docstring_with_a_frozen_memory():
    """memory_lr 0 keeps M_phi at zero: the update is the docstring's rule with the EMA alone."""
    g = torch.Generator().manual_seed(3)
    w = torch.randn(5, requires_grad=True)
    ref = w.detach().clone().double()
    lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
    opt = DeepMemoryOptimizer([w], lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd, memory_lr=0.0)
    v = torch.zeros(5, dtype=torch.float64)
    m = torch.zeros(5, dtype=torch.float64)
    for t in range(1, 8):
        grad = torch.randn(5, generator=g)
        w.grad = grad.clone()
        opt.step()
        gd = grad.double()
        v = b2 * v + (1 - b2) * gd ** 2
        u = gd / ((v / (1 - b2 ** t)).sqrt() + eps)
        m = b1 * m + (1 - b1) * u
        ref = ref * (1 - lr * wd) - lr * m / (1 - b1 ** t)
    assert torch.allclose(w.detach().double(), ref, atol=1e-6)


def test_memory_clip_bounds_every_update_whatever_the_gradient_scale():
    w = torch.zeros(6, requires_grad=True)
    lr, clip = 0.1, 2.0
    opt = DeepMemoryOptimizer([w], lr=lr, memory_clip=clip, weight_decay=0.0, inner="local", memory_lr=0.5)
    for t, scale in enumerate([1e20, 1e-20, 1e30, -1e30, 1.0, 1e-30], start=1):
        before = w.detach().clone()
        w.grad = torch.full((6,), scale) * torch.tensor([1, -1, 1, -1, 1, -1.0])
        opt.step()
        step = (w.detach() - before).abs()
        assert torch.isfinite(w).all() and torch.all(step <= lr * clip / (1 - 0.9 ** t) + 1e-6), (t, scale)


def _model():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(2, 3, 3).to(memory_format=torch.channels_last)
    return torch.nn.ModuleList([conv, torch.nn.Linear(7, 4), torch.nn.Linear(4, 1, bias=False)])


def _grads(model, step: int) -> None:
    g = torch.Generator().manual_seed(100 + step)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g).contiguous(memory_format=torch.channels_last) \
            if p.ndim == 4 else torch.randn(p.shape, generator=g)


def _closure(model, opt, step: int):
    def closure():
        opt.zero_grad()
        x = torch.randn(2, 2, 5, 5, generator=torch.Generator().manual_seed(step))
        loss = model[0](x).pow(2).mean() + model[2](model[1](torch.ones(1, 7))).pow(2).sum()
        loss.backward()
        return loss.detach()
    return closure


def _run(model, opt, steps: range, meta: bool) -> None:
    for s in steps:
        if meta:
            clo = _closure(model, opt, s)
            clo()
            opt.step(clo)
        else:
            _grads(model, s)
            opt.step()


@pytest.mark.parametrize("inner", ["local", "meta"])
def test_chunking_does_not_change_the_result(inner):
    results = []
    for chunk in (1 << 16, 5):
        model = _model()
        opt = DeepMemoryOptimizer(model.parameters(), lr=0.01, inner=inner, meta_every=2, chunk_size=chunk)
        _run(model, opt, range(6), inner == "meta")
        results.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
    assert torch.allclose(results[0], results[1], atol=1e-6)


@pytest.mark.parametrize("inner", ["local", "meta"])
def test_state_dict_round_trip_resumes_identically(inner):
    model = _model()
    opt = DeepMemoryOptimizer(model.parameters(), lr=0.01, inner=inner, meta_every=2, hidden=8, layers=2)
    _run(model, opt, range(5), inner == "meta")
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, buf)
    _run(model, opt, range(5, 10), inner == "meta")
    straight = [p.detach().clone() for p in model.parameters()]

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # as training.models.read_checkpoint reads checkpoints
    model2 = _model()
    model2.load_state_dict(saved["model"])
    opt2 = DeepMemoryOptimizer(model2.parameters(), lr=0.01, inner=inner, meta_every=2, hidden=8, layers=2, seed=9)
    opt2.load_state_dict(saved["optimizer"])
    _run(model2, opt2, range(5, 10), inner == "meta")
    for a, b in zip(straight, model2.parameters()):
        assert torch.equal(a, b.detach())


def test_meta_mode_without_a_closure_is_refused():
    w = torch.zeros(3, requires_grad=True)
    opt = DeepMemoryOptimizer([w], inner="meta")
    w.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="needs step\\(closure\\)"):
        opt.step()


def test_loading_another_optimizer_state_is_refused():
    w = torch.zeros(3, requires_grad=True)
    small = DeepMemoryOptimizer([w], hidden=8)
    with pytest.raises(ValueError, match="hidden=8"):
        DeepMemoryOptimizer([w], hidden=32).load_state_dict(small.state_dict())
    with pytest.raises(ValueError, match="no 'memory' entry"):
        small.load_state_dict(torch.optim.AdamW([w]).state_dict())
    with pytest.raises(ValueError, match="inner must be one of"):
        DeepMemoryOptimizer([w], inner="second-order")


def test_state_bytes_counts_four_buffers_per_coordinate_and_the_tiny_memory():
    model = _model()
    opt = DeepMemoryOptimizer(model.parameters(), hidden=32, layers=1)
    n_mem = sum(p.numel() for p in opt.memory.parameters())
    assert n_mem == (2 * 32 + 32) + (32 + 1) == sum(p.numel() for p in MemoryMLP(32, 1).parameters())
    assert opt.state_bytes() == 3 * 4 * n_mem  # weights + Adam moments, before any step
    _grads(model, 0)
    opt.step()
    n = sum(p.numel() for p in model.parameters())
    assert opt.state_bytes() == 4 * 4 * n + 8 * len(list(model.parameters())) + 3 * 4 * n_mem
    assert optimizer_state_bytes(opt) == opt.state_bytes()


def test_parameters_without_gradients_are_left_alone():
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(3, requires_grad=True)
    opt = DeepMemoryOptimizer([a, b], lr=0.1)
    a.grad = torch.ones(3)
    opt.step()
    assert torch.all(a < 1) and torch.equal(b.detach(), torch.ones(3)) and b not in opt.state
