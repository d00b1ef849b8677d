"""Nodes of ``coincidence``: train the audio-visual coincidence model, score and filter clips."""

from __future__ import annotations

import logging

import pandas as pd
import torch

from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.models.coincidence import CoincidenceModel
from audioscope_kedro.models.embeddings import EmbeddingConfig
from audioscope_kedro.data.batches import ClipSet
from audioscope_kedro.training.coincidence import (
    coincidence_step,
    held_out_auc,
    pair_batch,
    score_clips,
)
from audioscope_kedro.training.loop import (
    CheckpointStore,
    LoopSettings,
    config_fingerprint,
    train_loop,
)

log = logging.getLogger(__name__)


def _held_out_auc(model: CoincidenceModel, clip_store: ClipStore, params: dict) -> float | None:
    """AUC of aligned against mismatched pairs of the held-out split; None without two clips."""
    held_out = ClipSet.select(
        clip_store, params["clip_seconds"], splits=(params["held_out_split"],)
    )
    return held_out_auc(model, held_out, params["seed"]) if len(held_out) > 1 else None


def train_coincidence_model(
    clip_store: ClipStore, checkpoints: CheckpointStore, params: dict
) -> tuple[CoincidenceModel, pd.DataFrame]:
    """Aligned against mismatched (other clip, time-shifted) pairs of the training clips."""
    torch.manual_seed(params["seed"])
    clips = ClipSet.select(clip_store, params["clip_seconds"], splits=("train",))
    model = CoincidenceModel(EmbeddingConfig.from_dict(params["model"]))
    settings = LoopSettings.from_params(params["loop"])
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)

    def validate(m: CoincidenceModel) -> dict:
        auc = _held_out_auc(m, clip_store, params)
        return {} if auc is None else {"val_auc_roc": auc}

    curve = train_loop(
        model,
        optimizer,
        coincidence_step,
        lambda step: pair_batch(clips, params["batch_size"], params["seed"], step),
        settings,
        checkpoints,
        validate,
        desc="coincidence",
        fingerprint=config_fingerprint(params, clip_store.settings.to_dict(), len(clips)),
    )
    return model, pd.DataFrame(curve)


def score_and_filter_clips(
    clip_store: ClipStore, model: CoincidenceModel, params: dict
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Coincidence probability of every clip; the training clips above ``threshold`` as an
    AudioScope clip list (plus a score column); and the report (held-out AUC, counts)."""
    every = ClipSet.select(clip_store, params["clip_seconds"])
    scores = score_clips(model, every)
    table = clip_store.index.iloc[every.rows][
        ["clip_id", "video_path", "start_time", "end_time", "split", "label"]
    ].copy()
    table["coincidence_score"] = scores
    table["kept"] = table["coincidence_score"] > params["threshold"]
    train = table[table["split"] == "train"]
    kept = train[train["kept"]][["video_path", "start_time", "end_time", "coincidence_score"]]
    report = {
        "held_out_auc_roc": _held_out_auc(model, clip_store, params),
        "threshold": params["threshold"],
        "train_clips": int(len(train)),
        "train_clips_kept": int(len(kept)),
        "mean_score_train": float(train["coincidence_score"].mean()) if len(train) else None,
    }
    log.info(
        "coincidence: held-out AUC %s, kept %d of %d training clips",
        report["held_out_auc_roc"],
        len(kept),
        len(train),
    )
    return table.reset_index(drop=True), kept.reset_index(drop=True), report
