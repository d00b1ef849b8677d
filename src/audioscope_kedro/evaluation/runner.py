"""Run a model over fixed MoMs and turn its outputs into the evaluation figures.

MoMs fall into two groups by clip 1's human label, whatever clip 2 is (V1: an off-screen-only
clip; V2: a random unfiltered one):

- **on-screen MoMs** (clip 1 on-screen only): clip 1's soundtrack is the on-screen reference
  and clip 2 plays the off-screen role; they give on-screen SI-SNR(i);
- **off-screen MoMs** (clip 1 off-screen only): nothing is on screen, so everything kept is a
  leak; they give off-screen suppression.

Per-source labels for the AUC: a source of an on-screen MoM is on-screen when MixIT against
the two references assigns it to clip 1; every source of an off-screen MoM is off-screen;
inactive (silent) sources are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.data.lists import MomKind
from audioscope_kedro.evaluation.calibration import (
    CAP_DB,
    RAW,
    Calibration,
    OperatingPoint,
    SelectionStats,
    bias_sweep,
    calibrate,
    threshold_sweep,
    trade_off_curve,
    weighted_si_snr,
    weighted_suppression,
)
from audioscope_kedro.evaluation.metric_names import (
    CALIBRATION_REACHED,
    TUNE_OBJECTIVE,
    Metric,
    ci_keys,
)
from audioscope_kedro.losses import active_sources, mixit
from audioscope_kedro.metrics import (
    auc_roc,
    binary_selections,
    off_screen_suppression,
    roc_curve,
    si_snr,
)
from audioscope_kedro.models.persistence import weights_fingerprint

ON_SCREEN_KINDS = tuple(k for k in MomKind if k.has_on_screen_reference)
OFF_SCREEN_KINDS = tuple(k for k in MomKind if not k.has_on_screen_reference)


@dataclass
class MoMOutputs:
    """Per-MoM statistics of a model's outputs (not the audio)."""

    on_logits: torch.Tensor  # [N1, M]
    on_stats: SelectionStats
    on_mixture_si_snr: torch.Tensor  # [N1]
    on_source_labels: torch.Tensor  # [N1, M] bool
    on_active: torch.Tensor  # [N1, M] bool
    off_logits: torch.Tensor  # [N2, M]
    off_stats: SelectionStats
    off_active: torch.Tensor  # [N2, M]
    on_ids: list[str]
    off_ids: list[str]
    on_kinds: list[str] = field(default_factory=list)
    off_kinds: list[str] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: Sequence[MoMOutputs]) -> MoMOutputs:
        """The outputs of consecutive shares of the MoMs (e.g. each training process's share
        of validation), as one pass over them all."""
        if len(parts) == 1:
            return parts[0]

        def cat(name: str) -> torch.Tensor:
            return torch.cat([getattr(p, name) for p in parts])

        def join(name: str) -> list:
            return [x for p in parts for x in getattr(p, name)]

        return cls(
            on_logits=cat("on_logits"),
            on_stats=SelectionStats.concat([p.on_stats for p in parts]),
            on_mixture_si_snr=cat("on_mixture_si_snr"),
            on_source_labels=cat("on_source_labels"),
            on_active=cat("on_active"),
            off_logits=cat("off_logits"),
            off_stats=SelectionStats.concat([p.off_stats for p in parts]),
            off_active=cat("off_active"),
            on_ids=join("on_ids"),
            off_ids=join("off_ids"),
            on_kinds=join("on_kinds"),
            off_kinds=join("off_kinds"),
        )


