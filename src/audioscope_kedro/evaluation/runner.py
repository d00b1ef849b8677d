"""Run a model over fixed MoMs and turn its outputs into the evaluation figures.

On on+off MoMs (clip 1 on-screen only, clip 2 off-screen only) the on-screen reference is clip
1's soundtrack; on off+off MoMs there is nothing on screen to keep, so they measure off-screen
suppression. Per-source labels for the AUC: a source of an on+off MoM is on-screen when MixIT
against the two references assigns it to clip 1; every source of an off+off MoM is off-screen;
inactive (silent) sources are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.data.lists import MomKind
from audioscope_kedro.evaluation.calibration import (
    RAW,
    Calibration,
    OperatingPoint,
    PointKind,
    SelectionStats,
    calibrate,
    candidate_points,
    trade_off_curve,
    weighted_si_snr,
    weighted_suppression,
)
from audioscope_kedro.evaluation.metric_names import CALIBRATION_REACHED, TUNE_OBJECTIVE, Metric
from audioscope_kedro.losses import active_sources, mixit
from audioscope_kedro.metrics import auc_roc, binary_selections, roc_curve, si_snr
from audioscope_kedro.models.persistence import weights_fingerprint


@dataclass
class MoMOutputs:
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


def run_on_moms(model, moms: MoMSet, batch_size: int = 16) -> MoMOutputs:
    """Separate and classify every MoM; keeps per-example statistics, not the audio."""
    parts: dict[MomKind, dict[str, list]] = {k: {} for k in (MomKind.ON_OFF, MomKind.OFF_OFF)}
    model.eval()
    with torch.no_grad():
        for kind in parts:
            for pos, batch in moms.batches(batch_size, kind):
                out = model(batch.mixture, batch.frames)
                stats = SelectionStats.from_audio(
                    out.sources,
                    batch.mixture,
                    batch.mix1 if kind.has_on_screen_reference else None,
                )
                acc = parts[kind]
                acc.setdefault("logits", []).append(out.logits)
                acc.setdefault("stats", []).append(stats)
                acc.setdefault("active", []).append(active_sources(out.sources))
                acc.setdefault("ids", []).extend(moms.mom_ids[i] for i in pos)
                if kind.has_on_screen_reference:
                    _, assignment = mixit(out.sources, batch.mix1, batch.mix2)
                    acc.setdefault("labels", []).append(assignment.bool())
                    acc.setdefault("mix_si_snr", []).append(si_snr(batch.mixture, batch.mix1))
    on, off = parts[MomKind.ON_OFF], parts[MomKind.OFF_OFF]
    if not on or not off:
        raise ValueError("evaluation needs both on+off and off+off MoMs")
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
    )


def source_scores_and_labels(outputs: MoMOutputs) -> tuple[np.ndarray, np.ndarray]:
    """On-screen probability and label of every active source (for AUC and ROC)."""
    scores = torch.cat(
        [
            torch.sigmoid(outputs.on_logits)[outputs.on_active],
            torch.sigmoid(outputs.off_logits)[outputs.off_active],
        ]
    )
    labels = torch.cat(
        [
            outputs.on_source_labels[outputs.on_active],
            torch.zeros(int(outputs.off_active.sum()), dtype=torch.bool),
        ]
    )
    return scores.numpy(), labels.numpy()


def figures_at(outputs: MoMOutputs, point: OperatingPoint) -> dict[Metric, float]:
    """Mean on-screen SI-SNR and SI-SNRi (on+off MoMs) and mean suppression (off+off MoMs)."""
    si = weighted_si_snr(outputs.on_stats, point.weights(outputs.on_logits.double()))
    sup = weighted_suppression(outputs.off_stats, point.weights(outputs.off_logits.double()))
    return {
        Metric.ON_SCREEN_SI_SNR: float(si.mean()),
        Metric.ON_SCREEN_SI_SNRI: float((si - outputs.on_mixture_si_snr.double()).mean()),
        Metric.OFF_SCREEN_SUPPRESSION: float(sup.mean()),
    }


def baselines(outputs: MoMOutputs) -> dict[Metric, float]:
    """Mixture SI-SNR (doing nothing) and the oracle binary selection of the sources."""
    m = outputs.on_logits.shape[1]
    selections = binary_selections(m, dtype=torch.float64)
    all_weights = selections[:, None, :].expand(-1, outputs.on_logits.shape[0], -1)
    oracle = weighted_si_snr(outputs.on_stats, all_weights).amax(dim=0)
    return {
        Metric.MIXTURE_SI_SNR: float(outputs.on_mixture_si_snr.mean()),
        Metric.ORACLE_SI_SNR: float(oracle.mean()),
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
        point, _, reached = calibrate(
            outputs.on_logits, outputs.on_stats, outputs.off_logits, outputs.off_stats, target_db
        )
        row[TUNE_OBJECTIVE] = figures_at(outputs, point)[Metric.ON_SCREEN_SI_SNR]
        row[CALIBRATION_REACHED] = float(reached)
    return row


@dataclass
class Evaluation:
    metrics: dict[str, float]
    trade_off: list[dict]  # one row per threshold: on-screen SI-SNR and suppression
    roc: tuple[np.ndarray, np.ndarray]  # false and true positive rates
    examples: list[dict]  # a few on+off MoMs: mixture, reference, on-screen estimates


def evaluate(
    model, moms: MoMSet, point: OperatingPoint, batch_size: int = 16, n_examples: int = 3
) -> Evaluation:
    """Every key of ``metrics.json``: raw (the classifier's own probabilities as weights) and
    ``calibrated_`` (at ``point``), with the baselines, plus the curves and audio examples."""
    outputs = run_on_moms(model, moms, batch_size)
    scores, labels = source_scores_and_labels(outputs)
    auc = auc_roc(scores, labels)
    raw = figures_at(outputs, RAW)
    calibrated = figures_at(outputs, point)
    metrics = {
        **raw,
        Metric.AUC_ROC: auc,
        **{k.calibrated: v for k, v in calibrated.items()},
        # the ranking of sources, hence AUC, is the same at any monotonic operating point
        Metric.AUC_ROC.calibrated: auc,
        **baselines(outputs),
        Metric.NUM_ON_OFF_MOMS: len(outputs.on_ids),
        Metric.NUM_OFF_OFF_MOMS: len(outputs.off_ids),
    }
    metrics = {str(k): v for k, v in metrics.items()}  # plain keys: JSON and pandas
    curve = trade_off_curve(
        candidate_points("threshold", 49),
        outputs.on_logits,
        outputs.on_stats,
        outputs.off_logits,
        outputs.off_stats,
    )
    examples = []
    with torch.no_grad():
        for pos, batch in moms.batches(n_examples, MomKind.ON_OFF):
            out = model(batch.mixture, batch.frames)
            calibrated_on = (point.weights(out.logits).unsqueeze(-1) * out.sources).sum(1)
            for k in range(len(pos)):
                examples.append(
                    {
                        "mom_id": moms.mom_ids[pos[k]],
                        "mixture": batch.mixture[k].numpy(),
                        "reference": batch.mix1[k].numpy(),
                        "on_screen": out.on_screen[k].numpy(),
                        "calibrated_on_screen": calibrated_on[k].numpy(),
                        "probabilities": torch.sigmoid(out.logits[k]).numpy(),
                        "frame": batch.frames[k, batch.frames.shape[1] // 2].numpy(),
                    }
                )
            break
    return Evaluation(metrics, curve, roc_curve(scores, labels), examples)


@dataclass(frozen=True)
class CalibrateParams:
    """The ``calibrate`` parameter block."""

    target_suppression_db: float = 15.0  # a constant probability of 0.5 already gives 6.02 dB
    kind: PointKind = PointKind.THRESHOLD
    validation_split: str = "validate"
    batch_size: int = 16


@dataclass(frozen=True)
class EvaluateParams:
    """The ``evaluate`` parameter block."""

    test_split: str = "test"
    batch_size: int = 16
    examples: int = 3  # MoMs shown with spectrograms and audio players in the report


def calibrate_model(model, moms: MoMSet, params: CalibrateParams) -> tuple[Calibration, list[dict]]:
    """The operating point of ``model`` that reaches the target suppression on ``moms`` (the
    validation MoMs), for these weights; and the whole trade-off curve searched."""
    outputs = run_on_moms(model, moms, params.batch_size)
    target = float(params.target_suppression_db)
    point, curve, reached = calibrate(
        outputs.on_logits,
        outputs.on_stats,
        outputs.off_logits,
        outputs.off_stats,
        target,
        params.kind,
    )
    calibration = Calibration(
        point=point,
        target_suppression_db=target,
        reached=reached,
        split=params.validation_split,
        model_fingerprint=weights_fingerprint(model),
        validation={str(k): v for k, v in figures_at(outputs, point).items()},
    )
    return calibration, curve
