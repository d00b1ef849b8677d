"""Training losses (plain PyTorch, no Kedro): thresholded SNR, MixIT, on-screen classification.

Shape contracts (B batch, M sources, T samples):

- ``snr_loss(est [..., T], ref [..., T]) -> [...]``
- ``mixit(est_sources [B, M, T], mix1 [B, T], mix2 [B, T]) -> (loss [B], assignment [B, M])``
- ``exact_assignment_loss(logits [B, M], assignment [B, M]) -> [B]``
- ``active_combinations_loss(logits [B, M], assignment [B, M]) -> [B]``
- ``supervised_clip_loss(logits [B, M], assignment [B, M], clip_label [B]) -> [B]``
- ``classification_terms(logits [B, M], assignment [B, M], clip_label [B], ...) -> ([B], [B])``
"""

from __future__ import annotations

from enum import StrEnum

import torch
import torch.nn.functional as F

from audioscope_kedro.metrics import binary_selections

TAU = 10 ** (-30 / 10)  # soft threshold: SNRs above 30 dB stop counting


def snr_loss(
    est: torch.Tensor, ref: torch.Tensor, tau: float = TAU, eps: float = 1e-8
) -> torch.Tensor:
    """``10 log10(||ref - est||^2 + tau ||ref||^2)``: negative SNR capped at 30 dB, up to the
    constant ``10 log10 ||ref||^2``. ``[..., T] -> [...]``."""
    err = ((ref - est) ** 2).sum(dim=-1)
    return 10 * torch.log10(err + tau * (ref**2).sum(dim=-1) + eps)


def _assignment_errors(
    est_sources: torch.Tensor, mix: torch.Tensor, selections: torch.Tensor
) -> torch.Tensor:
    """``||mix - sum_m A_km s_m||^2`` for every assignment k at once, from Gram matrices:
    ``||y||^2 - 2 A c + A G A^T`` with ``c_m = <s_m, y>`` and ``G = s s^T``; no [B, 2^M, T]
    tensor is ever built. ``-> [B, 2^M]``."""
    s = est_sources.double()
    y = mix.double()
    gram = torch.einsum("bmt,bnt->bmn", s, s)
    corr = torch.einsum("bmt,bt->bm", s, y)
    energy = (y * y).sum(-1, keepdim=True)
    a = selections.double()
    quad = torch.einsum("km,bmn,kn->bk", a, gram, a)
    return energy - 2 * corr @ a.T + quad


