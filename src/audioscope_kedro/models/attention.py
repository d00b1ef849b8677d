"""Audio-visual attention variants behind one registry and one interface.

Every variant maps ``audio [B, M, F, D]`` (per source and video frame) and ``video [B, F, P, D]``
(per frame and spatial position) to per-source features ``[B, M, D]`` for the on-screen
classifier. All attention goes through ``torch.nn.functional.scaled_dot_product_attention``.

- ``pool`` (AudioScope V1): each source's time-pooled embedding queries every spatio-temporal
  video position; the attended video vector is fused with the source embedding.
- ``sa`` (V2 joint self-attention): one self-attention over all ``(M + P) * F`` source and
  position tokens: cost quadratic in clip length.
- ``cma`` (V2 cross-modal): audio tokens attend to all video tokens and video tokens to all
  audio tokens, over the whole clip: quadratic in clip length.
- ``sep_sa`` / ``sep_cma`` (V2 separable): attention over time within each source / position
  stream first (local, ``time_window`` frames), then at each time step self-attention across
  sources+positions (``sep_sa``) or cross-modal attention (``sep_cma``): linear in clip length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class AttentionConfig:
    variant: str = "sep_sa"
    dim: int = 64
    heads: int = 4
    layers: int = 2
    time_window: int = 8  # frames each temporal attention sees in the separable variants
    dropout: float = 0.0


class MultiHeadAttention(nn.Module):
    """Multi-head attention on ``[N, L, D]`` queries and ``[N, S, D]`` keys/values via SDPA."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self, query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        n, length, d = query.shape
        h = self.heads
        q = self.q(query).reshape(n, length, h, d // h).transpose(1, 2)
        k, v = self.kv(context).reshape(n, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(out.transpose(1, 2).reshape(n, length, d))


class Block(nn.Module):
    """Pre-norm transformer block: attention (self or cross) then MLP, both residual."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, cross: bool = False):
        super().__init__()
        self.norm_q, self.norm_mlp = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim) if cross else None
        self.attn = MultiHeadAttention(dim, heads, dropout)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if (context is None) != (self.norm_kv is None):
            raise ValueError("a cross-attention block needs a context, a self-attention block none")
        q = self.norm_q(x)
        kv = q if context is None else self.norm_kv(context)
        x = x + self.attn(q, kv, mask)
        return x + self.mlp(self.norm_mlp(x))


def sinusoidal_positions(num_frames: int, dim: int, device=None) -> torch.Tensor:
    """``[F, D]`` fixed sinusoidal time encodings: any clip length, no learned table."""
    position = torch.arange(num_frames, device=device, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32)
        * (-torch.log(torch.tensor(10000.0)) / dim)
    )
    enc = torch.zeros(num_frames, dim, device=device)
    enc[:, 0::2] = torch.sin(position * freq)
    enc[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return enc


def _time_attention(block: Block, x: torch.Tensor, window: int) -> torch.Tensor:
    """Attention over time within each stream of ``x [B, S, F, D]``, cost O(F * window).

    The clip is cut into chunks of ``window`` frames; each chunk attends to itself and its two
    neighbours, so work grows linearly with F (a dense mask would be quadratic)."""
    b, s, f, d = x.shape
    w = max(1, window)
    n_chunks = -(-f // w)
    pad = n_chunks * w - f
    xs = F.pad(x, (0, 0, 0, pad)).reshape(b * s, n_chunks, w, d)
    # context: previous, own and next chunk
    padded = F.pad(xs, (0, 0, 0, 0, 1, 1))
    context = torch.cat([padded[:, :-2], padded[:, 1:-1], padded[:, 2:]], dim=2)  # [BS, C, 3w, D]
    # mask out padding frames of the context (before frame 0 and after frame F-1)
    frame = torch.arange(-w, (n_chunks + 1) * w, device=x.device)
    ctx_frames = torch.stack([frame[c * w : c * w + 3 * w] for c in range(n_chunks)])  # [C, 3w]
    valid = (ctx_frames >= 0) & (ctx_frames < f)
    out = block(
        xs.reshape(b * s * n_chunks, w, d),
        context.reshape(b * s * n_chunks, 3 * w, d),
        valid.repeat(b * s, 1).unsqueeze(1).unsqueeze(1),
    )
    return out.reshape(b, s, n_chunks * w, d)[:, :, :f]


class AttentionVariant(nn.Module):
    """Interface: ``forward(audio [B, M, F, D], video [B, F, P, D]) -> [B, M, D]``."""

    def __init__(self, config: AttentionConfig):
        super().__init__()
        self.config = config
        self.modality = nn.Parameter(torch.zeros(2, config.dim))
        nn.init.normal_(self.modality, std=0.02)
        # Both streams at unit scale before the time encodings are added: at initialisation
        # the audio embeddings are ~10x smaller than the encodings and would be drowned out.
        self.norm_audio, self.norm_video = nn.LayerNorm(config.dim), nn.LayerNorm(config.dim)

    def _embed(self, audio: torch.Tensor, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add time and modality encodings; video becomes ``[B, P, F, D]`` like audio."""
        if audio.shape[2] != video.shape[1]:
            raise ValueError(f"audio has {audio.shape[2]} frames, video {video.shape[1]}")
        pos = sinusoidal_positions(audio.shape[2], audio.shape[-1], audio.device)
        audio, video = self.norm_audio(audio), self.norm_video(video).transpose(1, 2)
        return audio + pos + self.modality[0], video + pos + self.modality[1]


class PoolAttention(AttentionVariant):
    def __init__(self, config: AttentionConfig):
        super().__init__(config)
        self.blocks = nn.ModuleList(
            Block(config.dim, config.heads, config.dropout, cross=True)
            for _ in range(config.layers)
        )
        self.fuse = nn.Linear(2 * config.dim, config.dim)

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        audio, video = self._embed(audio, video)  # [B, M, F, D], [B, P, F, D]
        b, m, f, d = audio.shape
        query = audio.mean(dim=2)  # [B, M, D]
        context = video.reshape(b, -1, d)  # every spatio-temporal position
        attended = query
        for block in self.blocks:
            attended = block(attended, context)
        return self.fuse(torch.cat([query, attended], dim=-1))


class JointSelfAttention(AttentionVariant):
    def __init__(self, config: AttentionConfig):
        super().__init__(config)
        self.blocks = nn.ModuleList(
            Block(config.dim, config.heads, config.dropout) for _ in range(config.layers)
        )

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        audio, video = self._embed(audio, video)
        b, m, f, d = audio.shape
        tokens = torch.cat([audio, video], dim=1).reshape(b, -1, d)  # [B, (M+P)*F, D]
        for block in self.blocks:
            tokens = block(tokens)
        return tokens.reshape(b, -1, f, d)[:, :m].mean(dim=2)


class CrossModalAttention(AttentionVariant):
    def __init__(self, config: AttentionConfig):
        super().__init__(config)
        self.a2v = nn.ModuleList(
            Block(config.dim, config.heads, config.dropout, cross=True)
            for _ in range(config.layers)
        )
        self.v2a = nn.ModuleList(
            Block(config.dim, config.heads, config.dropout, cross=True)
            for _ in range(config.layers)
        )

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        audio, video = self._embed(audio, video)
        b, m, f, d = audio.shape
        a, v = audio.reshape(b, -1, d), video.reshape(b, -1, d)
        for a2v, v2a in zip(self.a2v, self.v2a, strict=True):
            # video queries audio first, then audio queries the updated video: every block
            # (the last video one included) reaches the source features
            v = v2a(v, a)
            a = a2v(a, v)
        return a.reshape(b, m, f, d).mean(dim=2)


class SeparableAttention(AttentionVariant):
    """Time within each stream (local window), then across streams at each time step."""

    def __init__(self, config: AttentionConfig, cross_modal: bool):
        super().__init__(config)
        self.cross_modal = cross_modal
        n = config.layers
        self.time_blocks = nn.ModuleList(
            Block(config.dim, config.heads, config.dropout, cross=True) for _ in range(n)
        )
        self.step_blocks = nn.ModuleList(
            Block(config.dim, config.heads, config.dropout, cross=cross_modal) for _ in range(n)
        )
        if cross_modal:
            self.step_blocks_v = nn.ModuleList(
                Block(config.dim, config.heads, config.dropout, cross=True) for _ in range(n)
            )

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        audio, video = self._embed(audio, video)
        b, m, f, d = audio.shape
        tokens = torch.cat([audio, video], dim=1)  # [B, M+P, F, D]
        for i in range(self.config.layers):
            tokens = _time_attention(self.time_blocks[i], tokens, self.config.time_window)
            per_step = tokens.transpose(1, 2).reshape(b * f, -1, d)  # [B*F, M+P, D]
            if self.cross_modal:
                a, v = per_step[:, :m], per_step[:, m:]
                v = self.step_blocks_v[i](v, a)
                per_step = torch.cat([self.step_blocks[i](a, v), v], dim=1)
            else:
                per_step = self.step_blocks[i](per_step)
            tokens = per_step.reshape(b, f, -1, d).transpose(1, 2)
        return tokens[:, :m].mean(dim=2)


ATTENTION_VARIANTS = {
    "pool": PoolAttention,
    "sa": JointSelfAttention,
    "cma": CrossModalAttention,
    "sep_sa": lambda config: SeparableAttention(config, cross_modal=False),
    "sep_cma": lambda config: SeparableAttention(config, cross_modal=True),
}


def build_attention(config: AttentionConfig) -> AttentionVariant:
    if config.variant not in ATTENTION_VARIANTS:
        raise ValueError(
            f"unknown attention variant {config.variant!r}; known: {sorted(ATTENTION_VARIANTS)}"
        )
    return ATTENTION_VARIANTS[config.variant](config)
