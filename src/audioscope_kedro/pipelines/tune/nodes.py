"""Nodes of ``tune``: an Optuna study over the attention variants and their hyper-parameters."""

from __future__ import annotations

import logging

import pandas as pd

from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.models.separation import Separator
from audioscope_kedro.parameters import parse
from audioscope_kedro.tuning.study import TuneParams, run_study

log = logging.getLogger(__name__)


def tune_attention(
    clip_store: ClipStore,
    mom_table: pd.DataFrame,
    coincidence_scores: pd.DataFrame,
    pretrained_separator: Separator,
    params: dict,
    train_params: dict,
    model_params: dict,
    clip_seconds: float,
) -> tuple[pd.DataFrame, dict]:
    """Run this worker's share of the study; return the trials table and the best trial
    (objective: calibrated on-screen SI-SNR on the validation MoMs, reported at every
    validation so that the pruner can stop weak trials)."""
    return run_study(
        clip_store,
        mom_table,
        coincidence_scores,
        pretrained_separator,
        parse(TuneParams, params, "tune"),
        train_params,
        model_params,
        clip_seconds,
    )