def run_on_moms(model, moms: MoMSet, batch_size: int = 16) -> MoMOutputs:
    """Separate and classify every MoM; keeps per-example statistics, not the audio."""
    parts: dict[bool, dict[str, list]] = {True: {}, False: {}}
    model.eval()
    with torch.no_grad():
        for on_screen, kinds in ((True, ON_SCREEN_KINDS), (False, OFF_SCREEN_KINDS)):
            acc = parts[on_screen]
            for pos, batch in moms.batches(batch_size, kinds):
                out = model(batch.mixture, batch.frames)
                reference = batch.mix1 if on_screen else None
                acc.setdefault("logits", []).append(out.logits)
                acc.setdefault("stats", []).append(
                    SelectionStats.from_audio(out.sources, batch.mixture, reference)
                )
                acc.setdefault("active", []).append(active_sources(out.sources))
                acc.setdefault("ids", []).extend(moms.mom_ids[i] for i in pos)
                acc.setdefault("kinds", []).extend(str(moms.kind[i]) for i in pos)
                if on_screen:
                    _, assignment = mixit(out.sources, batch.mix1, batch.mix2)
                    acc.setdefault("labels", []).append(assignment.bool())
                    acc.setdefault("mix_si_snr", []).append(si_snr(batch.mixture, batch.mix1))
    on, off = parts[True], parts[False]
    if not on or not off:
        raise ValueError(
            "evaluation needs MoMs with an on-screen-only clip 1 and MoMs with an "
            f"off-screen-only clip 1; found {len(on.get('ids', []))} and "
            f"{len(off.get('ids', []))} (were their clips quarantined?)"
        )
    return MoMOutputs(
        on_logits=torch.cat(on["logits"]),
        on_stats=SelectionStats.concat(on["stats"]),
        on_mixture_si_snr=torch.cat(on["mix_si_snr"]),
        on_source_labels=torch.cat(on["labels"]),
        on_active=torch.cat(on["active"]),
        off_logits=torch.cat(off["logits"]),
        off_stats=SelectionStats.concat(off["stats"]),
        off_active=torch.cat(off["active"]),
        on_ids=on["ids"],
        off_ids=off["ids"],
        on_kinds=on["kinds"],
        off_kinds=off["kinds"],
    )


