"""Recipe: audio-only pre-training of the separation network (AudioScopeV2).

MixIT on mixtures of two random clips' soundtracks; validation is the oracle-selection SI-SNR
of the sources against the on-screen clip of the validation MoMs: how well it separates,
whatever a classifier later keeps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd
import torch

from audioscope_kedro.data.batches import ClipSet, MoMBatch, MoMSet, random_mom_batch
from audioscope_kedro.data.lists import MomKind
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.losses import mixit
from audioscope_kedro.metrics import oracle_selection_si_snr
from audioscope_kedro.models.separation import Separator, SeparatorConfig
from audioscope_kedro.training.checkpoints import (
    CheckpointStore,
    config_fingerprint,
    trained_settings,
)
from audioscope_kedro.training.launch import DistributedSettings
from audioscope_kedro.training.loop import LoopSettings, train_loop
from audioscope_kedro.training.sharding import gather_in_order, rank_rows, shard_moms
from audioscope_kedro.training.stream_batches import (
    BatchReader,
    StreamSettings,
    fingerprint_settings,
    stream_source,
    webdataset_root,
)


@dataclass(frozen=True)
class PretrainParams:
    """The ``pretrain_audio`` parameter block."""

    loop: LoopSettings
    seed: int = 0
    crop_seconds: float | None = None  # train on random crops of this length (None: whole clips)
    batch_size: int = 16
    train_splits: tuple[str, ...] = ("train",)  # clips whose random pairs make the MoMs
    validation_split: str = "validate"
    # random_access: batch s a pure function of (seed, s), any store; stream: the WebDataset
    # store's shards read in sequence, every clip once an epoch (docs/scale.md)
    reader: BatchReader = BatchReader.RANDOM_ACCESS
    stream: StreamSettings = field(default_factory=StreamSettings)
    # how the run computes, not what (not in the checkpoint fingerprint; docs/scale.md)
    device: str = "auto"  # cpu, cuda, cuda:<n>, auto (CUDA when present)
    bf16: bool = True  # bf16 autocast of the training step on CUDA; ignored on the CPU
    distributed: DistributedSettings = field(default_factory=DistributedSettings)


def mixit_step(separator: Separator, batch: MoMBatch) -> tuple[torch.Tensor, dict[str, float]]:
    loss, _ = mixit(separator(batch.mixture), batch.mix1, batch.mix2)
    return loss.mean(), {"mixit": loss.mean().item()}


def pretrain_separator(
    clip_store: ClipStore,
    mom_table: pd.DataFrame,
    checkpoints: CheckpointStore,
    params: PretrainParams,
    config: SeparatorConfig,
    clip_seconds: float,
    code_version: str | None = None,
) -> tuple[Separator, pd.DataFrame]:
    """Train (or resume) the separation network alone; returns it and the validation curve."""
    streaming = params.reader == BatchReader.STREAM
    root = webdataset_root(clip_store, "pretrain_audio") if streaming else None
    torch.manual_seed(params.seed)
    clips = ClipSet.select(clip_store, clip_seconds, splits=params.train_splits)
    separator = Separator(config)
    val = MoMSet.from_table(clip_store, mom_table, clip_seconds, params.validation_split)

    def random_batch(step: int) -> MoMBatch:  # this process's rows of the global batch
        rows = rank_rows(params.batch_size, "pretrain_audio.batch_size")
        return random_mom_batch(
            clips, params.batch_size, params.seed, step, params.crop_seconds, rows=rows
        )

    make_batch = random_batch
    if streaming:  # the same clips, read from the stream
        make_batch = stream_source(
            root,
            params.stream,
            block="pretrain_audio",
            batch_size=params.batch_size,
            seed=params.seed,
            seconds=clip_seconds,
            crop_seconds=params.crop_seconds,
            splits=params.train_splits,
        )
    curve = train_loop(
        separator,
        mixit_step,
        make_batch,
        params.loop,
        checkpoints,
        lambda sep: validate_separator(sep, val, params.batch_size),
        desc="pretrain_audio",
        fingerprint=config_fingerprint(
            fingerprint_settings(trained_settings(params)),
            asdict(config),
            clip_seconds,
            clip_store.settings.to_dict(),
            len(clips),
        ),
        code_version=code_version,
        device=params.device,
        bf16=params.bf16,
    )
    return separator, pd.DataFrame(curve)


def validate_separator(separator: Separator, moms: MoMSet, batch_size: int) -> dict[str, float]:
    """Mean oracle-selection SI-SNR against clip 1 over the (on, off) MoMs; with several
    processes each separates its share of the batches and the main process averages all the
    values (the others get ``{}``)."""
    mine = shard_moms(moms, batch_size, ((MomKind.ON_OFF,),))
    values = (
        []
        if mine is None
        else [
            oracle_selection_si_snr(separator(b.mixture), b.mix1)
            for _, b in mine.batches(batch_size, MomKind.ON_OFF)
        ]
    )
    every = gather_in_order(values)
    if not every:  # not the main process, or no (on, off) MoM
        return {}
    return {"val_oracle_si_snr": float(torch.cat(every).mean())}
