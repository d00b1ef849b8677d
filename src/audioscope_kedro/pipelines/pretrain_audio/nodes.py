"""Nodes of ``pretrain_audio``: audio-only MixIT pre-training of the separator (V2)."""

from __future__ import annotations

import pandas as pd

from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.models.separation import Separator, SeparatorConfig
from audioscope_kedro.parameters import parse
from audioscope_kedro.source_closure import source_fingerprint
from audioscope_kedro.training.checkpoints import CheckpointStore
from audioscope_kedro.training.launch import run
from audioscope_kedro.training.separator import PretrainParams, pretrain_separator


def pretrain_audio(
    clip_store: ClipStore,
    mom_table: pd.DataFrame,
    checkpoints: CheckpointStore,
    params: dict,
    model_params: dict,
    clip_seconds: float,
) -> tuple[Separator, pd.DataFrame]:
    """The separator and its validation curve (oracle-selection SI-SNR); with
    ``pretrain_audio.distributed.nproc_per_node`` > 1 trained on that many DDP workers."""
    settings = parse(PretrainParams, params, "pretrain_audio")
    return run(
        settings.distributed,
        pretrain_separator,
        clip_store,
        mom_table,
        checkpoints,
        settings,
        parse(SeparatorConfig, model_params.get("separator", {}), "model.separator"),
        clip_seconds,
        code_version=source_fingerprint(__package__),
    )
