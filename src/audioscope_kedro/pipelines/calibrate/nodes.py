"""Nodes of ``calibrate``: the operating point that reaches a target off-screen suppression."""

from __future__ import annotations

import logging

import pandas as pd

from audioscope_kedro.evaluation.calibration import calibrate
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.evaluation.runner import figures_at, run_on_moms

log = logging.getLogger(__name__)


def calibrate_model(
    model: AudioScope, clip_store: ClipStore, mom_table: pd.DataFrame, params: dict
) -> tuple[dict, pd.DataFrame]:
    """Search the operating points on the validation MoMs; returns ``calibration.json`` (the
    point, the target, whether it was reached, the validation figures there) and the curve."""
    moms = MoMSet.from_table(clip_store, mom_table, model.config.clip_seconds, params["split"])
    outputs = run_on_moms(model, moms, params["batch_size"])
    target = float(params["target_suppression_db"])
    point, curve, reached = calibrate(
        outputs.on_logits,
        outputs.on_stats,
        outputs.off_logits,
        outputs.off_stats,
        target,
        params["kind"],
    )
    if not reached:
        log.warning(
            "calibration: no operating point reaches %.1f dB of suppression; using the strongest",
            target,
        )
    calibration = {
        **point.to_dict(),
        "target_suppression_db": target,
        "reached": reached,
        "split": params["split"],
        "validation": figures_at(outputs, point),
    }
    log.info("calibration: %s", calibration)
    return calibration, pd.DataFrame(curve)
