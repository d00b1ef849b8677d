"""Separation and detection metrics (plain PyTorch / numpy, no Kedro).

Shape contracts: waveforms are ``[..., T]``; every metric is batched over leading dims and
returns ``[...]``. All values in dB except AUC. Silent inputs give finite numbers, never NaN.
"""

from __future__ import annotations

import numpy as np
import torch

EPS = 1e-8


def _energy(x: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(dim=-1)


SILENT_SI_SNR = -30.0  # dB given to an estimate with no energy: removing everything is a failure
SILENT_RATIO = 1e-8  # estimate energy below this fraction of the reference's counts as silent


def si_snr_from_energies(
    est_energy: torch.Tensor, dot: torch.Tensor, ref_energy: torch.Tensor, eps: float = EPS
) -> torch.Tensor:
    """SI-SNR from ``||e||^2``, ``<e, r>`` and ``||r||^2`` of zero-mean signals (shared by
    :func:`si_snr` and the calibration search, which only keeps these statistics)."""
    target = dot**2 / (ref_energy + eps)
    noise = (est_energy - target).clamp_min(0)
    value = 10 * torch.log10((target + eps) / (noise + eps))
    silent = est_energy < SILENT_RATIO * ref_energy
    return torch.where(silent, torch.full_like(value, SILENT_SI_SNR), value)


def si_snr(est: torch.Tensor, ref: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Scale-invariant SNR in dB: ``est, ref [..., T] -> [...]``.

    Both are made zero-mean; the reference is scaled by the projection of the estimate onto it,
    so any gain on the estimate leaves the value unchanged. An estimate with no energy (below
    1e-8 of the reference's) scores ``SILENT_SI_SNR`` (-30 dB): otherwise 0/0 would make
    removing everything look like a 0 dB draw, better than many mixtures.
    """
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    return si_snr_from_energies(_energy(est), (est * ref).sum(dim=-1), _energy(ref), eps)


def si_snr_improvement(
    est: torch.Tensor, ref: torch.Tensor, mixture: torch.Tensor, eps: float = EPS
) -> torch.Tensor:
    """SI-SNR of the estimate minus SI-SNR of the unprocessed mixture: ``[..., T] -> [...]``."""
    return si_snr(est, ref, eps) - si_snr(mixture, ref, eps)


def off_screen_suppression(
    mixture: torch.Tensor, on_screen_estimate: torch.Tensor, eps: float = EPS
) -> torch.Tensor:
    """``10 log10(||mixture||^2 / ||on_screen_estimate||^2)`` in dB: ``[..., T] -> [...]``.

    Measured on mixtures with no on-screen sound: how much of them the model removes.
    """
    return 10 * torch.log10((_energy(mixture) + eps) / (_energy(on_screen_estimate) + eps))


def binary_selections(num_sources: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """All ``2^M`` binary vectors as ``[2^M, M]``; row k is the binary expansion of k."""
    k = torch.arange(2**num_sources, device=device)
    bits = (k.unsqueeze(-1) >> torch.arange(num_sources, device=device)) & 1
    return bits.to(dtype)


def oracle_selection_si_snr(
    sources: torch.Tensor, ref: torch.Tensor, eps: float = EPS
) -> torch.Tensor:
    """Best SI-SNR over every binary selection of the separated sources.

    ``sources [..., M, T], ref [..., T] -> [...]``: the bound for the selection stage (what a
    perfect on-screen classifier would reach with these sources). The empty selection counts.
    """
    selections = binary_selections(sources.shape[-2], sources.device, sources.dtype)
    estimates = torch.einsum("km,...mt->...kt", selections, sources)
    return si_snr(estimates, ref.unsqueeze(-2), eps).amax(dim=-1)


def auc_roc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties averaged); ``labels`` in {0, 1}.

    Returns NaN when only one class is present.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size)
    sorted_scores = scores[order]
    # average ranks over ties
    _, start, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates over every distinct threshold, from (0, 0) to (1, 1).

    Tied scores are one threshold: the curve jumps diagonally across a tie, so its area (by
    the trapezoidal rule) equals :func:`auc_roc` (all-equal scores: the diagonal, area 0.5).
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    # the last position of each run of equal scores: one point per distinct threshold
    last = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    tps = np.concatenate([[0], np.cumsum(sorted_labels)[last]])
    fps = np.concatenate([[0], np.cumsum(~sorted_labels)[last]])
    return fps / max(1, fps[-1]), tps / max(1, tps[-1])


__all__ = [
    "auc_roc",
    "binary_selections",
    "off_screen_suppression",
    "oracle_selection_si_snr",
    "roc_curve",
    "si_snr",
    "si_snr_improvement",
]
