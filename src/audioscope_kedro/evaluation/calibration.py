"""Operating points of the on-screen classifier and the calibration search (plain PyTorch).

An operating point maps per-source logits to selection weights ``w [N, M]``; the on-screen
estimate is ``sum_m w_m s_m``. Two kinds:

- ``threshold``: ``w = 1[sigmoid(logit) > t]`` (hard selection: sharpest),
- ``affine``: ``w = sigmoid(logit / temperature + bias)`` (soft, with sharpening).

Calibration (AudioScopeV2) picks, on validation data, the point of a monotone one-parameter
family (a bias on the logits, at a few sharpening temperatures) whose mean off-screen
suppression on the all-off-screen MoMs EQUALS a target (found by bisection), so that models
are compared at the same operating point; among temperatures, the best on-screen SI-SNR there.

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
    # the points calibrated to other suppression targets, for the report's table
    points_by_target: dict[float, OperatingPoint] = field(default_factory=dict)
    # the configuration of that model (``persistence.config_fingerprint``); "" in files written
    # before it was recorded, which are bound by the weights alone
    config_fingerprint: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "point": self.point.to_dict(),
            "points_by_target": {f"{t:g}": p.to_dict() for t, p in self.points_by_target.items()},
            "target_suppression_db": self.target_suppression_db,
            "reached": self.reached,
            "split": self.split,
            "model_fingerprint": self.model_fingerprint,
            **({"config_fingerprint": self.config_fingerprint} if self.config_fingerprint else {}),
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
            points_by_target={
                float(t): OperatingPoint(**p) for t, p in data.get("points_by_target", {}).items()
            },
            config_fingerprint=str(data.get("config_fingerprint", "")),
        )

    def check_model(
        self, fingerprint: str, source: str = "calibration.json", config: str | None = None
    ) -> None:
        """Refuse to apply this calibration to another model: other weights, or (when both
        sides record it) the same weights under another configuration."""
        if fingerprint != self.model_fingerprint:
            raise CalibrationMismatchError(
                f"{source} was made for another model (weights {self.model_fingerprint[:12]}, "
                f"this model {fingerprint[:12]}): run `calibrate` for this model, or use "
                "--threshold / --target-suppression"
            )
        if config and self.config_fingerprint and config != self.config_fingerprint:
            raise CalibrationMismatchError(
                f"{source} was made for another model (these weights, but configuration "
                f"{self.config_fingerprint[:12]}, this model {config[:12]}: config.json edited?): "
                "run `calibrate` for this model, or use --threshold / --target-suppression"
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


def threshold_sweep(num: int = 49) -> list[OperatingPoint]:
    """Hard-selection points at thresholds evenly spread in (0, 1): the reference curve."""
    return [
        OperatingPoint(PointKind.THRESHOLD, threshold=float(t))
        for t in np.linspace(0, 1, num + 2)[1:-1]
    ]


def bias_sweep(temperature: float, num: int = 81, span: float = 20.0) -> list[OperatingPoint]:
    """Points of the calibration family at one temperature, biases evenly spread."""
    return [
        OperatingPoint(PointKind.AFFINE, temperature=temperature, bias=float(b))
        for b in np.linspace(-span, span, num)
    ]


def trade_off_curve(
    points: list[OperatingPoint],
    on_logits: torch.Tensor,
    on_stats: SelectionStats,
    off_logits: torch.Tensor,
    off_stats: SelectionStats,
    cap_db: float = CAP_DB,
) -> list[dict]:
    """For each point: mean on-screen SI-SNR on the MoMs with an on-screen reference and mean
    suppression on the all-off-screen MoMs. One dict per point (its fields plus the figures)."""
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


@dataclass(frozen=True)
class CalibrationResult:
    point: OperatingPoint
    reached: bool  # the suppression equals the target within the tolerance
    suppression_db: float  # mean suppression at the point (validation)
    on_screen_si_snr: float  # mean on-screen SI-SNR at the point (validation)


BIAS_LIMIT = 60.0  # |bias| beyond which every weight is 0 or 1 to double precision


def calibrate(
    on_logits: torch.Tensor,
    on_stats: SelectionStats,
    off_logits: torch.Tensor,
    off_stats: SelectionStats,
    target_db: float,
    temperatures: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1),
    cap_db: float = CAP_DB,
    tolerance_db: float = 0.01,
) -> CalibrationResult:
    """The operating point whose mean off-screen suppression EQUALS ``target_db`` (AudioScopeV2).

    The family is a bias on the on-screen logits, ``w = sigmoid(logit / T + b)``: for each
    temperature ``T`` the bias is found by bisection (suppression falls from the cap at
    ``b = -inf``, nothing kept, to about 0 dB at ``b = +inf``, everything kept, continuously),
    then the temperature with the best mean on-screen SI-SNR at that same suppression is
    taken: every candidate sits at the target, so the comparison between them is fair.
    ``reached`` is False when no bias gets within ``tolerance_db`` (a target above the cap).
    """
    off = off_logits.double()

    def suppression(point: OperatingPoint) -> float:
        return float(weighted_suppression(off_stats, point.weights(off), cap_db).mean())

    best: CalibrationResult | None = None
    for temperature in temperatures:
        lo, hi = -BIAS_LIMIT, BIAS_LIMIT  # suppression(lo) >= target >= suppression(hi)
        point = OperatingPoint(PointKind.AFFINE, temperature=temperature, bias=lo)
        value = suppression(point)
        if value > target_db + tolerance_db:
            for _ in range(100):
                mid = 0.5 * (lo + hi)
                point = OperatingPoint(PointKind.AFFINE, temperature=temperature, bias=mid)
                value = suppression(point)
                if abs(value - target_db) <= tolerance_db or hi - lo < 1e-9:
                    break
                if value > target_db:
                    lo = mid
                else:
                    hi = mid
        si = float(weighted_si_snr(on_stats, point.weights(on_logits.double())).mean())
        result = CalibrationResult(point, abs(value - target_db) <= tolerance_db, value, si)
        if best is None or (result.reached, result.on_screen_si_snr) > (
            best.reached,
            best.on_screen_si_snr,
        ):
            best = result
    assert best is not None, "no temperature given"
    return best
