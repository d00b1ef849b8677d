"""The AudioScope model: separation, embeddings, audio-visual attention, on-screen classifier.

``forward(mixture [B, T], frames [B, F, H, W, 3]) -> AudioScopeOutput`` with separated
``sources [B, M, T]``, on-screen ``logits [B, M]``, and the on-screen and off-screen estimates
``[B, T]`` (``on = sum_m sigmoid(logit_m) * s_m``, ``off = mixture - on``). No loss is computed
here: losses live in :mod:`audioscope_kedro.losses`.

A trained model is a folder: ``model.pt`` (``state_dict``), ``config.json`` (everything needed to
rebuild the module), and later ``calibration.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from audioscope_kedro.media import MediaFormat
from audioscope_kedro.models.attention import (
    AttentionConfig,
    MotionSyncFeatures,
    SyncFeatures,
    build_attention,
)
from audioscope_kedro.models.embeddings import AudioEmbedding, EmbeddingConfig, ImageEmbedding
from audioscope_kedro.models.persistence import load_model, save_model
from audioscope_kedro.models.separation import Separator, SeparatorConfig


@dataclass
class AudioScopeConfig:
    # what the input must look like: the clip store's media format at training time
    media: MediaFormat = field(default_factory=MediaFormat)
    clip_seconds: float = 5.0
    separator: SeparatorConfig = field(default_factory=SeparatorConfig)
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    def __post_init__(self) -> None:
        if self.attention.dim != self.embedding.dim:
            raise ValueError(
                f"attention.dim ({self.attention.dim}) must equal embedding.dim ({self.embedding.dim})"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AudioScopeConfig:
        # An unknown key is an error, not ignored: a config.json of another version or model
        # would otherwise load as a different network than the one that was trained.
        known = {"media", "clip_seconds", "separator", "embedding", "attention"}
        unknown = sorted(set(data) - known - set(MediaFormat.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown keys in the AudioScope configuration: {', '.join(unknown)}")
        media = data.get("media")
        if media is None:  # config.json written before the media format had its own record
            media = {k: data[k] for k in MediaFormat.__dataclass_fields__ if k in data}
        return cls(
            media=MediaFormat(**media),
            clip_seconds=data.get("clip_seconds", 5.0),
            separator=SeparatorConfig(**data.get("separator", {})),
            embedding=EmbeddingConfig.from_dict(data.get("embedding", {})),
            attention=AttentionConfig.from_dict(data.get("attention", {})),
        )


@dataclass
class AudioScopeOutput:
    sources: torch.Tensor  # [B, M, T]
    logits: torch.Tensor  # [B, M]
    on_screen: torch.Tensor  # [B, T]
    off_screen: torch.Tensor  # [B, T]

    @property
    def probabilities(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)


class OnScreenClassifier(nn.Module):
    """Per-source features ``[B, M, D] -> logits [B, M]``."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)


class AudioScope(nn.Module):
    def __init__(self, config: AudioScopeConfig):
        super().__init__()
        self.config = config
        self.separator = Separator(config.separator)
        self.audio_embedding = AudioEmbedding(config.embedding)
        self.image_embedding = ImageEmbedding(config.embedding)
        self.attention = build_attention(config.attention)
        self.sync = SyncFeatures(config.embedding.dim) if config.attention.sync else None
        self.motion_sync = (
            MotionSyncFeatures(config.embedding.dim, cues=config.attention.motion_cues)
            if config.attention.motion_sync
            else None
        )
        self.classifier = OnScreenClassifier(config.embedding.dim)

    def classify(self, sources: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """On-screen logits ``[B, M]`` of given sources ``[B, M, T]`` for ``frames``."""
        video = self.image_embedding(frames)  # [B, F, P, D]
        audio = self.audio_embedding(sources, num_frames=frames.shape[1])  # [B, M, F, D]
        features = self.attention(audio, video)
        if self.sync is not None:
            features = features + self.sync(audio, video)
        if self.motion_sync is not None:
            features = features + self.motion_sync(sources, frames)
        return self.classifier(features)

    def forward(self, mixture: torch.Tensor, frames: torch.Tensor) -> AudioScopeOutput:
        if mixture.dim() != 2 or frames.dim() != 5 or frames.shape[0] != mixture.shape[0]:
            raise ValueError(
                f"expected mixture [B, T] and frames [B, F, H, W, 3], got {tuple(mixture.shape)} and {tuple(frames.shape)}"
            )
        sources = self.separator(mixture)
        logits = self.classify(sources, frames)
        on_screen = (torch.sigmoid(logits).unsqueeze(-1) * sources).sum(dim=1)
        return AudioScopeOutput(sources, logits, on_screen, mixture - on_screen)

    # ------------------------------------------------------------ persistence

    def save(self, folder: str | Path) -> None:
        """Write ``model.pt`` (state_dict) and ``config.json`` into ``folder`` atomically."""
        save_model(self, folder)

    @classmethod
    def load(cls, folder: str | Path, map_location: str = "cpu") -> AudioScope:
        """Rebuild from ``config.json`` and load ``model.pt`` with ``weights_only=True``."""
        return load_model(folder, kind="audioscope", map_location=map_location)
