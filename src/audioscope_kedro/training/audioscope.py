"""Recipe: audio-visual AudioScope training from the pre-trained separator (``train``, and each
``tune`` trial): MixIT on mixtures of mixtures plus on-screen classification, on the MixIT
pseudo-labels for unlabelled clips and on the human label for labelled ones (never both).

The training clips are those the ``coincidence`` stage kept (its ``kept`` column): every
labelled training clip, and the unlabelled ones that pass its filter when
``coincidence.filter`` is on (AudioScope V1), all of them when it is off (AudioScopeV2)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import pandas as pd
import torch

from audioscope_kedro import device as devices
from audioscope_kedro.data.batches import ClipSet, MoMBatch, MoMSet, random_mom_batch
from audioscope_kedro.data.lists import Split
from audioscope_kedro.data.picture_augmentation import PictureAugmentation, augment_pictures
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.evaluation.runner import (
    OFF_SCREEN_KINDS,
    ON_SCREEN_KINDS,
    MoMOutputs,
    run_on_moms,
    validation_figures,
)
from audioscope_kedro.losses import ClassificationLoss, active_sources, classification_terms, mixit
from audioscope_kedro.models.audioscope import AudioScope, AudioScopeConfig
from audioscope_kedro.models.persistence import weights_fingerprint
from audioscope_kedro.models.separation import Separator
from audioscope_kedro.parameters import ParameterError, merge, parse
from audioscope_kedro.training.checkpoints import (
    CheckpointStore,
    config_fingerprint,
    trained_settings,
)
from audioscope_kedro.training.launch import DistributedSettings
from audioscope_kedro.training.loop import LoopSettings, map_batches, train_loop
from audioscope_kedro.training.sharding import rank_rows, shard_moms
from audioscope_kedro.training.stream_batches import (
    BatchReader,
    StreamSettings,
    fingerprint_settings,
    stream_source,
    webdataset_root,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainParams:
    """The ``train`` parameter block."""

    loop: LoopSettings
    seed: int = 0
    crop_seconds: float | None = None  # train on random crops of this length (None: whole clips)
    batch_size: int = 16
    classification_loss: ClassificationLoss = ClassificationLoss.EXACT
    classification_weight: float = 1.0
    supervised_weight: float = 1.0  # weight of the term from human on/off-screen clip labels
    mask_inactive: bool = True  # no classification loss on silent sources
    active_threshold_db: float = -40.0
    # weight each unlabelled example's pseudo-label loss by its coincidence score: not in the
    # papers (docs/model.md, "Coincidence filtering"), off by default
    coincidence_weighting: bool = False
    init_from_pretrained: bool = True
    # learning rate of the pre-trained separator as a fraction of loop.learning_rate: 1 trains
    # everything jointly at one rate; 0 freezes it (docs/model.md, "Training recipe")
    separator_learning_rate_scale: float = 1.0
    image_weights: str | None = None  # optional local state_dict to start the image network from
    # one random look (crop, colour, grey) per training clip, the same for all its frames: not
    # in the papers (docs/model.md, "Picture augmentation"), off by default
    picture_augmentation: PictureAugmentation = field(default_factory=PictureAugmentation)
    validation_split: str = "validate"
    eval_batch_size: int = 16
    validation_target_db: float | None = 15.0  # also report on-screen SI-SNR calibrated to this
    use_tuned_params: bool = False  # take the best `tune` trial's settings
    # random_access: batch s a pure function of (seed, s), any store; stream: the WebDataset
    # store's shards read in sequence, every kept clip once an epoch (docs/scale.md)
    reader: BatchReader = BatchReader.RANDOM_ACCESS
    stream: StreamSettings = field(default_factory=StreamSettings)
    # how the run computes, not what (not in the checkpoint fingerprint; docs/scale.md)
    device: str = "auto"  # cpu, cuda, cuda:<n>, auto (CUDA when present)
    bf16: bool = True  # bf16 autocast of the training step on CUDA; ignored on the CPU
    distributed: DistributedSettings = field(default_factory=DistributedSettings)


def model_config(model_params: dict[str, Any], clip_store: ClipStore, clip_seconds: float):
    """The architecture from the ``model`` parameter block; the input format from the store."""
    for key in ("media", "clip_seconds"):
        if key in model_params:
            raise ParameterError(
                f"model.{key} is not a parameter: it comes from the clip store / clip_seconds"
            )
    config = parse(AudioScopeConfig, model_params, "model")
    return replace(config, media=clip_store.settings.media, clip_seconds=clip_seconds)


def audioscope_step(
    model: AudioScope, batch: MoMBatch, params: TrainParams
) -> tuple[torch.Tensor, dict[str, float]]:
    """MixIT + on-screen classification: on the MixIT pseudo-labels for unlabelled examples,
    on the human label of clip 1 for labelled ones (``losses.classification_terms``). Each
    term is summed over its examples and divided by the batch size."""
    out = model(batch.mixture, batch.frames)
    separation, assignment = mixit(out.sources, batch.mix1, batch.mix2)
    active = (
        active_sources(out.sources, params.active_threshold_db) if params.mask_inactive else None
    )
    pseudo, supervised = classification_terms(
        out.logits,
        assignment,
        batch.label,
        params.classification_loss,
        active,
        batch.weight if params.coincidence_weighting else None,
    )
    cls, sup = pseudo.mean(), supervised.mean()
    total = separation.mean() + params.classification_weight * cls + params.supervised_weight * sup
    return total, {"mixit": separation.mean().item(), "cls": cls.item(), "sup": sup.item()}


def new_looks(step: int, batch: MoMBatch, params: TrainParams) -> MoMBatch:
    """``batch`` (this process's rows of the global batch of ``step``) with its pictures
    augmented (``train.picture_augmentation``)."""
    first_row = rank_rows(params.batch_size, "train.batch_size").start
    frames = augment_pictures(
        batch.frames, params.picture_augmentation, params.seed, step, first_row
    )
    return replace(batch, frames=frames)


def training_clips(
    clip_store: ClipStore, coincidence_scores: pd.DataFrame, seconds: float
) -> ClipSet:
    """The training clips the ``coincidence`` stage kept, weighted by their coincidence score
    (used only with ``train.coincidence_weighting``)."""
    scores = coincidence_scores.set_index("clip_id")
    ids = scores.index[scores["kept"] & (scores["split"] == str(Split.TRAIN))].tolist()
    if len(ids) < 2:
        raise ValueError(
            f"the coincidence stage kept only {len(ids)} training clips (need 2): with "
            "coincidence.filter on, lower coincidence.threshold or set coincidence.filter: false"
        )
    return ClipSet.select(
        clip_store,
        seconds,
        clip_ids=ids,
        splits=(str(Split.TRAIN),),
        weights=scores["coincidence_score"],
    )


def fit_audioscope(
    clip_store: ClipStore,
    mom_table: pd.DataFrame,
    coincidence_scores: pd.DataFrame,
    pretrained_separator: Separator,
    checkpoints: CheckpointStore,
    params: TrainParams,
    config: AudioScopeConfig,
    on_validate=None,
    desc: str = "train",
    code_version: str | None = None,
) -> tuple[AudioScope, pd.DataFrame]:
    """Train (or resume) AudioScope; returns the model and the validation curve."""
    streaming = params.reader == BatchReader.STREAM
    root = webdataset_root(clip_store, "train") if streaming else None
    torch.manual_seed(params.seed)
    model = AudioScope(config)
    if params.init_from_pretrained:
        if pretrained_separator.config != config.separator:
            raise ValueError(
                "the pre-trained separator was built with another separator config "
                f"({pretrained_separator.config}) than model.separator ({config.separator}): "
                "rerun pretrain_audio"
            )
        model.separator.load_state_dict(pretrained_separator.state_dict())
    if params.image_weights:
        model.image_embedding.load_weights(params.image_weights)
    clips = training_clips(clip_store, coincidence_scores, config.clip_seconds)
    if devices.is_main():
        log.info(
            "training on %d clips, %d of them human-labelled", len(clips), (clips.labels >= 0).sum()
        )
    val = MoMSet.from_table(clip_store, mom_table, config.clip_seconds, params.validation_split)

    def validate(m: AudioScope) -> dict:
        return validate_audioscope(m, val, params.eval_batch_size, params.validation_target_db)

    def random_batch(step: int) -> MoMBatch:  # this process's rows of the global batch
        rows = rank_rows(params.batch_size, "train.batch_size")
        return random_mom_batch(
            clips, params.batch_size, params.seed, step, params.crop_seconds, rows=rows
        )

    make_batch = random_batch
    if streaming:  # the same clips and weights, read from the stream
        make_batch = stream_source(
            root,
            params.stream,
            block="train",
            batch_size=params.batch_size,
            seed=params.seed,
            seconds=config.clip_seconds,
            crop_seconds=params.crop_seconds,
            splits=(str(Split.TRAIN),),
            clip_ids=clips.clip_ids,
            weights=dict(zip(clips.clip_ids, clips.weights.tolist(), strict=True)),
        )
    if params.picture_augmentation.enabled:
        make_batch = map_batches(make_batch, partial(new_looks, params=params))
    curve = train_loop(
        model,
        partial(audioscope_step, params=params),
        make_batch,
        params.loop,
        checkpoints,
        validate,
        desc=desc,
        fingerprint=config_fingerprint(
            fingerprint_settings(trained_settings(params)),
            config.to_dict(),
            hashlib.sha1("\n".join(clips.clip_ids).encode()).hexdigest(),  # the training set
            weights_fingerprint(pretrained_separator),
            weights_fingerprint(model.image_embedding) if params.image_weights else None,
        ),
        on_validate=on_validate,
        code_version=code_version,
        lr_scales={"separator": params.separator_learning_rate_scale},
        device=params.device,
        bf16=params.bf16,
    )
    return model, pd.DataFrame(curve)


def validate_audioscope(
    model: AudioScope, moms: MoMSet, batch_size: int, target_db: float | None
) -> dict[str, float]:
    """``evaluation.runner.validation_figures`` of ``model`` on ``moms``; with several
    processes each runs its share of the batches and the main process computes the figures
    from all of them (the others get ``{}``): the figures of one process."""
    mine = shard_moms(moms, batch_size, (ON_SCREEN_KINDS, OFF_SCREEN_KINDS))
    parts = devices.gather(None if mine is None else run_on_moms(model, mine, batch_size))
    if parts is None:
        return {}
    return validation_figures(MoMOutputs.concat([p for p in parts if p is not None]), target_db)


def training_setup(
    train_params: dict[str, Any],
    model_params: dict[str, Any],
    tuned: dict[str, Any],
    clip_store: ClipStore,
    clip_seconds: float,
) -> tuple[TrainParams, AudioScopeConfig]:
    """The ``train`` settings and the model config from their parameter blocks; with
    ``train.use_tuned_params`` the best ``tune`` trial's values (``tuned``) laid over them."""
    if "use_coincidence_filter" in train_params:
        raise ParameterError(
            "train.use_coincidence_filter is now coincidence.filter (the coincidence stage "
            "writes which training clips are kept)"
        )
    if parse(TrainParams, train_params, "train").use_tuned_params:
        if not tuned:
            raise ValueError(
                "train.use_tuned_params is true but there is no tune result: "
                "run `kedro run --pipeline tune` first"
            )
        log.info("using tuned parameters %s", tuned)
        train_params, model_params = with_tuned(train_params, model_params, tuned)
    config = model_config(model_params, clip_store, clip_seconds)
    settings = parse(TrainParams, train_params, "train")
    if settings.reader == BatchReader.STREAM:  # here, before any worker process starts
        webdataset_root(clip_store, "train")
    return settings, config


def with_tuned(
    train_params: dict[str, Any], model_params: dict[str, Any], tuned: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``train`` and ``model`` parameter blocks with a ``tune`` result's overrides laid over."""
    return merge(train_params, tuned.get("train", {})), merge(model_params, tuned.get("model", {}))
