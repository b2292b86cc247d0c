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
