"""Nodes of ``evaluate``: metrics on the test MoMs, figures and the HTML report."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from audioscope_kedro.evaluation import report as reporting
from audioscope_kedro.evaluation.calibration import operating_point
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.evaluation.runner import Evaluation, evaluate

log = logging.getLogger(__name__)


def evaluate_model(
    model: AudioScope,
    calibration: dict,
    clip_store: ClipStore,
    mom_table: pd.DataFrame,
    params: dict,
) -> tuple[dict, pd.DataFrame, pd.DataFrame, Evaluation]:
    """``metrics.json`` (raw and calibrated figures with the baselines), the trade-off and ROC
    curves as tables, and the full evaluation for the report."""
    moms = MoMSet.from_table(clip_store, mom_table, model.config.clip_seconds, params["split"])
    result = evaluate(
        model, moms, operating_point(calibration), params["batch_size"], params["examples"]
    )
    log.info("metrics: %s", result.metrics)
    roc = pd.DataFrame({"false_positive_rate": result.roc[0], "true_positive_rate": result.roc[1]})
    return result.metrics, pd.DataFrame(result.trade_off), roc, result


def plot_evaluation(
    result: Evaluation, calibration: dict, model: AudioScope
) -> tuple[Figure, Figure, Figure]:
    """Trade-off curve, ROC curve and spectrograms of a few examples."""
    return reporting.evaluation_figures(result, calibration, model.config.sample_rate)


def write_report(
    result: Evaluation,
    calibration: dict,
    train_curve: pd.DataFrame,
    model: AudioScope,
    params: dict,
) -> str:
    """The self-contained HTML report: metrics, figures, audio players."""
    return reporting.evaluation_report(
        result, calibration, model, params["split"], train_curve.to_dict("records")
    )
