"""Recipe: the audio-visual coincidence model (Jansen et al. 2020 style), and the clip scores
and filter it gives. Trained on aligned against mismatched pairs.

Negatives are half another clip's soundtrack with these frames, half this clip's soundtrack
shifted in time against its frames (circularly, by at least a quarter of the clip), so the
model must learn synchrony, not only which sounds go with which looks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from audioscope_kedro.data.batches import ClipSet
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.metrics import auc_roc
from audioscope_kedro.models.coincidence import CoincidenceModel
from audioscope_kedro.models.embeddings import EmbeddingConfig
from audioscope_kedro.training.checkpoints import CheckpointStore, config_fingerprint
from audioscope_kedro.training.loop import LoopSettings, train_loop


@dataclass(frozen=True)
class CoincidenceParams:
    """The ``coincidence`` parameter block."""

    loop: LoopSettings
    model: EmbeddingConfig = field(default_factory=EmbeddingConfig)  # its embedding networks
    seed: int = 0
    batch_size: int = 16
    threshold: float = 0.8  # keep training clips scored above this (AudioScope: 0.8)
    validation_split: str = "validate"  # clips it does not train on, for its held-out AUC


def pair_batch(
    clips: ClipSet, batch_size: int, seed: int, step: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(audio [B, T], frames [B, F, H, W, 3], target [B])``; half aligned (target 1)."""
    rng = np.random.default_rng([seed, step, 7])
    n = len(clips)
    which = rng.integers(0, n, batch_size)
    audio, frames = clips.audio(which), clips.frames(which)
    target = torch.ones(batch_size)
    half = batch_size // 2
    for k in range(half, batch_size):
        target[k] = 0.0
        if k % 2 == 0 and n > 1:  # another clip's soundtrack
            other = (which[k] + rng.integers(1, n)) % n
            audio[k] = clips.audio(np.array([other]))[0]
        else:  # the same soundtrack, shifted against the frames
            t = audio.shape[1]
            shift = int(rng.integers(t // 4, t - t // 4 + 1))
            audio[k] = torch.roll(audio[k], shift)
    return audio, frames, target


def coincidence_step(model: CoincidenceModel, batch) -> tuple[torch.Tensor, dict[str, float]]:
    audio, frames, target = batch
    logits = model(audio, frames)
    loss = F.binary_cross_entropy_with_logits(logits, target)
    accuracy = ((logits > 0).float() == target).float().mean()
    return loss, {"loss": loss.item(), "accuracy": accuracy.item()}


def score_clips(model: CoincidenceModel, clips: ClipSet, batch_size: int = 32) -> np.ndarray:
    """Coincidence probability of every clip with its own soundtrack."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(clips), batch_size):
            which = np.arange(start, min(start + batch_size, len(clips)))
            out.append(torch.sigmoid(model(clips.audio(which), clips.frames(which))))
    return torch.cat(out).numpy() if out else np.zeros(0)


def held_out_auc(
    model: CoincidenceModel, clips: ClipSet, seed: int, batches: int = 4, batch_size: int = 32
) -> float:
    """AUC of aligned against mismatched pairs drawn from clips the model was not trained on."""
    model.eval()
    scores, labels = [], []
    with torch.no_grad():
        for b in range(batches):
            audio, frames, target = pair_batch(clips, batch_size, seed + 1000, b)
            scores.append(model(audio, frames).numpy())
            labels.append(target.numpy())
    return auc_roc(np.concatenate(scores), np.concatenate(labels))


def held_out_split_auc(
    model: CoincidenceModel, clip_store: ClipStore, params: CoincidenceParams, clip_seconds: float
) -> float | None:
    """AUC of aligned against mismatched pairs of the validation split; None without two clips."""
    held_out = ClipSet.select(clip_store, clip_seconds, splits=(params.validation_split,))
    return held_out_auc(model, held_out, params.seed) if len(held_out) > 1 else None


def train_coincidence(
    clip_store: ClipStore,
    checkpoints: CheckpointStore,
    params: CoincidenceParams,
    clip_seconds: float,
    code_version: str | None = None,
) -> tuple[CoincidenceModel, pd.DataFrame]:
    """Train (or resume) on aligned against mismatched pairs of the training clips."""
    torch.manual_seed(params.seed)
    clips = ClipSet.select(clip_store, clip_seconds, splits=("train",))
    model = CoincidenceModel(params.model)

    def validate(m: CoincidenceModel) -> dict:
        auc = held_out_split_auc(m, clip_store, params, clip_seconds)
        return {} if auc is None else {"val_auc_roc": auc}

    curve = train_loop(
        model,
        coincidence_step,
        lambda step: pair_batch(clips, params.batch_size, params.seed, step),
        params.loop,
        checkpoints,
        validate,
        desc="coincidence",
        fingerprint=config_fingerprint(
            asdict(params), clip_seconds, clip_store.settings.to_dict(), len(clips)
        ),
        code_version=code_version,
    )
    return model, pd.DataFrame(curve)


def score_and_filter(
    clip_store: ClipStore, model: CoincidenceModel, params: CoincidenceParams, clip_seconds: float
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Coincidence probability of every clip; the training clips above ``threshold`` as an
    AudioScope clip list (plus a score column); and the report (held-out AUC, counts)."""
    every = ClipSet.select(clip_store, clip_seconds)
    table = clip_store.index.iloc[every.rows][
        ["clip_id", "video_path", "start_time", "end_time", "split", "label"]
    ].copy()
    table["coincidence_score"] = score_clips(model, every)
    table["kept"] = table["coincidence_score"] > params.threshold
    train = table[table["split"] == "train"]
    kept = train[train["kept"]][["video_path", "start_time", "end_time", "coincidence_score"]]
    report = {
        "held_out_auc_roc": held_out_split_auc(model, clip_store, params, clip_seconds),
        "threshold": params.threshold,
        "train_clips": int(len(train)),
        "train_clips_kept": int(len(kept)),
        "mean_score_train": float(train["coincidence_score"].mean()) if len(train) else None,
    }
    return table.reset_index(drop=True), kept.reset_index(drop=True), report
