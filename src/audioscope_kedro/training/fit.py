"""Audio-visual AudioScope training from the pre-trained separator (used by ``train`` and by
each ``tune`` trial)."""

from __future__ import annotations

import logging
from functools import partial

import pandas as pd
import torch

from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.losses import (
    CLASSIFICATION_LOSSES,
    active_sources,
    mixit,
    supervised_clip_loss,
)
from audioscope_kedro.models.audioscope import AudioScope, AudioScopeConfig
from audioscope_kedro.models.separation import Separator
from audioscope_kedro.data.batches import ClipSet, MoMBatch, MoMSet, random_mom_batch
from audioscope_kedro.evaluation.runner import run_on_moms, validation_figures
from audioscope_kedro.training.loop import (
    CheckpointStore,
    LoopSettings,
    config_fingerprint,
    state_fingerprint,
    train_loop,
)

log = logging.getLogger(__name__)


def model_config(
    model_params: dict, clip_store: ClipStore, clip_seconds: float
) -> AudioScopeConfig:
    """The architecture from the parameters; the input format from the clip store."""
    s = clip_store.settings
    return AudioScopeConfig.from_dict(
        {
            **model_params,
            "sample_rate": s.sample_rate,
            "fps": s.fps,
            "frame_height": s.frame_height,
            "frame_width": s.frame_width,
            "clip_seconds": clip_seconds,
        }
    )


def audioscope_step(
    model: AudioScope, batch: MoMBatch, params: dict
) -> tuple[torch.Tensor, dict[str, float]]:
    """MixIT + on-screen classification on MixIT pseudo-labels (+ supervised where labelled)."""
    out = model(batch.mixture, batch.frames)
    separation, assignment = mixit(out.sources, batch.mix1, batch.mix2)
    active = (
        active_sources(out.sources, params["active_threshold_db"])
        if params["mask_inactive"]
        else None
    )
    classify = CLASSIFICATION_LOSSES[params["classification_loss"]]
    weight = batch.weight if params["coincidence_weighting"] else torch.ones_like(batch.weight)
    cls = (classify(out.logits, assignment, active) * weight).mean()
    sup = supervised_clip_loss(out.logits, assignment, batch.label, active).mean()
    total = (
        separation.mean()
        + params["classification_weight"] * cls
        + params["supervised_weight"] * sup
    )
    return total, {"mixit": separation.mean().item(), "cls": cls.item(), "sup": sup.item()}


def training_clips(
    clip_store: ClipStore, coincidence_scores: pd.DataFrame, params: dict
) -> ClipSet:
    scores = coincidence_scores.set_index("clip_id")
    ids = None
    if params["use_coincidence_filter"]:
        ids = scores.index[scores["kept"] & (scores["split"] == "train")].tolist()
        if len(ids) < 2:
            raise ValueError(
                f"only {len(ids)} training clips pass the coincidence filter; lower "
                "coincidence.threshold or set train.use_coincidence_filter: false"
            )
    return ClipSet.select(
        clip_store,
        params["clip_seconds"],
        clip_ids=ids,
        splits=("train",),
        weights=scores["coincidence_score"],
    )


def fit_audioscope(
    clip_store: ClipStore,
    mom_table: pd.DataFrame,
    coincidence_scores: pd.DataFrame,
    pretrained_separator: Separator,
    checkpoints: CheckpointStore,
    params: dict,
    model_params: dict,
    on_validate=None,
    desc: str = "train",
) -> tuple[AudioScope, pd.DataFrame]:
    """Train (or resume) AudioScope; returns the model and the validation curve."""
    torch.manual_seed(params["seed"])
    config = model_config(model_params, clip_store, params["clip_seconds"])
    model = AudioScope(config)
    if params["init_from_pretrained"]:
        if pretrained_separator.config != config.separator:
            raise ValueError(
                "the pre-trained separator was built with another separator config "
                f"({pretrained_separator.config}) than model.separator ({config.separator}): rerun pretrain_audio"
            )
        model.separator.load_state_dict(pretrained_separator.state_dict())
    clips = training_clips(clip_store, coincidence_scores, params)
    log.info("training on %d clips", len(clips))
    settings = LoopSettings.from_params(params["loop"])
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    val = MoMSet.from_table(
        clip_store, mom_table, params["clip_seconds"], params["validation_split"]
    )

    def validate(m: AudioScope) -> dict:
        return validation_figures(
            run_on_moms(m, val, params["eval_batch_size"]), params.get("validation_target_db")
        )

    curve = train_loop(
        model,
        optimizer,
        partial(audioscope_step, params=params),
        lambda step: random_mom_batch(
            clips, params["batch_size"], params["seed"], step, params.get("crop_seconds")
        ),
        settings,
        checkpoints,
        validate,
        desc=desc,
        fingerprint=config_fingerprint(
            params, config.to_dict(), len(clips), state_fingerprint(pretrained_separator)
        ),
        on_validate=on_validate,
    )
    return model, pd.DataFrame(curve)


def apply_tuned_params(params: dict, model_params: dict, tuned: dict) -> tuple[dict, dict]:
    """``train`` and ``model`` parameters with the best ``tune`` trial's values laid over them."""

    def merge(base: dict, extra: dict) -> dict:
        out = dict(base)
        for key, value in extra.items():
            out[key] = merge(out.get(key, {}), value) if isinstance(value, dict) else value
        return out

    return merge(params, tuned.get("train", {})), merge(model_params, tuned.get("model", {}))
