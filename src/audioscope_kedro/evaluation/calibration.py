"""Operating points of the on-screen classifier and the calibration search (plain PyTorch).

An operating point maps per-source logits to selection weights ``w [N, M]``; the on-screen
estimate is ``sum_m w_m s_m``. Two kinds:

- ``threshold``: ``w = 1[sigmoid(logit) > t]`` (hard selection: sharpest),
- ``affine``: ``w = sigmoid(logit / temperature + bias)`` (soft, with sharpening).

Calibration (AudioScopeV2) picks, on validation data, the point whose mean off-screen
suppression on off-screen-only mixtures reaches a target, and among those the one with the best
on-screen SI-SNR on on+off mixtures, so that models are compared at the same operating point.

Every point is evaluated from per-example sufficient statistics (Gram matrix of the sources,
their correlation with the reference, energies), so a curve of hundreds of points costs no
more than one pass over the audio. Suppression of an example is capped at ``cap_db``: removing
everything is worth ``cap_db``, not an epsilon-defined infinity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from audioscope_kedro.metrics import si_snr_from_energies

EPS = 1e-8
CAP_DB = 60.0


@dataclass(frozen=True)
class OperatingPoint:
    kind: str = "threshold"  # "threshold" or "affine"
    threshold: float = 0.5
    temperature: float = 1.0
    bias: float = 0.0

    def weights(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits [..., M] -> weights [..., M]`` in [0, 1]."""
        if self.kind == "threshold":
            return (torch.sigmoid(logits) > self.threshold).to(logits.dtype)
        if self.kind == "affine":
            return torch.sigmoid(logits / self.temperature + self.bias)
        raise ValueError(f"unknown operating point kind {self.kind!r}")

    def to_dict(self) -> dict:
        return asdict(self)


RAW = OperatingPoint("affine", temperature=1.0, bias=0.0)  # the classifier's own probabilities


def operating_point(calibration: dict | None) -> OperatingPoint:
    """The point stored in a ``calibration.json``; without one, the raw probabilities."""
    if not calibration:
        return RAW
    return OperatingPoint(
        **{k: calibration[k] for k in ("kind", "threshold", "temperature", "bias")}
    )


@dataclass
class SelectionStats:
    """What any weighted selection of separated sources needs, per example (N examples)."""

    gram: torch.Tensor  # [N, M, M]  <s_m, s_n>
    gram_centred: torch.Tensor  # [N, M, M] of zero-mean sources
    corr: torch.Tensor  # [N, M]  <s_m - mean, ref - mean>; zeros when no reference
    ref_energy: torch.Tensor  # [N]  ||ref - mean||^2
    mix_energy: torch.Tensor  # [N]  ||mixture||^2

    @classmethod
    def from_audio(
        cls, sources: torch.Tensor, mixture: torch.Tensor, reference: torch.Tensor | None = None
    ) -> SelectionStats:
        """``sources [N, M, T]``, ``mixture [N, T]``, ``reference [N, T]`` (on-screen truth)."""
        s = sources.double()
        sc = s - s.mean(-1, keepdim=True)
        if reference is None:
            corr = torch.zeros(s.shape[:2], dtype=s.dtype)
            ref_energy = torch.zeros(s.shape[0], dtype=s.dtype)
        else:
            r = reference.double() - reference.double().mean(-1, keepdim=True)
            corr = torch.einsum("nmt,nt->nm", sc, r)
            ref_energy = (r * r).sum(-1)
        return cls(
            gram=torch.einsum("nmt,nkt->nmk", s, s),
            gram_centred=torch.einsum("nmt,nkt->nmk", sc, sc),
            corr=corr,
            ref_energy=ref_energy,
            mix_energy=(mixture.double() ** 2).sum(-1),
        )

    @classmethod
    def concat(cls, parts: list[SelectionStats]) -> SelectionStats:
        return cls(*(torch.cat([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def weighted_si_snr(stats: SelectionStats, weights: torch.Tensor) -> torch.Tensor:
    """SI-SNR (dB) of ``sum_m w_m s_m`` against the reference: ``weights [..., N, M] -> [..., N]``."""
    w = weights.double()
    est_energy = torch.einsum("...nm,nmk,...nk->...n", w, stats.gram_centred, w)
    return si_snr_from_energies(est_energy, (w * stats.corr).sum(-1), stats.ref_energy, EPS)


def weighted_suppression(
    stats: SelectionStats, weights: torch.Tensor, cap_db: float = CAP_DB
) -> torch.Tensor:
    """Off-screen suppression (dB) ``10 log10(||x||^2 / ||sum_m w_m s_m||^2)``, capped:
    ``weights [..., N, M] -> [..., N]``."""
    w = weights.double()
    est_energy = torch.einsum("...nm,nmk,...nk->...n", w, stats.gram, w).clamp_min(0)
    return (10 * torch.log10((stats.mix_energy + EPS) / (est_energy + EPS))).clamp(max=cap_db)


def candidate_points(kind: str, num: int = 199) -> list[OperatingPoint]:
    """The grid searched by :func:`calibrate`: thresholds in (0, 1), or biases at a few
    temperatures (``T < 1`` sharpens)."""
    if kind == "threshold":
        return [
            OperatingPoint("threshold", threshold=float(t))
            for t in np.linspace(0, 1, num + 2)[1:-1]
        ]
    if kind == "affine":
        return [
            OperatingPoint("affine", temperature=float(temp), bias=float(b))
            for temp in (1.0, 0.5, 0.25, 0.1)
            for b in np.linspace(-10, 10, num)
        ]
    raise ValueError(f"calibration kind must be 'threshold' or 'affine', not {kind!r}")


def trade_off_curve(
    points: list[OperatingPoint],
    on_logits: torch.Tensor,
    on_stats: SelectionStats,
    off_logits: torch.Tensor,
    off_stats: SelectionStats,
    cap_db: float = CAP_DB,
) -> list[dict]:
    """For each point: mean on-screen SI-SNR on on+off mixtures and mean suppression on
    off-screen-only mixtures. One dict per point (the point's fields plus the two figures)."""
    on_w = torch.stack([p.weights(on_logits.double()) for p in points])
    off_w = torch.stack([p.weights(off_logits.double()) for p in points])
    si = weighted_si_snr(on_stats, on_w).mean(-1)
    sup = weighted_suppression(off_stats, off_w, cap_db).mean(-1)
    return [
        {**p.to_dict(), "on_screen_si_snr": float(a), "off_screen_suppression": float(b)}
        for p, a, b in zip(points, si, sup, strict=True)
    ]


def calibrate(
    on_logits: torch.Tensor,
    on_stats: SelectionStats,
    off_logits: torch.Tensor,
    off_stats: SelectionStats,
    target_db: float,
    kind: str = "threshold",
    cap_db: float = CAP_DB,
) -> tuple[OperatingPoint, list[dict], bool]:
    """Best on-screen SI-SNR among the points whose suppression reaches ``target_db``.

    Returns the point, the whole curve, and whether the target was reached (if not, the
    point with the highest suppression is returned, and the caller should say so).
    """
    points = candidate_points(kind)
    curve = trade_off_curve(points, on_logits, on_stats, off_logits, off_stats, cap_db)
    reaching = [i for i, row in enumerate(curve) if row["off_screen_suppression"] >= target_db]
    if reaching:
        best = max(reaching, key=lambda i: curve[i]["on_screen_si_snr"])
        return points[best], curve, True
    best = max(range(len(curve)), key=lambda i: curve[i]["off_screen_suppression"])
    return points[best], curve, False
