"""Training data and scoring for the coincidence model: aligned pairs against mismatched ones.

Negatives are half another clip's soundtrack with these frames, half this clip's soundtrack
shifted in time against its frames (circularly, by at least a quarter of the clip), so the
model must learn synchrony, not only which sounds go with which looks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from audioscope_kedro.metrics import auc_roc
from audioscope_kedro.models.coincidence import CoincidenceModel
from audioscope_kedro.data.batches import ClipSet


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
