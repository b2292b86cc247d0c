"""NL: a nested-learning "deep optimizer", AdamW whose momentum is a small learned memory of gradients.

Nested Learning (Behrouz et al., NeurIPS 2025) reads momentum as an associative memory
that compresses the gradient stream, and replaces the fixed linear rule (beta1 EMA) by a
learnable one. Here that memory is a tiny MLP ``M_phi`` shared by every coordinate of every
parameter (DESIGN.md §7 item 5: hidden 32, 1 hidden layer, after the earlier 64 x 2
version ran out of memory).

Update rule, per parameter coordinate, at step t (g the gradient, lr and lambda per group)::

    v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
    u_t = g_t / (sqrt(v_t / (1 - beta2^t)) + eps)                   normalised gradient, O(1)
    m_t = clip(beta1 m_{t-1} + (1 - beta1) u_t + M_phi([u_t, m_{t-1}]), +-memory_clip)
    theta_t = theta_{t-1} - lr (m_t / (1 - beta1^t) + lambda theta_{t-1})

``M_phi``'s last layer starts at zero, so at step 0 this is Adam with decoupled weight
decay (momentum taken over second-moment-normalised gradients); the memory learns a
correction on top of the EMA, and the clip bounds what it can do. The memory works on
normalised gradients so that one set of shared weights sees inputs of the same scale in
every layer. ``phi`` is trained by Adam (``memory_lr``, gradient norm clipped to 1) with
one of two objectives:

- ``inner="local"`` (default, first order): the memory is an associative memory of the
  gradient stream: its output of the previous step should predict the current normalised
  gradient, loss_t(phi) = mean over coordinates of (M-output(u_{t-1}, m_{t-2}) - u_t)^2,
  recomputed from the stored previous inputs. No graph through the training loss; each
  step costs two memory passes and one memory backward over the coordinates.
- ``inner="meta"`` (the earlier system's design): every ``meta_every`` steps (K, 4 by
  default) phi takes the hypergradient of the one-step look-ahead loss
  L(theta - lr (m_t(phi) / (1 - beta1^t) + lambda theta)). Because u_t does not depend
  on phi, that hypergradient is exact without a second-order graph through the model:
  dL/dphi = -lr / (1 - beta1^t) * sum_i g'_i dm_{t,i}/dphi, with g' the gradient at the
  look-ahead point, a chunked vector-Jacobian product over coordinates. **It needs
  ``step(closure)``**: ``closure()`` must recompute the training loss on the same batch
  (forward + backward, as for ``torch.optim.LBFGS``; gradients are zeroed before it is
  called) and return it. The optimizer calls it at the look-ahead point on meta steps only
  and restores the parameters afterwards (``p.grad`` then holds the look-ahead gradient:
  zero it before the next backward, as every loop does); ``step()`` without a closure raises. Not usable
  with fp16 ``GradScaler.step`` (which refuses closures); bf16 needs no scaler.

Memory safety: the MLP has (2 h + h) + (L - 1)(h^2 + h) + h + 1 weights; it is applied over
coordinates in chunks of ``chunk_size`` (small tensors are packed into one chunk), so the
largest intermediate is chunk_size x hidden floats whatever the model size. Per-parameter
state is four tensors of the parameter's size (v, m and the previous inputs u, m), plus one
temporary copy during a meta step. ``state_bytes()`` reports the total.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import torch
from torch import nn

INNER_MODES = ("local", "meta")
DEFAULT_CHUNK = 1 << 16


class MemoryMLP(nn.Module):
    """features [N, 2] -> correction [N]: ``layers`` hidden layers of width ``hidden`` (SiLU), last layer zero."""

    def __init__(self, hidden: int = 32, layers: int = 1, in_features: int = 2):
        super().__init__()
        if hidden < 1 or layers < 1:
            raise ValueError(f"memory needs hidden >= 1 and layers >= 1, got hidden={hidden}, layers={layers}")
        mods: list[nn.Module] = [nn.Linear(in_features, hidden), nn.SiLU()]
        for _ in range(layers - 1):
            mods += [nn.Linear(hidden, hidden), nn.SiLU()]
        out = nn.Linear(hidden, 1)
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        mods.append(out)
        self.net = nn.Sequential(*mods)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net(feats).squeeze(1)


def _chunk_plan(sizes: list[int], chunk: int) -> list[list[tuple[int, int, int]]]:
    """Chunks of at most ``chunk`` coordinates, each a list of (tensor index, start, end) segments."""
    plan: list[list[tuple[int, int, int]]] = []
    cur: list[tuple[int, int, int]] = []
    room = chunk
    for i, n in enumerate(sizes):
        s = 0
        while s < n:
            take = min(room, n - s)
            cur.append((i, s, s + take))
            s += take
            room -= take
            if room == 0:
                plan.append(cur)
                cur, room = [], chunk
    if cur:
        plan.append(cur)
    return plan


def _gather(tensors: list[torch.Tensor], segs: list[tuple[int, int, int]]) -> torch.Tensor:
    """One chunk's coordinates as a flat tensor (the tensors are contiguous, so big ones give views)."""
    parts = [tensors[i].view(-1)[s:e] for i, s, e in segs]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


