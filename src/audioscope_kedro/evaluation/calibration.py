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

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import torch

from audioscope_kedro.evaluation.metric_names import Metric
from audioscope_kedro.metrics import si_snr_from_energies

EPS = 1e-8
CAP_DB = 60.0


class PointKind(StrEnum):
    THRESHOLD = "threshold"  # hard selection of the sources above a probability
    AFFINE = "affine"  # soft weights sigmoid(logit / temperature + bias)


@dataclass(frozen=True)
class OperatingPoint:
    kind: PointKind = PointKind.THRESHOLD
    threshold: float = 0.5
    temperature: float = 1.0
    bias: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", PointKind(self.kind))

    def weights(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits [..., M] -> weights [..., M]`` in [0, 1]."""
        if self.kind is PointKind.THRESHOLD:
            return (torch.sigmoid(logits) > self.threshold).to(logits.dtype)
        return torch.sigmoid(logits / self.temperature + self.bias)

    def to_dict(self) -> dict:
        return {**asdict(self), "kind": str(self.kind)}

    def describe(self) -> str:
        """In words, for reports."""
        if self.kind is PointKind.THRESHOLD:
            return f"keep the sources whose on-screen probability is above {self.threshold:.3f}"
        if self.temperature == 1.0 and self.bias == 0.0:
            return "weight each source by its on-screen probability"
        return f"weight each source by sigmoid(logit / {self.temperature:g} + {self.bias:.3f})"


RAW = OperatingPoint(PointKind.AFFINE, temperature=1.0, bias=0.0)  # the classifier's own output


class CalibrationMismatchError(ValueError):
    """A calibration made for another model than the one it is applied to."""


@dataclass(frozen=True)
class Calibration:
    """The content of ``calibration.json``: the operating point chosen on validation data, for
    the model whose weights have ``model_fingerprint``."""

    point: OperatingPoint
    target_suppression_db: float
    reached: bool  # False: no point reached the target; the strongest one was taken
    split: str  # the MoMs it was chosen on
    model_fingerprint: str
    validation: dict[str, float] = field(default_factory=dict)  # figures there

    def to_json(self) -> dict[str, Any]:
        return {
            "point": self.point.to_dict(),
            "target_suppression_db": self.target_suppression_db,
            "reached": self.reached,
            "split": self.split,
            "model_fingerprint": self.model_fingerprint,
            "validation": {str(k): float(v) for k, v in self.validation.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        missing = {"point", "target_suppression_db", "model_fingerprint"} - set(data)
        if missing:
            raise ValueError(
                f"calibration.json lacks {sorted(missing)} (written by an older version? "
                "run `kedro run --pipeline calibrate` again)"
            )
        return cls(
            point=OperatingPoint(**data["point"]),
            target_suppression_db=float(data["target_suppression_db"]),
            reached=bool(data.get("reached", True)),
            split=str(data.get("split", "")),
            model_fingerprint=str(data["model_fingerprint"]),
            validation=dict(data.get("validation", {})),
        )

    def check_model(self, fingerprint: str, source: str = "calibration.json") -> None:
        """Refuse to apply this calibration to another model's weights."""
        if fingerprint != self.model_fingerprint:
            raise CalibrationMismatchError(
                f"{source} was made for another model (weights {self.model_fingerprint[:12]}, "
                f"this model {fingerprint[:12]}): run `calibrate` for this model, or use "
                "--threshold / --target-suppression"
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


def candidate_points(kind: PointKind | str, num: int = 199) -> list[OperatingPoint]:
    """The grid searched by :func:`calibrate`: thresholds in (0, 1), or biases at a few
    temperatures (``T < 1`` sharpens)."""
    if kind == PointKind.THRESHOLD:
        return [
            OperatingPoint(PointKind.THRESHOLD, threshold=float(t))
            for t in np.linspace(0, 1, num + 2)[1:-1]
        ]
    if kind == PointKind.AFFINE:
        return [
            OperatingPoint(PointKind.AFFINE, temperature=float(temp), bias=float(b))
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
        {
            **p.to_dict(),
            str(Metric.ON_SCREEN_SI_SNR): float(a),
            str(Metric.OFF_SCREEN_SUPPRESSION): float(b),
        }
        for p, a, b in zip(points, si, sup, strict=True)
    ]


def calibrate(
    on_logits: torch.Tensor,
    on_stats: SelectionStats,
    off_logits: torch.Tensor,
    off_stats: SelectionStats,
    target_db: float,
    kind: PointKind = PointKind.THRESHOLD,
    cap_db: float = CAP_DB,
) -> tuple[OperatingPoint, list[dict], bool]:
    """Best on-screen SI-SNR among the points whose suppression reaches ``target_db``.

    Returns the point, the whole curve, and whether the target was reached (if not, the
    point with the highest suppression is returned, and the caller should say so).
    """
    points = candidate_points(kind)
    curve = trade_off_curve(points, on_logits, on_stats, off_logits, off_stats, cap_db)
    reaching = [i for i, row in enumerate(curve) if row[Metric.OFF_SCREEN_SUPPRESSION] >= target_db]
    if reaching:
        best = max(reaching, key=lambda i: curve[i][Metric.ON_SCREEN_SI_SNR])
        return points[best], curve, True
    best = max(range(len(curve)), key=lambda i: curve[i][Metric.OFF_SCREEN_SUPPRESSION])
    return points[best], curve, False
