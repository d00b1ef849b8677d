"""Recipe: audio-visual AudioScope training from the pre-trained separator (``train``, and each
``tune`` trial): MixIT on mixtures of mixtures plus on-screen classification on the MixIT
pseudo-labels, plus a supervised term where human clip labels exist."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import pandas as pd
import torch

from audioscope_kedro.data.batches import ClipSet, MoMBatch, MoMSet, random_mom_batch
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.evaluation.runner import run_on_moms, validation_figures
from audioscope_kedro.losses import ClassificationLoss, active_sources, mixit, supervised_clip_loss
from audioscope_kedro.models.audioscope import AudioScope, AudioScopeConfig
from audioscope_kedro.models.persistence import weights_fingerprint
from audioscope_kedro.models.separation import Separator
from audioscope_kedro.parameters import ParameterError, merge, parse
from audioscope_kedro.training.checkpoints import CheckpointStore, config_fingerprint
from audioscope_kedro.training.loop import LoopSettings, train_loop

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
    use_coincidence_filter: bool = True  # train on the clips the coincidence model kept
    coincidence_weighting: bool = True  # weight each example's pseudo-label loss by its score
    init_from_pretrained: bool = True
    image_weights: str | None = None  # optional local state_dict to start the image network from
    validation_split: str = "validate"
    eval_batch_size: int = 16
    validation_target_db: float | None = 15.0  # also report on-screen SI-SNR calibrated to this
    use_tuned_params: bool = False  # take the best `tune` trial's settings


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
    """MixIT + on-screen classification on MixIT pseudo-labels (+ supervised where labelled)."""
    out = model(batch.mixture, batch.frames)
    separation, assignment = mixit(out.sources, batch.mix1, batch.mix2)
    active = (
        active_sources(out.sources, params.active_threshold_db) if params.mask_inactive else None
    )
    weight = batch.weight if params.coincidence_weighting else torch.ones_like(batch.weight)
    cls = (params.classification_loss(out.logits, assignment, active) * weight).mean()
    sup = supervised_clip_loss(out.logits, assignment, batch.label, active).mean()
    total = separation.mean() + params.classification_weight * cls + params.supervised_weight * sup
    return total, {"mixit": separation.mean().item(), "cls": cls.item(), "sup": sup.item()}


def training_clips(
    clip_store: ClipStore, coincidence_scores: pd.DataFrame, params: TrainParams, seconds: float
) -> ClipSet:
    scores = coincidence_scores.set_index("clip_id")
    ids = None
    if params.use_coincidence_filter:
        ids = scores.index[scores["kept"] & (scores["split"] == "train")].tolist()
        if len(ids) < 2:
            raise ValueError(
                f"only {len(ids)} training clips pass the coincidence filter; lower "
                "coincidence.threshold or set train.use_coincidence_filter: false"
            )
    return ClipSet.select(
        clip_store, seconds, clip_ids=ids, splits=("train",), weights=scores["coincidence_score"]
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
    clips = training_clips(clip_store, coincidence_scores, params, config.clip_seconds)
    log.info("training on %d clips", len(clips))
    val = MoMSet.from_table(clip_store, mom_table, config.clip_seconds, params.validation_split)

    def validate(m: AudioScope) -> dict:
        outputs = run_on_moms(m, val, params.eval_batch_size)
        return validation_figures(outputs, params.validation_target_db)

    curve = train_loop(
        model,
        partial(audioscope_step, params=params),
        lambda step: random_mom_batch(
            clips, params.batch_size, params.seed, step, params.crop_seconds
        ),
        params.loop,
        checkpoints,
        validate,
        desc=desc,
        fingerprint=config_fingerprint(
            asdict(params),
            config.to_dict(),
            len(clips),
            weights_fingerprint(pretrained_separator),
            weights_fingerprint(model.image_embedding) if params.image_weights else None,
        ),
        on_validate=on_validate,
        code_version=code_version,
    )
    return model, pd.DataFrame(curve)


def training_setup(
    train_params: dict[str, Any],
    model_params: dict[str, Any],
    tuned: dict[str, Any],
    clip_store: ClipStore,
    clip_seconds: float,
) -> tuple[TrainParams, AudioScopeConfig]:
    """The ``train`` settings and the model config from their parameter blocks; with
    ``train.use_tuned_params`` the best ``tune`` trial's values (``tuned``) laid over them."""
    if parse(TrainParams, train_params, "train").use_tuned_params:
        if not tuned:
            raise ValueError(
                "train.use_tuned_params is true but there is no tune result: "
                "run `kedro run --pipeline tune` first"
            )
        log.info("using tuned parameters %s", tuned)
        train_params, model_params = with_tuned(train_params, model_params, tuned)
    config = model_config(model_params, clip_store, clip_seconds)
    return parse(TrainParams, train_params, "train"), config


def with_tuned(
    train_params: dict[str, Any], model_params: dict[str, Any], tuned: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``train`` and ``model`` parameter blocks with a ``tune`` result's overrides laid over."""
    return merge(train_params, tuned.get("train", {})), merge(model_params, tuned.get("model", {}))
