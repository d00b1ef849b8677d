"""Nodes of ``evaluate``: metrics on the test MoMs, figures and the HTML report."""

from __future__ import annotations

import logging

import pandas as pd
from matplotlib.figure import Figure

from audioscope_kedro import reporting
from audioscope_kedro.calibration import OperatingPoint
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.training.batches import MoMSet
from audioscope_kedro.training.evaluation import Evaluation, evaluate

log = logging.getLogger(__name__)


def operating_point(calibration: dict) -> OperatingPoint:
    return OperatingPoint(**{k: calibration[k] for k in ("kind", "threshold", "temperature", "bias")})


def evaluate_model(
    model: AudioScope, calibration: dict, clip_store: ClipStore, mom_table: pd.DataFrame, params: dict
) -> tuple[dict, pd.DataFrame, pd.DataFrame, Evaluation]:
    """``metrics.json`` (raw and calibrated figures with the baselines), the trade-off and ROC
    curves as tables, and the full evaluation for the report."""
    moms = MoMSet.from_table(clip_store, mom_table, model.config.clip_seconds, params["split"])
    result = evaluate(model, moms, operating_point(calibration), params["batch_size"], params["examples"])
    log.info("metrics: %s", result.metrics)
    roc = pd.DataFrame({"false_positive_rate": result.roc[0], "true_positive_rate": result.roc[1]})
    return result.metrics, pd.DataFrame(result.trade_off), roc, result


def plot_evaluation(result: Evaluation, calibration: dict, model: AudioScope) -> tuple[Figure, Figure, Figure]:
    m = result.metrics
    calibrated = {k.removeprefix("calibrated_"): v for k, v in m.items() if k.startswith("calibrated_")}
    trade = reporting.trade_off_figure(result.trade_off, calibrated, m, calibration.get("target_suppression_db"))
    roc = reporting.roc_figure(*result.roc, m["auc_roc"])
    examples = reporting.examples_figure(result.examples, model.config.sample_rate)
    return trade, roc, examples


def write_report(
    result: Evaluation, calibration: dict, train_curve: pd.DataFrame, model: AudioScope, params: dict
) -> str:
    trade, roc, examples = plot_evaluation(result, calibration, model)
    figures = {
        "trade-off: on-screen SI-SNR against off-screen suppression": reporting.figure_png(trade),
        "ROC": reporting.figure_png(roc),
        "examples": reporting.figure_png(examples),
    }
    keys = [k for k in ("train_mixit", "val_on_screen_si_snr", "val_off_screen_suppression", "val_auc_roc") if k in train_curve]
    if keys:
        figures["training curves"] = reporting.figure_png(
            reporting.curves_figure(train_curve.to_dict("records"), keys, "training")
        )
    notes = [
        f"model: {model.config.attention.variant} attention, {model.config.separator.num_sources} sources, "
        f"{model.config.sample_rate} Hz, {sum(p.numel() for p in model.parameters()) / 1e3:.0f}k parameters",
        f"calibrated operating point: {operating_point(calibration)} "
        f"(target {calibration['target_suppression_db']} dB on {calibration['split']}, reached: {calibration['reached']})",
        f"test split: {params['split']}; {result.metrics['num_on_off_moms']} on+off and "
        f"{result.metrics['num_off_off_moms']} off+off MoMs",
    ]
    return reporting.html_report("AudioScope evaluation", result.metrics, figures, result.examples, model.config.sample_rate, notes)
