"""Audio embedding per separated source over time, image embedding per frame and position.

- ``AudioEmbedding``: ``sources [B, M, T] -> [B, M, F, D]`` (F video frames: audio features are
  pooled onto the video time axis so the two modalities align).
- ``ImageEmbedding``: ``frames [B, F, H, W, 3]`` (uint8 or float in [0, 1]) ``-> [B, F, P, D]``
  with ``P = h * w`` spatial positions. A small MobileNet-style CNN trained from scratch;
  training may start it from a local ``state_dict`` file (nothing is downloaded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class EmbeddingConfig:
    dim: int = 64
    audio_window: int = 256
    audio_hop: int = 128
    audio_channels: int = 64
    image_channels: tuple[int, ...] = (16, 32, 64)  # one stride-2 stage each
    # Give the image network each frame's difference from the previous frame as 3 more input
    # channels: what moves or brightens with a sound stands out (sync is the strongest cue).
    motion_features: bool = True

    @classmethod
    def from_dict(cls, data: dict) -> EmbeddingConfig:
        data = dict(data)
        data.pop("image_weights", None)  # config.json of older versions: now a training option
        if "image_channels" in data:  # JSON and YAML give lists
            data["image_channels"] = tuple(data["image_channels"])
        return cls(**data)


class AudioEmbedding(nn.Module):
    def __init__(self, config: EmbeddingConfig):
        super().__init__()
        c = config
        self.encoder = nn.Conv1d(1, c.audio_channels, c.audio_window, stride=c.audio_hop)
        self.net = nn.Sequential(
            nn.GroupNorm(1, c.audio_channels),
            nn.Conv1d(c.audio_channels, c.audio_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(c.audio_channels, c.audio_channels, 3, padding=2, dilation=2),
            nn.ReLU(),
            nn.Conv1d(c.audio_channels, c.dim, 1),
        )
        self.window = c.audio_window

    def forward(self, sources: torch.Tensor, num_frames: int) -> torch.Tensor:
        b, m, t = sources.shape
        x = sources.reshape(b * m, 1, t)
        if t < self.window:
            x = F.pad(x, (0, self.window - t))
        # log-compressed magnitude of a learned basis: level-robust features
        feats = torch.log1p(self.encoder(x).abs())
        feats = self.net(feats)  # [B*M, D, N]
        feats = F.adaptive_avg_pool1d(feats, num_frames)  # onto the video time axis
        return feats.reshape(b, m, -1, num_frames).transpose(2, 3)  # [B, M, F, D]


def _separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """MobileNet depthwise-separable stage. GroupNorm, not BatchNorm: examples of a batch must
    not influence each other (and batches are small on a CPU)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
        nn.GroupNorm(1, c_in),
        nn.ReLU6(),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.GroupNorm(1, c_out),
        nn.ReLU6(),
    )


class ImageEmbedding(nn.Module):
    def __init__(self, config: EmbeddingConfig):
        super().__init__()
        chans = config.image_channels
        self.motion = config.motion_features
        layers: list[nn.Module] = [
            nn.Conv2d(6 if self.motion else 3, chans[0], 3, stride=2, padding=1, bias=False),
            nn.GroupNorm(1, chans[0]),
            nn.ReLU6(),
        ]
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            layers.append(_separable(c_in, c_out, stride=2))
        layers.append(nn.Conv2d(chans[-1], config.dim, 1))
        self.net = nn.Sequential(*layers)

    def load_weights(self, path: str | Path) -> None:
        """Start from a local ``state_dict`` of this network (pre-trained elsewhere). Called by
        training, never by the constructor: a saved model must load on a machine without it."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"image_weights: no file at {path}")
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, f, h, w, _ = frames.shape
        x = frames.float() / 255.0 if not frames.is_floating_point() else frames
        x = x - 0.5
        if self.motion:  # difference from the previous frame; zero for the first one
            diff = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
            x = torch.cat([x, diff], dim=-1)
        x = x.reshape(b * f, h, w, x.shape[-1]).permute(0, 3, 1, 2)
        feats = self.net(x)  # [B*F, D, h, w]
        d = feats.shape[1]
        return feats.reshape(b, f, d, -1).transpose(2, 3)  # [B, F, P, D]
