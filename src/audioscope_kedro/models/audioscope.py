"""The AudioScope model: separation, embeddings, audio-visual attention, on-screen classifier.

``forward(mixture [B, T], frames [B, F, H, W, 3]) -> AudioScopeOutput`` with separated
``sources [B, M, T]``, on-screen ``logits [B, M]``, and the on-screen and off-screen estimates
``[B, T]`` (``on = sum_m sigmoid(logit_m) * s_m``, ``off = mixture - on``). No loss is computed
here: losses live in :mod:`audioscope_kedro.losses`.

A trained model is a folder: ``model.pt`` (``state_dict``), ``config.json`` (everything needed to
rebuild the module), and later ``calibration.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from audioscope_kedro.models.attention import AttentionConfig, build_attention
from audioscope_kedro.models.embeddings import AudioEmbedding, EmbeddingConfig, ImageEmbedding
from audioscope_kedro.models.separation import Separator, SeparatorConfig

WEIGHTS_FILE = "model.pt"
CONFIG_FILE = "config.json"


@dataclass
class AudioScopeConfig:
    sample_rate: int = 16000
    fps: float = 8.0
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
        embedding = dict(data.get("embedding", {}))
        if "image_channels" in embedding:
            embedding["image_channels"] = tuple(embedding["image_channels"])
        return cls(
            sample_rate=data.get("sample_rate", 16000),
            fps=data.get("fps", 8.0),
            separator=SeparatorConfig(**data.get("separator", {})),
            embedding=EmbeddingConfig(**embedding),
            attention=AttentionConfig(**data.get("attention", {})),
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
        self.classifier = OnScreenClassifier(config.embedding.dim)

    def classify(self, sources: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """On-screen logits ``[B, M]`` of given sources ``[B, M, T]`` for ``frames``."""
        video = self.image_embedding(frames)  # [B, F, P, D]
        audio = self.audio_embedding(sources, num_frames=frames.shape[1])  # [B, M, F, D]
        return self.classifier(self.attention(audio, video))

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
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tmp_w, tmp_c = folder / f".{WEIGHTS_FILE}.tmp", folder / f".{CONFIG_FILE}.tmp"
        torch.save(self.state_dict(), tmp_w)
        tmp_c.write_text(json.dumps(self.config.to_dict(), indent=2))
        tmp_w.replace(folder / WEIGHTS_FILE)
        tmp_c.replace(folder / CONFIG_FILE)

    @classmethod
    def load(cls, folder: str | Path, map_location: str | torch.device = "cpu") -> AudioScope:
        """Rebuild from ``config.json`` and load ``model.pt`` with ``weights_only=True``.

        A checkpoint from another config fails with a message naming the folder and the
        mismatched parameters, not a bare ``size mismatch``."""
        folder = Path(folder)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (folder / name).exists():
                raise FileNotFoundError(
                    f"{folder} is not an AudioScope model folder (missing {name})"
                )
        model = cls(AudioScopeConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text())))
        state = torch.load(folder / WEIGHTS_FILE, map_location=map_location, weights_only=True)
        check_state_dict(model, state, str(folder))
        model.load_state_dict(state)
        return model


def check_state_dict(model: nn.Module, state: dict, source: str) -> None:
    """Raise ``ValueError`` listing missing, unexpected and mis-shaped parameters."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append(
                "shape mismatch "
                + ", ".join(
                    f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shapes[:5]
                )
            )
        raise ValueError(
            f"checkpoint {source} does not match this model config: " + "; ".join(parts)
        )