def mixit(
    est_sources: torch.Tensor, mix1: torch.Tensor, mix2: torch.Tensor, tau: float = TAU
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixture invariant training loss (Wisdom et al. 2020).

    Minimum over all ``2^M`` assignments of the sources to ``mix1`` or ``mix2`` of
    ``snr_loss(sum of sources given to mix1, mix1) + snr_loss(sum given to mix2, mix2)``.
    The search is vectorised (no loop over assignments); the loss of the chosen assignment is
    then recomputed directly, so gradients are exact.

    Returns ``loss [B]`` and ``assignment [B, M]`` in {0, 1}, 1 meaning the source goes to
    ``mix1`` (pseudo-label: on-screen when ``mix1`` is the video's own soundtrack).
    """
    if est_sources.dim() != 3 or mix1.shape != mix2.shape or mix1.shape != est_sources[:, 0].shape:
        raise ValueError(
            f"expected est_sources [B, M, T] and mixtures [B, T], got {tuple(est_sources.shape)}, "
            f"{tuple(mix1.shape)}, {tuple(mix2.shape)}"
        )
    selections = binary_selections(est_sources.shape[1], est_sources.device, est_sources.dtype)
    with torch.no_grad():
        err1 = _assignment_errors(est_sources, mix1, selections)
        err2 = _assignment_errors(est_sources, mix2, 1 - selections)
        e1 = (mix1.double() ** 2).sum(-1, keepdim=True)
        e2 = (mix2.double() ** 2).sum(-1, keepdim=True)
        total = torch.log10(err1.clamp_min(0) + tau * e1 + 1e-8) + torch.log10(
            err2.clamp_min(0) + tau * e2 + 1e-8
        )
        best = total.argmin(dim=-1)
    assignment = selections[best]  # [B, M]
    est1 = (assignment.unsqueeze(-1) * est_sources).sum(1)
    est2 = ((1 - assignment).unsqueeze(-1) * est_sources).sum(1)
    loss = snr_loss(est1, mix1, tau) + snr_loss(est2, mix2, tau)
    return loss, assignment


def active_sources(est_sources: torch.Tensor, threshold_db: float = -40.0) -> torch.Tensor:
    """``[B, M, T] -> [B, M]`` bool: sources whose energy is within ``threshold_db`` of the
    loudest source of their example. Silent outputs carry no label information."""
    energy = (est_sources.detach() ** 2).mean(-1)
    ref = energy.amax(dim=-1, keepdim=True)
    return energy > ref * 10 ** (threshold_db / 10) + 1e-12


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean(-1)
    mask = mask.to(values.dtype)
    return (values * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


def exact_assignment_loss(
    logits: torch.Tensor, assignment: torch.Tensor, active: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-source BCE against the MixIT assignment (1: on-screen). ``[B, M] -> [B]``,
    averaged over the active sources when ``active [B, M]`` is given."""
    bce = F.binary_cross_entropy_with_logits(logits, assignment.to(logits.dtype), reduction="none")
    return _masked_mean(bce, active)


def active_combinations_loss(
    logits: torch.Tensor, assignment: torch.Tensor, active: torch.Tensor | None = None
) -> torch.Tensor:
    """AudioScope's "active combinations" loss: the soundtrack of the video (``mix1``) is only
    mostly on-screen, so of the sources assigned to it at least one, but not necessarily all,
    is on-screen. Loss = min over non-empty subsets S of the (active) sources assigned to
    ``mix1`` of the BCE with targets 1 on S and 0 elsewhere; sources assigned to ``mix2`` are
    always off-screen. With no active source assigned to ``mix1``, all targets are 0.
    ``[B, M] -> [B]``."""
    b, m = logits.shape
    selections = binary_selections(m, logits.device, logits.dtype)  # [K, M] candidate targets
    allowed = assignment.bool() if active is None else assignment.bool() & active.bool()
    # a candidate is valid if it labels on-screen only allowed sources, and is non-empty
    # unless nothing is allowed
    inside = ((selections.unsqueeze(0) > 0) & ~allowed.unsqueeze(1)).sum(-1) == 0  # [B, K]
    nonempty = selections.sum(-1) > 0
    valid = inside & (nonempty.unsqueeze(0) | ~allowed.any(-1, keepdim=True))
    # BCE of every candidate: sum_m softplus(logit) - target * logit
    per_source = F.softplus(logits).unsqueeze(1) - selections.unsqueeze(0) * logits.unsqueeze(1)
    if active is not None:
        per_source = per_source * active.to(logits.dtype).unsqueeze(1)
        count = active.to(logits.dtype).sum(-1).clamp_min(1.0)
    else:
        count = torch.full((b,), float(m), dtype=logits.dtype, device=logits.device)
    totals = per_source.sum(-1).masked_fill(~valid, float("inf"))
    return totals.amin(dim=-1) / count


def supervised_clip_loss(
    logits: torch.Tensor,
    assignment: torch.Tensor,
    clip_label: torch.Tensor,
    active: torch.Tensor | None = None,
) -> torch.Tensor:
    """Loss from human clip labels of ``mix1`` (1: on-screen only, 0: off-screen only, -1:
    unknown). On-screen only: the sources assigned to ``mix1`` are on-screen, the rest off.
    Off-screen only: every source is off-screen. Unknown: 0. ``[B, M], [B] -> [B]``."""
    target = torch.where(
        clip_label.unsqueeze(-1) > 0, assignment.to(logits.dtype), torch.zeros_like(logits)
    )
    loss = exact_assignment_loss(logits, target, active)
    return torch.where(clip_label >= 0, loss, torch.zeros_like(loss))


def classification_terms(
    logits: torch.Tensor,
    assignment: torch.Tensor,
    clip_label: torch.Tensor,
    pseudo_label_loss: ClassificationLoss,
    active: torch.Tensor | None = None,
    pseudo_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The on-screen classification terms of a batch, ``(pseudo [B], supervised [B])``.

    Semi-supervised as in AudioScopeV2: an example whose clip 1 carries a human label
    (``clip_label`` 1 or 0) gets the supervised loss from that label, and only that; an
    unlabelled one (-1) gets ``pseudo_label_loss`` on the noisy MixIT pseudo-labels, times
    ``pseudo_weight [B]`` when given. Each example is in exactly one of the two terms: the
    pseudo-label term of a labelled example is 0 and passes no gradient, and so is the
    supervised term of an unlabelled one."""
    labelled = clip_label >= 0
    pseudo = pseudo_label_loss(logits, assignment, active)
    if pseudo_weight is not None:
        pseudo = pseudo * pseudo_weight.to(pseudo.dtype)
    pseudo = torch.where(labelled, torch.zeros_like(pseudo), pseudo)
    return pseudo, supervised_clip_loss(logits, assignment, clip_label, active)


class ClassificationLoss(StrEnum):
    """The form of the on-screen classification loss on MixIT pseudo-labels."""

    EXACT = "exact"  # per-source BCE on the assignment
    ACTIVE_COMBINATIONS = "active_combinations"  # AudioScope's: at least one is on-screen

    def __call__(
        self, logits: torch.Tensor, assignment: torch.Tensor, active: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self is ClassificationLoss.EXACT:
            return exact_assignment_loss(logits, assignment, active)
        return active_combinations_loss(logits, assignment, active)
