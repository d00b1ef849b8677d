"""Nodes of ``calibrate``: the operating point that reaches a target off-screen suppression,
and the released model folder (weights, config and the calibration made for them)."""

from __future__ import annotations

import logging

import pandas as pd

from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.evaluation.calibration import Calibration
from audioscope_kedro.evaluation.runner import CalibrateParams, calibrate_model
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.parameters import parse
from audioscope_kedro.release import ReleasedModel

log = logging.getLogger(__name__)


def calibrate_trained_model(
    model: AudioScope, clip_store: ClipStore, mom_table: pd.DataFrame, params: dict
) -> tuple[Calibration, pd.DataFrame]:
    """``calibration.json`` (the point, the target, whether it was reached, the validation
    figures there, the model's fingerprint) and the trade-off curve searched."""
    settings = parse(CalibrateParams, params, "calibrate")
    moms = MoMSet.from_table(
        clip_store, mom_table, model.config.clip_seconds, settings.validation_split
    )
    calibration, curve = calibrate_model(model, moms, settings)
    if not calibration.reached:
        log.warning(
            "calibration: no operating point reaches %.1f dB of suppression; using the strongest",
            settings.target_suppression_db,
        )
    log.info("calibration: %s", calibration.to_json())
    return calibration, pd.DataFrame(curve)


def assemble_release(model: AudioScope, calibration: Calibration) -> ReleasedModel:
    """The released model folder; refuses a calibration made for other weights."""
    return ReleasedModel.assemble(model, calibration)
