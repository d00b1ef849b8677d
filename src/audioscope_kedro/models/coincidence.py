"""Unsupervised audio-visual coincidence model (in the spirit of Jansen et al. 2020).

``forward(audio [B, T], frames [B, F, H, W, 3]) -> logits [B]``: do this soundtrack and these
frames come from the same moment of the same video? Per frame, the audio embedding is compared
(cosine) with every spatial position of the image embedding; the best-matching position counts
(a sounding object is somewhere in the frame); the frame scores are averaged over time.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from audioscope_kedro.models.embeddings import AudioEmbedding, EmbeddingConfig, ImageEmbedding


class CoincidenceModel(nn.Module):
    def __init__(self, config: EmbeddingConfig):
        super().__init__()
        self.config = config
        self.audio = AudioEmbedding(config)
        self.image = ImageEmbedding(config)
        self.scale = nn.Parameter(torch.tensor(10.0))
        self.bias = nn.Parameter(torch.tensor(-5.0))

    def forward(self, audio: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        a = self.audio(audio.unsqueeze(1), num_frames=frames.shape[1])[:, 0]  # [B, F, D]
        v = self.image(frames)  # [B, F, P, D]
        sim = F.cosine_similarity(a.unsqueeze(2), v, dim=-1)  # [B, F, P]
        return self.scale * sim.amax(dim=-1).mean(dim=-1) + self.bias
