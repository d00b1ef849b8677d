"""Nodes of ``train``: audio-visual AudioScope training from the pre-trained separator."""

from __future__ import annotations

import pandas as pd

from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.models.separation import Separator
from audioscope_kedro.source_closure import source_fingerprint
from audioscope_kedro.training.audioscope import fit_audioscope, training_setup
from audioscope_kedro.training.checkpoints import CheckpointStore
from audioscope_kedro.training.launch import run


def train_audioscope(
    clip_store: ClipStore,
    mom_table: pd.DataFrame,
    coincidence_scores: pd.DataFrame,
    pretrained_separator: Separator,
    checkpoints: CheckpointStore,
    tuned_params: dict,
    params: dict,
    model_params: dict,
    clip_seconds: float,
) -> tuple[AudioScope, pd.DataFrame]:
    """MixIT + on-screen classification; with ``train.use_tuned_params`` the best ``tune``
    trial's attention variant and hyper-parameters replace those of the parameter files. With
    ``train.distributed.nproc_per_node`` > 1 the training runs on that many DDP workers."""
    settings, config = training_setup(params, model_params, tuned_params, clip_store, clip_seconds)
    return run(
        settings.distributed,
        fit_audioscope,
        clip_store,
        mom_table,
        coincidence_scores,
        pretrained_separator,
        checkpoints,
        settings,
        config,
        code_version=source_fingerprint(__package__),
    )
