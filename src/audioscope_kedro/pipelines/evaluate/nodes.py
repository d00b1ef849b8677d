"""Nodes of ``evaluate``: metrics on the test MoMs, figures and the HTML report."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.evaluation import report
from audioscope_kedro.evaluation.calibration import RAW
from audioscope_kedro.evaluation.runner import EvaluateParams, Evaluation, evaluate
from audioscope_kedro.parameters import parse
from audioscope_kedro.release import ReleasedModel

log = logging.getLogger(__name__)


def evaluate_model(
    release: ReleasedModel, clip_store: ClipStore, mom_table: pd.DataFrame, params: dict
) -> tuple[dict, pd.DataFrame, pd.DataFrame, Evaluation]:
    """``metrics.json`` (raw and calibrated figures with the baselines), the trade-off and ROC
    curves as tables, and the full evaluation for the report."""
    settings = parse(EvaluateParams, params, "evaluate")
    model, calibration = release.model, release.calibration
    moms = MoMSet.from_table(clip_store, mom_table, model.config.clip_seconds, settings.test_split)
    point = calibration.point if calibration else RAW
    result = evaluate(model, moms, point, settings.batch_size, settings.examples)
    log.info("metrics: %s", result.metrics)
    roc = pd.DataFrame({"false_positive_rate": result.roc[0], "true_positive_rate": result.roc[1]})
    return result.metrics, pd.DataFrame(result.trade_off), roc, result


def plot_evaluation(result: Evaluation, release: ReleasedModel) -> tuple[Figure, Figure, Figure]:
    """Trade-off curve, ROC curve and spectrograms of a few examples."""
    return report.evaluation_figures(
        result, release.calibration, release.model.config.media.sample_rate
    )


def write_report(
    result: Evaluation, release: ReleasedModel, train_curve: pd.DataFrame, params: dict
) -> str:
    """The self-contained HTML report: metrics, figures, audio players."""
    settings = parse(EvaluateParams, params, "evaluate")
    return report.evaluation_report(
        result,
        release.calibration,
        release.model,
        settings.test_split,
        train_curve.to_dict("records"),
    )
