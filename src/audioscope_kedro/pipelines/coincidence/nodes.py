"""Nodes of ``coincidence``: train the audio-visual coincidence models (one per held-out fold),
score every clip, and filter the training clips."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import pandas as pd
from torch import nn

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
from audioscope_kedro.training.launch import run

log = logging.getLogger(__name__)


def train_coincidence_models(
    clip_store: ClipStore, checkpoints: CheckpointStore, params: dict, clip_seconds: float
) -> tuple[dict[str, CoincidenceModel], pd.DataFrame]:
    """One model per fold of the training clips, on aligned against mismatched (other clip,
    time-shifted) pairs of the other folds; the held-out curve. With
    ``coincidence.distributed.nproc_per_node`` > 1 trained on that many DDP workers."""
    settings = parse(CoincidenceParams, params, "coincidence")
    return run(
        settings.distributed,
        train_coincidence,
        clip_store,
        checkpoints,
        settings,
        clip_seconds,
        source_fingerprint(__package__),
    )


def score_and_filter_clips(
    clip_store: ClipStore,
    models: Mapping[str, CoincidenceModel | Callable[[], CoincidenceModel]],
    params: dict,
    clip_seconds: float,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Coincidence probability of every clip (a training clip by the model that did not train
    on it); the training clips AudioScope trains on as a clip list; the report (held-out AUC,
    counts). ``models`` as the partitioned model folder loads them (lazily) or in memory."""
    settings = parse(CoincidenceParams, params, "coincidence")
    loaded = {k: m if isinstance(m, nn.Module) else m() for k, m in models.items()}
    table, kept, report = score_and_filter(clip_store, loaded, settings, clip_seconds)
    log.info(
        "coincidence: held-out AUC %s over %d folds; filter %s: %d of %d training clips kept "
        "(%d labelled, always kept)",
        report["held_out_auc_roc"],
        report["folds"],
        "on" if report["filter"] else "off",
        report["train_clips_kept"],
        report["train_clips"],
        report["train_clips_labelled"],
    )
    return table, kept, report
