"""Nodes of ``coincidence``: train the audio-visual coincidence model, score and filter clips."""

from __future__ import annotations

import logging

import pandas as pd

from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.models.coincidence import CoincidenceModel
from audioscope_kedro.parameters import parse
from audioscope_kedro.source_closure import source_fingerprint
from audioscope_kedro.training.checkpoints import CheckpointStore
from audioscope_kedro.training.coincidence import (
    CoincidenceParams,
    score_and_filter,
    train_coincidence,
)

log = logging.getLogger(__name__)


def train_coincidence_model(
    clip_store: ClipStore, checkpoints: CheckpointStore, params: dict, clip_seconds: float
) -> tuple[CoincidenceModel, pd.DataFrame]:
    """Aligned against mismatched (other clip, time-shifted) pairs of the training clips."""
    settings = parse(CoincidenceParams, params, "coincidence")
    return train_coincidence(
        clip_store, checkpoints, settings, clip_seconds, source_fingerprint(__package__)
    )


def score_and_filter_clips(
    clip_store: ClipStore, model: CoincidenceModel, params: dict, clip_seconds: float
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Coincidence probability of every clip; the kept training clips as an AudioScope clip
    list (plus a score column); and the report (held-out AUC, counts)."""
    settings = parse(CoincidenceParams, params, "coincidence")
    table, kept, report = score_and_filter(clip_store, model, settings, clip_seconds)
    log.info(
        "coincidence: held-out AUC %s, kept %d of %d training clips",
        report["held_out_auc_roc"],
        report["train_clips_kept"],
        report["train_clips"],
    )
    return table, kept, report
