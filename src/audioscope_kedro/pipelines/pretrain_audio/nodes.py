"""Nodes of ``pretrain_audio``: audio-only MixIT on mixtures of random clip pairs (V2)."""

from __future__ import annotations

import pandas as pd
import torch

from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.losses import mixit
from audioscope_kedro.metrics import oracle_selection_si_snr
from audioscope_kedro.models.separation import Separator, SeparatorConfig
from audioscope_kedro.data.batches import ClipSet, MoMBatch, MoMSet, random_mom_batch
from audioscope_kedro.training.loop import (
    CheckpointStore,
    LoopSettings,
    config_fingerprint,
    train_loop,
)


def mixit_step(separator: Separator, batch: MoMBatch) -> tuple[torch.Tensor, dict[str, float]]:
    loss, _ = mixit(separator(batch.mixture), batch.mix1, batch.mix2)
    return loss.mean(), {"mixit": loss.mean().item()}


def pretrain_separator(
    clip_store: ClipStore,
    mom_table: pd.DataFrame,
    checkpoints: CheckpointStore,
    params: dict,
    model_params: dict,
) -> tuple[Separator, pd.DataFrame]:
    """Train the separation network alone; validation: the oracle-selection SI-SNR of its
    sources against the on-screen clip of the validation on+off MoMs (how well it separates)."""
    torch.manual_seed(params["seed"])
    clips = ClipSet.select(clip_store, params["clip_seconds"], splits=tuple(params["splits"]))
    separator = Separator(SeparatorConfig(**model_params["separator"]))
    settings = LoopSettings.from_params(params["loop"])
    optimizer = torch.optim.Adam(separator.parameters(), lr=settings.learning_rate)
    val = MoMSet.from_table(
        clip_store, mom_table, params["clip_seconds"], params["validation_split"]
    )

    def validate(sep: Separator) -> dict:
        values = [
            oracle_selection_si_snr(sep(b.mixture), b.mix1)
            for _, b in val.batches(params["batch_size"], "on_off")
        ]
        return {"val_oracle_si_snr": float(torch.cat(values).mean())} if values else {}

    curve = train_loop(
        separator,
        optimizer,
        mixit_step,
        lambda step: random_mom_batch(
            clips, params["batch_size"], params["seed"], step, params.get("crop_seconds")
        ),
        settings,
        checkpoints,
        validate,
        desc="pretrain_audio",
        fingerprint=config_fingerprint(
            params, model_params["separator"], clip_store.settings.to_dict(), len(clips)
        ),
    )
    return separator, pd.DataFrame(curve)
