"""TDCN++ masking separation network (Kavalerov et al. 2019; as used by MixIT and AudioScope).

``mixture [B, T] -> sources [B, M, T]``, mixture-consistent: the sources sum to the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SeparatorConfig:
    num_sources: int = 4
    basis: str = "learned"  # "learned" (conv encoder/decoder) or "stft"
    basis_size: int = 256  # learned: filters; stft: FFT size (bins = basis_size // 2 + 1)
    window: int = 256  # samples per analysis frame
    hop: int = 64
    bottleneck: int = 64
    hidden: int = 128
    blocks: int = 8  # dilated blocks per repeat, dilations 1, 2, 4, ...
    repeats: int = 1
    kernel: int = 3


def mixture_consistency(sources: torch.Tensor, mixture: torch.Tensor) -> torch.Tensor:
    """Project ``sources [B, M, T]`` so that they sum to ``mixture [B, T]``: the residual is
    shared equally among the sources (Wisdom et al. 2019, unweighted projection)."""
    residual = mixture - sources.sum(dim=1)
    return sources + residual.unsqueeze(1) / sources.shape[1]


class GlobalLayerNorm(nn.Module):
    """Normalise over channels and time (Conv-TasNet gLN), per example."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.GroupNorm(1, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class DilatedBlock(nn.Module):
    """1x1 conv -> PReLU -> gLN -> depthwise dilated conv -> PReLU -> gLN -> 1x1 conv."""

    def __init__(self, channels: int, hidden: int, kernel: int, dilation: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, hidden, 1),
            nn.PReLU(),
            GlobalLayerNorm(hidden),
            nn.Conv1d(
                hidden,
                hidden,
                kernel,
                dilation=dilation,
                padding=dilation * (kernel - 1) // 2,
                groups=hidden,
            ),
            nn.PReLU(),
            GlobalLayerNorm(hidden),
            nn.Conv1d(hidden, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TDCNpp(nn.Module):
    """Stacked dilated blocks with learnable residual scales (TDCN++: scales start small so
    deep stacks train) and long skip connections from each block to the same block of the
    next repeat."""

    def __init__(self, channels: int, hidden: int, kernel: int, blocks: int, repeats: int):
        super().__init__()
        self.blocks = nn.ModuleList(
            DilatedBlock(channels, hidden, kernel, 2**b)
            for _ in range(repeats)
            for b in range(blocks)
        )
        self.scales = nn.Parameter(
            torch.full((len(self.blocks),), 0.9) ** torch.arange(len(self.blocks))
        )
        self.per_repeat = blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            if i >= self.per_repeat:  # long skip from the same block one repeat earlier
                x = x + skips[i - self.per_repeat]
            x = x + self.scales[i] * block(x)
            skips.append(x)
        return x


class Separator(nn.Module):
    """Masking network on a learned or STFT basis; ``forward(mixture [B, T]) -> [B, M, T]``."""

    def __init__(self, config: SeparatorConfig):
        super().__init__()
        self.config = c = config
        if c.basis not in ("learned", "stft"):
            raise ValueError(f"basis must be 'learned' or 'stft', not {c.basis!r}")
        if c.basis == "learned":
            self.encoder = nn.Conv1d(1, c.basis_size, c.window, stride=c.hop, bias=False)
            self.decoder = nn.ConvTranspose1d(c.basis_size, 1, c.window, stride=c.hop, bias=False)
            features = c.basis_size
        else:
            self.register_buffer("stft_window", torch.hann_window(c.window), persistent=False)
            features = c.basis_size // 2 + 1
        self.features = features
        self.input_norm = GlobalLayerNorm(features)
        self.bottleneck = nn.Conv1d(features, c.bottleneck, 1)
        self.tdcn = TDCNpp(c.bottleneck, c.hidden, c.kernel, c.blocks, c.repeats)
        self.mask = nn.Conv1d(c.bottleneck, c.num_sources * features, 1)

    def _analyse(self, mixture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        c = self.config
        if c.basis == "learned":
            return torch.relu(self.encoder(mixture.unsqueeze(1))), None
        spec = torch.stft(
            mixture, c.basis_size, c.hop, c.window, self.stft_window, return_complex=True
        )
        return spec.abs(), spec

    def _synthesise(
        self, masks: torch.Tensor, features: torch.Tensor, spec: torch.Tensor | None, length: int
    ) -> torch.Tensor:
        c = self.config
        b, m, f, n = masks.shape
        if c.basis == "learned":
            out = self.decoder((masks * features.unsqueeze(1)).reshape(b * m, f, n)).squeeze(1)
        else:
            # mask * |X| with the mixture phase is mask * X: no division by |X| needed
            complex_src = (masks * spec.unsqueeze(1)).reshape(b * m, f, n)
            out = torch.istft(
                complex_src, c.basis_size, c.hop, c.window, self.stft_window, length=length
            )
        out = out[..., :length]
        if out.shape[-1] < length:
            out = nn.functional.pad(out, (0, length - out.shape[-1]))
        return out.reshape(b, m, length)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        c = self.config
        length = mixture.shape[-1]
        pad = (-(length - c.window)) % c.hop if length > c.window else c.window - length
        padded = nn.functional.pad(mixture, (0, pad))
        features, spec = self._analyse(padded)
        hidden = self.tdcn(self.bottleneck(self.input_norm(features)))
        masks = torch.sigmoid(self.mask(hidden)).reshape(
            mixture.shape[0], c.num_sources, self.features, -1
        )
        sources = self._synthesise(masks, features, spec, padded.shape[-1])[..., :length]
        return mixture_consistency(sources, mixture)