def _source_scores(
    outputs: MoMOutputs, on_rows: np.ndarray, off_rows: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels of the active sources of the given MoMs (rows may repeat)."""
    on_p = torch.sigmoid(outputs.on_logits)[on_rows]
    on_active = outputs.on_active[on_rows]
    scores = [on_p[on_active]]
    labels = [outputs.on_source_labels[on_rows][on_active]]
    if off_rows is not None:
        off_active = outputs.off_active[off_rows]
        scores.append(torch.sigmoid(outputs.off_logits)[off_rows][off_active])
        labels.append(torch.zeros(int(off_active.sum()), dtype=torch.bool))
    return torch.cat(scores).numpy(), torch.cat(labels).numpy()


def source_scores_and_labels(outputs: MoMOutputs) -> tuple[np.ndarray, np.ndarray]:
    """On-screen probability and label of every active source (for AUC and ROC)."""
    return _source_scores(outputs, np.arange(len(outputs.on_ids)), np.arange(len(outputs.off_ids)))


def per_mom_figures(outputs: MoMOutputs, point: OperatingPoint) -> dict[str, np.ndarray]:
    """On-screen SI-SNR and SI-SNRi per on-screen MoM, suppression per off-screen MoM."""
    si = weighted_si_snr(outputs.on_stats, point.weights(outputs.on_logits.double()))
    sup = weighted_suppression(outputs.off_stats, point.weights(outputs.off_logits.double()))
    return {
        Metric.ON_SCREEN_SI_SNR: si.numpy(),
        Metric.ON_SCREEN_SI_SNRI: (si - outputs.on_mixture_si_snr.double()).numpy(),
        Metric.OFF_SCREEN_SUPPRESSION: sup.numpy(),
    }


def figures_at(outputs: MoMOutputs, point: OperatingPoint) -> dict[Metric, float]:
    """Mean on-screen SI-SNR and SI-SNRi (on-screen MoMs), mean suppression (off-screen MoMs)."""
    return {k: float(v.mean()) for k, v in per_mom_figures(outputs, point).items()}


def oracle_per_mom(outputs: MoMOutputs) -> np.ndarray:
    """Best binary selection of the separated sources per on-screen MoM (the selection bound)."""
    m = outputs.on_logits.shape[1]
    selections = binary_selections(m, dtype=torch.float64)
    all_weights = selections[:, None, :].expand(-1, outputs.on_logits.shape[0], -1)
    return weighted_si_snr(outputs.on_stats, all_weights).amax(dim=0).numpy()


def baselines(outputs: MoMOutputs) -> dict[Metric, float]:
    """Mixture SI-SNR (doing nothing) and the oracle binary selection of the sources."""
    return {
        Metric.MIXTURE_SI_SNR: float(outputs.on_mixture_si_snr.mean()),
        Metric.ORACLE_SI_SNR: float(oracle_per_mom(outputs).mean()),
    }


def validation_figures(outputs: MoMOutputs, target_db: float | None = None) -> dict[str, float]:
    """What training logs at each validation: raw-probability figures, AUC, oracle bound, and
    with ``target_db`` the on-screen SI-SNR at the point calibrated to that suppression."""
    scores, labels = source_scores_and_labels(outputs)
    row = {
        **{k.validation: v for k, v in figures_at(outputs, RAW).items()},
        Metric.AUC_ROC.validation: auc_roc(scores, labels),
        Metric.ORACLE_SI_SNR.validation: baselines(outputs)[Metric.ORACLE_SI_SNR],
    }
    if target_db is not None:
        result = calibrate(
            outputs.on_logits, outputs.on_stats, outputs.off_logits, outputs.off_stats, target_db
        )
        row[TUNE_OBJECTIVE] = result.on_screen_si_snr
        row[CALIBRATION_REACHED] = float(result.reached)
    return row


def bootstrap_ci(
    statistic, n_on: int, n_off: int, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Percentile 95% interval of ``statistic(on_rows, off_rows)`` over MoMs resampled with
    replacement (each group on its own: the MoM, not the source, is the unit of sampling)."""
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        value = statistic(rng.integers(0, n_on, n_on), rng.integers(0, n_off, n_off))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class Evaluation:
    metrics: dict[str, float]
    trade_off: list[dict]  # one row per threshold: on-screen SI-SNR and suppression
    roc: tuple[np.ndarray, np.ndarray]  # false and true positive rates
    examples: list[dict]  # a few MoMs of every kind: audio, estimates, scores, kept sources
    per_mom: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per MoM
    targets: list[dict] = field(default_factory=list)  # figures at each calibration target


def _per_mom_table(outputs: MoMOutputs, point: OperatingPoint, oracle: np.ndarray) -> pd.DataFrame:
    raw, cal = per_mom_figures(outputs, RAW), per_mom_figures(outputs, point)
    kept_on = point.weights(outputs.on_logits.double()).sum(-1).numpy()
    kept_off = point.weights(outputs.off_logits.double()).sum(-1).numpy()
    on = pd.DataFrame(
        {
            "mom_id": outputs.on_ids,
            "kind": outputs.on_kinds,
            "on_screen_mom": True,
            str(Metric.MIXTURE_SI_SNR): outputs.on_mixture_si_snr.double().numpy(),
            str(Metric.ON_SCREEN_SI_SNR): raw[Metric.ON_SCREEN_SI_SNR],
            Metric.ON_SCREEN_SI_SNR.calibrated: cal[Metric.ON_SCREEN_SI_SNR],
            Metric.ON_SCREEN_SI_SNRI.calibrated: cal[Metric.ON_SCREEN_SI_SNRI],
            str(Metric.ORACLE_SI_SNR): oracle,
            "calibrated_sources_kept": kept_on,
        }
    )
    off = pd.DataFrame(
        {
            "mom_id": outputs.off_ids,
            "kind": outputs.off_kinds,
            "on_screen_mom": False,
            str(Metric.OFF_SCREEN_SUPPRESSION): raw[Metric.OFF_SCREEN_SUPPRESSION],
            Metric.OFF_SCREEN_SUPPRESSION.calibrated: cal[Metric.OFF_SCREEN_SUPPRESSION],
            "calibrated_sources_kept": kept_off,
        }
    )
    return pd.concat([on, off], ignore_index=True)


def evaluate(
    model,
    moms: MoMSet,
    point: OperatingPoint,
    batch_size: int = 16,
    n_examples: int = 1,
    points_by_target: dict[float, OperatingPoint] | None = None,
    bootstrap: int = 1000,
) -> Evaluation:
    """Every key of ``metrics.json``: raw (the classifier's own probabilities as weights) and
    ``calibrated_`` (at ``point``), the baselines, per-kind figures, bootstrap 95% intervals,
    the figures at the other calibration targets; plus the per-MoM table, the curves and
    ``n_examples`` audio examples of every MoM kind."""
    outputs = run_on_moms(model, moms, batch_size)
    n_on, n_off = len(outputs.on_ids), len(outputs.off_ids)
    scores, labels = source_scores_and_labels(outputs)
    oracle = oracle_per_mom(outputs)
    raw, cal = per_mom_figures(outputs, RAW), per_mom_figures(outputs, point)
    mixture = outputs.on_mixture_si_snr.double().numpy()
    metrics: dict[str, float] = {str(k): float(v.mean()) for k, v in raw.items()}
    metrics[Metric.AUC_ROC] = auc_roc(scores, labels)
    metrics.update({k.calibrated: float(v.mean()) for k, v in cal.items()})
    # the ranking of sources, hence AUC, is the same at any monotonic operating point
    metrics[Metric.AUC_ROC.calibrated] = metrics[Metric.AUC_ROC]
    metrics[Metric.AUC_ROC_ON_SCREEN_MOMS] = auc_roc(
        *_source_scores(outputs, np.arange(n_on), None)
    )
    metrics[Metric.MIXTURE_SI_SNR] = float(mixture.mean())
    metrics[Metric.ORACLE_SI_SNR] = float(oracle.mean())
    suppression = cal[Metric.OFF_SCREEN_SUPPRESSION]
    metrics[Metric.SHARE_AT_CAP.calibrated] = float(np.mean(suppression >= CAP_DB - 1e-6))
    kinds = np.array(outputs.on_kinds)
    for kind in sorted(set(outputs.on_kinds)):  # a clip-gating model shows up here
        rows = kinds == kind
        metrics[Metric.MIXTURE_SI_SNR.of_kind(kind)] = float(mixture[rows].mean())
        metrics[Metric.ON_SCREEN_SI_SNR.calibrated + f"_{kind}"] = float(
            cal[Metric.ON_SCREEN_SI_SNR][rows].mean()
        )
    off_kinds = np.array(outputs.off_kinds)
    for kind in sorted(set(outputs.off_kinds)):
        metrics[Metric.OFF_SCREEN_SUPPRESSION.calibrated + f"_{kind}"] = float(
            suppression[off_kinds == kind].mean()
        )
    # bootstrap 95% intervals of the headline figures, MoMs resampled
    headline = {
        Metric.ON_SCREEN_SI_SNR.calibrated: lambda a, b: cal[Metric.ON_SCREEN_SI_SNR][a].mean(),
        Metric.ON_SCREEN_SI_SNRI.calibrated: lambda a, b: cal[Metric.ON_SCREEN_SI_SNRI][a].mean(),
        Metric.OFF_SCREEN_SUPPRESSION.calibrated: lambda a, b: suppression[b].mean(),
        str(Metric.MIXTURE_SI_SNR): lambda a, b: mixture[a].mean(),
        str(Metric.ORACLE_SI_SNR): lambda a, b: oracle[a].mean(),
        str(Metric.AUC_ROC): lambda a, b: auc_roc(*_source_scores(outputs, a, b)),
        str(Metric.AUC_ROC_ON_SCREEN_MOMS): lambda a, b: auc_roc(*_source_scores(outputs, a, None)),
    }
    for key, statistic in headline.items():
        low, high = bootstrap_ci(statistic, n_on, n_off, bootstrap)
        metrics[ci_keys(key)[0]], metrics[ci_keys(key)[1]] = low, high
    targets = []
    for target, target_point in sorted((points_by_target or {}).items()):
        at = figures_at(outputs, target_point)
        for metric, value in at.items():
            metrics[metric.at_target(target)] = value
        targets.append({"target_db": target, **target_point.to_dict(), **at})
    metrics[Metric.NUM_ON_SCREEN_MOMS] = n_on
    metrics[Metric.NUM_OFF_SCREEN_MOMS] = n_off
    metrics = {str(k): v for k, v in metrics.items()}  # plain keys: JSON and pandas
    curve = trade_off_curve(
        threshold_sweep(49),
        outputs.on_logits,
        outputs.on_stats,
        outputs.off_logits,
        outputs.off_stats,
    )
    return Evaluation(
        metrics,
        curve,
        roc_curve(scores, labels),
        _examples(model, moms, point, n_examples),
        _per_mom_table(outputs, point, oracle),
        targets,
    )


def _examples(model, moms: MoMSet, point: OperatingPoint, per_kind: int) -> list[dict]:
    """``per_kind`` MoMs of every kind present: audio, estimates, probabilities, kept sources
    and their own figures."""
    examples = []
    with torch.no_grad():
        for kind in (k for k in MomKind if (moms.kind == str(k)).any()):
            for pos, batch in moms.batches(per_kind, kind):
                out = model(batch.mixture, batch.frames)
                weights = point.weights(out.logits)
                calibrated_on = (weights.unsqueeze(-1) * out.sources).sum(1)
                for k in range(len(pos)):
                    on_screen = kind.has_on_screen_reference
                    figure = (
                        float(si_snr(calibrated_on[k], batch.mix1[k]))
                        if on_screen
                        else min(
                            CAP_DB,
                            float(off_screen_suppression(batch.mixture[k], calibrated_on[k])),
                        )
                    )
                    examples.append(
                        {
                            "mom_id": moms.mom_ids[pos[k]],
                            "kind": str(kind),
                            "mixture": batch.mixture[k].numpy(),
                            "reference": batch.mix1[k].numpy() if on_screen else None,
                            "on_screen": out.on_screen[k].numpy(),
                            "calibrated_on_screen": calibrated_on[k].numpy(),
                            "probabilities": torch.sigmoid(out.logits[k]).numpy(),
                            "weights": weights[k].numpy(),
                            "figure_name": "on-screen SI-SNR" if on_screen else "suppression",
                            "figure_db": figure,
                            "frame": batch.frames[k, batch.frames.shape[1] // 2].numpy(),
                        }
                    )
                break
    return examples


@dataclass(frozen=True)
class CalibrateParams:
    """The ``calibrate`` parameter block."""

    target_suppression_db: float = 15.0  # a constant probability of 0.5 already gives 6.02 dB
    report_targets: tuple[float, ...] = (6.0, 10.0, 15.0, 20.0)  # also reported by `evaluate`
    # sharpening temperatures tried; at each the bias is bisected to the target
    temperatures: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1)
    validation_split: str = "validate"
    batch_size: int = 16


@dataclass(frozen=True)
class EvaluateParams:
    """The ``evaluate`` parameter block."""

    test_split: str = "test"
    batch_size: int = 16
    examples: int = 1  # MoMs of each kind shown with spectrograms and audio in the report
    bootstrap: int = 1000  # resamples for the 95% confidence intervals


def calibrate_model(model, moms: MoMSet, params: CalibrateParams) -> tuple[Calibration, list[dict]]:
    """The operating point of ``model`` whose mean suppression on ``moms`` (the validation
    MoMs) equals the target, for these weights, the points for the report targets, and the
    trade-off curve of the chosen temperature's bias sweep."""
    outputs = run_on_moms(model, moms, params.batch_size)

    def at(target: float):
        return calibrate(
            outputs.on_logits,
            outputs.on_stats,
            outputs.off_logits,
            outputs.off_stats,
            float(target),
            params.temperatures,
        )

    result = at(params.target_suppression_db)
    calibration = Calibration(
        point=result.point,
        target_suppression_db=float(params.target_suppression_db),
        reached=result.reached,
        split=params.validation_split,
        model_fingerprint=weights_fingerprint(model),
        validation={str(k): v for k, v in figures_at(outputs, result.point).items()},
        points_by_target={float(t): at(t).point for t in params.report_targets},
    )
    curve = trade_off_curve(
        bias_sweep(result.point.temperature),
        outputs.on_logits,
        outputs.on_stats,
        outputs.off_logits,
        outputs.off_stats,
    )
    return calibration, curve