class DeepMemoryOptimizer(torch.optim.Optimizer):
    """AdamW with its first moment replaced by a learned per-coordinate MLP memory (module docstring has the rule).

    A drop-in ``torch.optim.Optimizer`` for ``inner="local"``; ``inner="meta"`` needs
    ``step(closure)``. ``state_dict()`` carries the memory's weights and its Adam state,
    so a resumed run continues exactly.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, hidden: int = 32, layers: int = 1,
                 inner: str = "local", beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.01, meta_every: int = 4, memory_lr: float = 1e-3,
                 memory_clip: float = 5.0, chunk_size: int = DEFAULT_CHUNK, seed: int = 0):
        if inner not in INNER_MODES:
            raise ValueError(f"inner must be one of {INNER_MODES}, got {inner!r}")
        if not lr >= 0 or not 0 <= beta1 < 1 or not 0 <= beta2 < 1 or not eps > 0 or not weight_decay >= 0:
            raise ValueError(f"invalid hyper-parameters: lr={lr}, beta1={beta1}, beta2={beta2}, eps={eps}, "
                             f"weight_decay={weight_decay}")
        if meta_every < 1 or chunk_size < 1 or not memory_lr >= 0 or not memory_clip > 0:
            raise ValueError(f"meta_every and chunk_size must be >= 1, memory_lr >= 0, memory_clip > 0 (got "
                             f"{meta_every}, {chunk_size}, {memory_lr}, {memory_clip})")
        super().__init__(params, dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay))
        first = next(p for g in self.param_groups for p in g["params"])
        with torch.random.fork_rng(devices=[]):  # the memory's initial weights depend on ``seed`` only
            torch.manual_seed(int(seed))
            self.memory = MemoryMLP(hidden, layers).to(first.device)
        self.config = dict(hidden=int(hidden), layers=int(layers), inner=inner, meta_every=int(meta_every),
                           memory_lr=float(memory_lr), memory_clip=float(memory_clip), chunk_size=int(chunk_size))
        self._mem_m = [torch.zeros_like(p) for p in self.memory.parameters()]
        self._mem_v = [torch.zeros_like(p) for p in self.memory.parameters()]
        self._mem_step = 0
        self._step = 0
        self.last_memory_loss: float | None = None  # local objective of the last step (None before step 2)
        self.last_meta_loss: float | None = None    # look-ahead loss of the last meta step

    # ------------------------------------------------------------------ helpers

    def _active(self) -> Iterator[tuple[dict[str, Any], torch.Tensor]]:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p

    def _memory_out(self, u: torch.Tensor, m_prev: torch.Tensor) -> torch.Tensor:
        b1, clip = self._beta1, self.config["memory_clip"]
        feats = torch.stack([u, m_prev], dim=1)
        return (b1 * m_prev + (1 - b1) * u + self.memory(feats)).clamp(-clip, clip)

    @property
    def _beta1(self) -> float:
        """beta1 of the first group: the memory (and so its EMA skip path) is shared by every group."""
        return float(self.param_groups[0]["beta1"])

    def _memory_adam(self) -> None:
        """One Adam step on the memory weights from their .grad (norm clipped to 1), then clear it."""
        params = list(self.memory.parameters())
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
        if not torch.isfinite(norm):
            for p in params:
                p.grad = None
            return
        scale = min(1.0, 1.0 / (float(norm) + 1e-12))
        self._mem_step += 1
        b1, b2, lr = 0.9, 0.999, self.config["memory_lr"]
        with torch.no_grad():
            for p, g, m, v in zip(params, grads, self._mem_m, self._mem_v):
                g = g * scale
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                mh = m / (1 - b1 ** self._mem_step)
                vh = v / (1 - b2 ** self._mem_step)
                p.sub_(lr * mh / (vh.sqrt() + 1e-8))
                p.grad = None

    def state_bytes(self) -> int:
        """Bytes held by the optimizer: per-parameter state, the memory's weights and their Adam moments."""
        total = 0
        for st in self.state.values():
            total += sum(t.numel() * t.element_size() for t in st.values() if isinstance(t, torch.Tensor))
        for t in list(self.memory.parameters()) + self._mem_m + self._mem_v:
            total += t.numel() * t.element_size()
        return int(total)

    # ------------------------------------------------------------------ the step

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One update from the gradients in ``p.grad``; meta mode needs ``closure`` (module docstring)."""
        inner = self.config["inner"]
        if inner == "meta" and closure is None:
            raise RuntimeError("DeepMemoryOptimizer(inner='meta') needs step(closure): closure() must recompute "
                               "the loss on the same batch (forward + backward) and return it; it is called at "
                               "the one-step look-ahead point every meta_every steps")
        active = list(self._active())
        if not active:
            return None
        self._step += 1
        t = self._step
        chunk = self.config["chunk_size"]
        us, m_prevs = [], []
        for group, p in active:
            st = self.state[p]
            if not st:  # contiguous fp32 state (flat views are free; channels-last params are fine)
                st["step"] = torch.zeros((), dtype=torch.float64)
                for key in ("exp_avg_sq", "memory", "prev_u", "prev_m"):
                    st[key] = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
            st["step"] += 1
            k = float(st["step"])
            b2, eps = group["beta2"], group["eps"]
            g = p.grad.float().contiguous()
            st["exp_avg_sq"].mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (st["exp_avg_sq"] / (1 - b2 ** k)).sqrt_().add_(eps)
            us.append(g / denom)
            m_prevs.append(st["memory"])
        sizes = [u.numel() for u in us]
        plan = _chunk_plan(sizes, chunk)
        total = float(sum(sizes))

        if inner == "local" and t > 1:
            # associative-memory objective: last step's output (from its stored inputs) predicts u_t
            prev_u = [self.state[p]["prev_u"] for _, p in active]
            prev_m = [self.state[p]["prev_m"] for _, p in active]
            loss_sum = torch.zeros((), device=us[0].device)
            with torch.enable_grad():
                for segs in plan:
                    pred = self._memory_out(_gather(prev_u, segs), _gather(prev_m, segs))
                    loss = ((pred - _gather(us, segs)) ** 2).sum() / total
                    loss.backward()  # one chunk's graph at a time; memory grads accumulate
                    loss_sum += loss.detach()
            self.last_memory_loss = float(loss_sum)
            self._memory_adam()

        loss_out = None
        if inner == "meta" and t % self.config["meta_every"] == 0:
            loss_out = self._meta_step(active, us, m_prevs, plan, t, closure)

        # the memory's new output is the momentum
        new_m = self._memory_outputs(us, m_prevs, plan)
        bc1 = 1 - self._beta1 ** t
        for (group, p), u, m in zip(active, us, new_m):
            st = self.state[p]
            st["prev_u"].copy_(u)
            st["prev_m"].copy_(st["memory"])
            st["memory"].copy_(m)
            if group["weight_decay"]:
                p.mul_(1 - group["lr"] * group["weight_decay"])
            p.add_((m / bc1).to(p.dtype), alpha=-group["lr"])
        return loss_out

    def _memory_outputs(self, us: list[torch.Tensor], m_prevs: list[torch.Tensor],
                        plan: list[list[tuple[int, int, int]]]) -> list[torch.Tensor]:
        """The memory applied to every coordinate, chunk by chunk (``plan``), into one tensor per parameter."""
        outs = [torch.empty_like(u) for u in us]
        for segs in plan:
            out = self._memory_out(_gather(us, segs), _gather(m_prevs, segs))
            o = 0
            for i, s, e in segs:
                outs[i].view(-1)[s:e] = out[o:o + e - s]
                o += e - s
            del out
        return outs

    def _meta_step(self, active: list[tuple[dict[str, Any], torch.Tensor]], us: list[torch.Tensor],
                   m_prevs: list[torch.Tensor], plan: list[list[tuple[int, int, int]]], t: int,
                   closure: Callable[[], Any]) -> Any:
        """Hypergradient of the one-step look-ahead loss for the memory weights, then one Adam step on them."""
        bc1 = 1 - self._beta1 ** t
        backup = [p.detach().clone() for _, p in active]
        # look-ahead parameters with the current memory (m_t / bc1 computed chunk by chunk into one flat buffer)
        look = self._memory_outputs(us, m_prevs, plan)
        for (group, p), m in zip(active, look):
            if group["weight_decay"]:
                p.mul_(1 - group["lr"] * group["weight_decay"])
            p.add_((m / bc1).to(p.dtype), alpha=-group["lr"])
        del look
        for _, p in active:
            p.grad = None
        with torch.enable_grad():
            loss = closure()
        g_look = [p.grad.float().contiguous() if p.grad is not None else torch.zeros(p.shape, device=p.device)
                  for _, p in active]
        for (_, p), b in zip(active, backup):
            p.copy_(b)
        lrs = [float(active[i][0]["lr"]) for i in range(len(active))]
        with torch.enable_grad():
            for segs in plan:
                out = self._memory_out(_gather(us, segs), _gather(m_prevs, segs))
                w = torch.cat([g_look[i].view(-1)[s:e] * (-lrs[i] / bc1) for i, s, e in segs])
                out.backward(w)
        self._memory_adam()
        self.last_meta_loss = None if loss is None else float(loss.detach() if isinstance(loss, torch.Tensor) else loss)
        return loss

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        sd = super().state_dict()
        sd["memory"] = {"config": dict(self.config),
                        "weights": {k: v.detach().clone() for k, v in self.memory.state_dict().items()},
                        "exp_avg": [t.clone() for t in self._mem_m], "exp_avg_sq": [t.clone() for t in self._mem_v],
                        "memory_step": self._mem_step, "step": self._step}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        sd = dict(state_dict)
        mem = sd.pop("memory", None)
        if not isinstance(mem, dict):
            raise ValueError("not a DeepMemoryOptimizer state (no 'memory' entry): was the checkpoint written "
                             "with another optimizer?")
        saved = mem.get("config", {})
        for key in ("hidden", "layers", "inner"):
            if saved.get(key) != self.config[key]:
                raise ValueError(f"DeepMemoryOptimizer state has {key}={saved.get(key)!r}, this optimizer "
                                 f"{key}={self.config[key]!r}")
        super().load_state_dict(sd)
        self.memory.load_state_dict(mem["weights"])
        dev = next(self.memory.parameters()).device
        self._mem_m = [t.to(dev).clone() for t in mem["exp_avg"]]
        self._mem_v = [t.to(dev).clone() for t in mem["exp_avg_sq"]]
        self._mem_step = int(mem["memory_step"])
        self._step = int(mem["step"])


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """State size of any optimizer (``state_bytes()`` where it has one, else the tensors in ``state``)."""
    if hasattr(optimizer, "state_bytes"):
        return int(optimizer.state_bytes())
    return int(sum(t.numel() * t.element_size() for st in optimizer.state.values() for t in st.values()
                   if isinstance(t, torch.Tensor)))


__all__ = ["DeepMemoryOptimizer", "INNER_MODES", "MemoryMLP", "optimizer_state_bytes"]
