"""Nodes of ``evaluate``: metrics on the test MoMs, figures and the HTML report."""

from __future__ import annotations

import logging
import subprocess
from datetime import UTC, datetime

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
) -> tuple[dict, pd.DataFrame, pd.DataFrame, pd.DataFrame, Evaluation]:
    """``metrics.json`` (raw and calibrated figures, baselines, intervals, other targets), the
    per-MoM table, the trade-off and ROC curves as tables, and the evaluation for the report."""
    settings = parse(EvaluateParams, params, "evaluate")
    model, calibration = release.model, release.calibration
    moms = MoMSet.from_table(clip_store, mom_table, model.config.clip_seconds, settings.test_split)
    result = evaluate(
        model,
        moms,
        calibration.point if calibration else RAW,
        settings.batch_size,
        settings.examples,
        calibration.points_by_target if calibration else None,
        settings.bootstrap,
    )
    log.info("metrics: %s", result.metrics)
    roc = pd.DataFrame({"false_positive_rate": result.roc[0], "true_positive_rate": result.roc[1]})
    return result.metrics, result.per_mom, pd.DataFrame(result.trade_off), roc, result


def plot_evaluation(result: Evaluation, release: ReleasedModel) -> tuple[Figure, Figure, Figure]:
    """Trade-off curve, ROC curve and spectrograms of examples of every MoM kind."""
    return report.evaluation_figures(
        result, release.calibration, release.model.config.media.sample_rate
    )


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        )
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def write_report(
    result: Evaluation,
    release: ReleasedModel,
    train_curve: pd.DataFrame,
    coincidence_curve: pd.DataFrame,
    params: dict,
    configuration: dict,
) -> str:
    """The self-contained HTML report: results, figures, examples, run and configuration."""
    run = report.RunInfo(
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=_commit(),
        configuration=configuration,
    )
    return report.evaluation_report(
        result,
        release.calibration,
        release.model,
        parse(EvaluateParams, params, "evaluate").test_split,
        train_curve.to_dict("records"),
        coincidence_curve.to_dict("records"),
        run,
    )


def configuration(
    coincidence: dict, pretrain_audio: dict, train: dict, model: dict, calibrate: dict
) -> dict:
    """The parameter blocks of the run, for the report."""
    return {
        "coincidence": coincidence,
        "pretrain_audio": pretrain_audio,
        "train": train,
        "model": model,
        "calibrate": calibrate,
    }
