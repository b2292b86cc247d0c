"""Distillation losses, one short function each (DESIGN.md §5).

T^2 multiplies only the KL terms (it keeps their gradient scale independent of
T, Hinton et al. 2015); the cross-entropy term is never scaled by T. Teacher
targets are either one logits tensor or "split targets": a list of
(member_logits, weight) pairs whose KL terms are weighted and summed, so an
ensemble can teach without first being averaged into one distribution.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
import torch.nn.functional as F

Teacher = Union[torch.Tensor, Sequence[tuple[torch.Tensor, float]]]


def _members(teacher_logits: Teacher) -> list[tuple[torch.Tensor, float]]:
    if isinstance(teacher_logits, torch.Tensor):
        return [(teacher_logits, 1.0)]
    members = [(t, float(w)) for t, w in teacher_logits]
    total = sum(w for _, w in members)
    if not members or total <= 0:
        raise ValueError("split targets need at least one member with a positive weight")
    return [(t, w / total) for t, w in members]


def kd_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(z_t / T) || softmax(z_s / T)), averaged over the batch."""
    t = temperature
    log_ps = F.log_softmax(student_logits / t, dim=1)
    log_pt = F.log_softmax(teacher_logits.detach() / t, dim=1)
    return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True) * t * t


def kd_loss(student_logits: torch.Tensor, teacher_logits: Teacher, target: torch.Tensor,
            alpha: float = 0.5, temperature: float = 2.0) -> torch.Tensor:
    """Hinton KD: (1 - alpha) CE(z_s, y) + alpha T^2 KL(softmax(z_t/T) || softmax(z_s/T))."""
    ce = F.cross_entropy(student_logits, target)
    kl = sum(w * kd_kl(student_logits, t, temperature) for t, w in _members(teacher_logits))
    return (1.0 - alpha) * ce + alpha * kl


def _binary_kl(p_t: torch.Tensor, p_s: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """KL between two-bin distributions (target class vs the rest), batch mean."""
    return (p_t * (torch.log(p_t + eps) - torch.log(p_s + eps))).sum(dim=1).mean()


def dkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(TCKD, NCKD) of Zhao et al. 2022, each already multiplied by T^2.

    TCKD: KL between the binary (target, non-target) probabilities of teacher and student.
    NCKD: KL between their distributions over the non-target classes alone.
    """
    t = temperature
    zs, zt = student_logits / t, teacher_logits.detach() / t
    gt = F.one_hot(target, zs.shape[1]).bool()
    ps, pt = F.softmax(zs, dim=1), F.softmax(zt, dim=1)
    bs = torch.stack([(ps * gt).sum(1), (ps * ~gt).sum(1)], dim=1)
    bt = torch.stack([(pt * gt).sum(1), (pt * ~gt).sum(1)], dim=1)
    tckd = _binary_kl(bt, bs) * t * t
    big = 1000.0  # masks the target logit out of the non-target softmax, as the reference code does
    log_ps_nt = F.log_softmax(zs - big * gt, dim=1)
    log_pt_nt = F.log_softmax(zt - big * gt, dim=1)
    nckd = F.kl_div(log_ps_nt, log_pt_nt, reduction="batchmean", log_target=True) * t * t
    return tckd, nckd


def dkd_loss(student_logits: torch.Tensor, teacher_logits: Teacher, target: torch.Tensor,
             alpha: float = 0.5, beta: float = 4.0, temperature: float = 2.0, warmup: float = 1.0,
             ce_weight: float = 1.0) -> torch.Tensor:
    """DKD: ce_weight CE + warmup (alpha TCKD + beta NCKD), TCKD and NCKD carrying T^2.

    ``warmup`` in [0, 1] ramps the KL terms in over the first epochs (the paper's linear
    warm-up). The earlier scripts' balance (1 - a) CE + a T^2 (TCKD + b NCKD) is
    ce_weight = 1 - a, alpha = a, beta = a * b.
    """
    ce = F.cross_entropy(student_logits, target)
    kl = 0.0
    for t, w in _members(teacher_logits):
        tckd, nckd = dkd_terms(student_logits, t, target, temperature)
        kl = kl + w * (alpha * tckd + beta * nckd)
    return ce_weight * ce + warmup * kl


NEGL_IGNORE = -1  # a complementary slot holding this value is unused ("no negative for this sample")


def negl_loss(logits: torch.Tensor, complementary: torch.Tensor, ignore_index: int = NEGL_IGNORE) -> torch.Tensor:
    """Negative learning (DESIGN.md §5): mean over the used (sample, c̄) pairs of -log(1 - p_c̄), p = softmax(z).

    ``complementary`` is a LongTensor [N] (one complementary class per sample) or [N, K]
    (K per sample) of classes the sample is *not*; a slot equal to ``ignore_index`` (-1)
    means "no negative here" and is left out of the mean, so a selector can give some
    samples fewer negatives than others. With no slot used the result is 0, still
    attached to ``logits`` (a backward pass is harmless). The caller guarantees that no
    slot holds the sample's own label (``training.negl`` never draws it).

    Why this form: the earlier system minimised -log p_c̄, which *raises* p_c̄.
    -log(1 - p_c̄) is computed as logsumexp(z) - logsumexp(z without c̄), which is exact
    and finite even when p_c̄ rounds to 1 in float (1 - p would be 0 there) and for
    logits of any size, as long as another class has a finite logit.
    """
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(f"negl_loss: logits must be [N, C] with C >= 2, got {tuple(logits.shape)}")
    comp = complementary
    if comp.ndim == 1:
        comp = comp[:, None]
    if comp.ndim != 2 or comp.shape[0] != logits.shape[0]:
        raise ValueError(f"negl_loss: complementary must be [N] or [N, K] with N = {logits.shape[0]}, "
                         f"got {tuple(complementary.shape)}")
    if comp.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"negl_loss: complementary must hold class indices (int64), got {comp.dtype}")
    comp = comp.long()
    used = comp != ignore_index
    n_classes = logits.shape[1]
    bad = used & ((comp < 0) | (comp >= n_classes))
    if bool(bad.any()):
        raise ValueError(f"negl_loss: complementary classes must lie in [0, {n_classes}) or be {ignore_index}, "
                         f"got {sorted(set(comp[bad].tolist()))}")
    z = logits.float()
    if not bool(used.any()):
        return z.sum() * 0.0
    lse_all = torch.logsumexp(z, dim=1, keepdim=True)                      # [N, 1]
    idx = comp.clamp(min=0)                                                  # [N, K]
    onehot = F.one_hot(idx, n_classes).bool()                                # [N, K, C]
    z_rest = z[:, None, :].masked_fill(onehot, float("-inf"))                # z without c̄, per slot
    log_one_minus_p = torch.logsumexp(z_rest, dim=2) - lse_all              # log(1 - p_c̄), [N, K]
    per_pair = -log_one_minus_p
    return per_pair[used].sum() / used.sum()
