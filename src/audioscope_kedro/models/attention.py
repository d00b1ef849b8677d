"""Audio-visual attention variants behind one registry and one interface.

Every variant maps ``audio [B, M, F, D]`` (per source and video frame) and ``video [B, F, P, D]``
(per frame and spatial position) to per-source features ``[B, M, D]`` for the on-screen
classifier. All attention goes through ``torch.nn.functional.scaled_dot_product_attention``.

- ``pool`` (AudioScope V1): each source's time-pooled embedding queries every spatio-temporal
  video position; the attended video vector is fused with the source embedding.
- ``sa`` (V2 joint self-attention): one self-attention over all ``(M + P) * F`` source and
  position tokens: cost quadratic in clip length.
- ``cma`` (V2 cross-modal): audio tokens attend to all video tokens and video tokens to all
  audio tokens, over the whole clip. Both streams of a layer read the previous layer's
  outputs (in parallel); the last layer updates audio only, as nothing reads its video.
- ``sep_sa`` / ``sep_cma`` (V2 separable): first self-attention over time only, global over the
  clip, within each source's audio sequence and within each position's video sequence; then
  ``layers`` layers of attention at each time step, across the ``M + P`` sources and positions
  (``sep_sa``) or across modalities (``sep_cma``, parallel as in ``cma``). The time stage costs
  ``O((M + P) F^2)``, the per-step stage ``O(F (M + P)^2)`` (``O(F M P)`` for ``sep_cma``):
  never the joint ``O(((M + P) F)^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import nn
from torch.nn import functional as F

# Fields that config.json files of earlier versions hold, and the variants whose architecture
# has not changed since (a saved model of another variant must be retrained).
_REMOVED_FIELDS = {"time_window": ("pool", "sa")}


@dataclass
class AttentionConfig:
    variant: str = "sep_sa"
    dim: int = 64
    heads: int = 4
    layers: int = 2  # blocks of pool and sa, layers of cma, per-step layers of sep_sa / sep_cma
    dropout: float = 0.0
    # Add to every variant's features each source's synchrony with the picture (SyncFeatures):
    # not in the papers, an option (docs/model.md, "Synchrony features").
    sync: bool = False
    # Add a model-free synchrony cue (MotionSyncFeatures): each source's loudness against the
    # frame differences of a grid of cells. Not in the papers, an option (docs/model.md).
    motion_sync: bool = False
    # Which loudness series of each source motion_sync correlates with the cells' motion
    # (LoudnessCue values); the first version had the log level alone.
    motion_cues: tuple[str, ...] = ("log_level",)

    def __post_init__(self) -> None:
        self.motion_cues = tuple(self.motion_cues)  # a list where config.json gave one
        known = [c.value for c in LoudnessCue]
        unknown = [c for c in self.motion_cues if c not in known]
        if unknown or not self.motion_cues:
            raise ValueError(
                f"attention.motion_cues must be a non-empty list of {known}, got "
                f"{list(self.motion_cues)}"
            )
        if self.layers < 1:
            raise ValueError(f"attention.layers must be at least 1, got {self.layers}")
        if self.heads < 1 or self.dim % self.heads:
            raise ValueError(f"attention.dim {self.dim} is not divisible by heads {self.heads}")

    @classmethod
    def from_dict(cls, data: dict) -> AttentionConfig:
        """The ``attention`` block of a saved ``config.json``.

        ``time_window`` (the local temporal window of the separable variants, removed when
        they became global over the clip and ``cma`` became parallel) is ignored for the
        variants whose architecture it did not touch and refused, naming it, for the others.
        """
        data = dict(data)
        variant = data.get("variant", cls.variant)
        for name, unchanged in _REMOVED_FIELDS.items():
            if name in data:
                if variant not in unchanged:
                    raise ValueError(
                        f"attention.{name} in a saved {variant!r} model: it was written by an "
                        f"earlier version whose {variant!r} attention differs from this one "
                        "(separable variants now attend over the whole clip, cross-modal layers "
                        "update both streams in parallel); retrain the model"
                    )
                del data[name]
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown attention field(s) {unknown}")
        return cls(**data)


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


class CrossModalLayers(nn.Module):
    """``layers`` cross-modal layers on token sets ``a [N, La, D]``, ``v [N, Lv, D]``.

    In each layer audio queries video and video queries audio, both reading the previous
    layer's outputs (in parallel, as in V2). The last layer has no video update: nothing
    reads it, and a block without a gradient would never train."""

    def __init__(self, config: AttentionConfig):
        super().__init__()
        n = config.layers
        self.a2v = nn.ModuleList(
            Block(config.dim, config.heads, config.dropout, cross=True) for _ in range(n)
        )
        self.v2a = nn.ModuleList(
            Block(config.dim, config.heads, config.dropout, cross=True) for _ in range(n - 1)
        )

    def forward(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        for i, a2v in enumerate(self.a2v):
            if i < len(self.v2a):
                a, v = a2v(a, v), self.v2a[i](v, a)
            else:
                a = a2v(a, v)
        return a


class CrossModalAttention(AttentionVariant):
    def __init__(self, config: AttentionConfig):
        super().__init__(config)
        self.cross = CrossModalLayers(config)

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        audio, video = self._embed(audio, video)
        b, m, f, d = audio.shape
        a = self.cross(audio.reshape(b, -1, d), video.reshape(b, -1, d))
        return a.reshape(b, m, f, d).mean(dim=2)


class SeparableAttention(AttentionVariant):
    """V2 separable attention: over time within each stream, then across streams per step.

    ``over_time`` is one self-attention block per modality over the whole clip, within each
    source's audio sequence and each position's video sequence (streams never mix there);
    ``per_step`` is ``layers`` layers of attention among the tokens of one time step (time
    steps never mix there): self-attention over sources and positions (``sep_sa``) or
    cross-modal layers (``sep_cma``)."""

    def __init__(self, config: AttentionConfig, cross_modal: bool):
        super().__init__(config)
        self.cross_modal = cross_modal
        self.time_audio = Block(config.dim, config.heads, config.dropout)
        self.time_video = Block(config.dim, config.heads, config.dropout)
        if cross_modal:
            self.step_cross = CrossModalLayers(config)
        else:
            self.step_blocks = nn.ModuleList(
                Block(config.dim, config.heads, config.dropout) for _ in range(config.layers)
            )

    def over_time(
        self, audio: torch.Tensor, video: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio [B, M, F, D]``, ``video [B, P, F, D]``: each stream attends to its own frames."""
        b, m, f, d = audio.shape
        a = self.time_audio(audio.reshape(b * m, f, d)).reshape(b, m, f, d)
        v = self.time_video(video.reshape(-1, f, d)).reshape(b, -1, f, d)
        return a, v

    def per_step(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        """Audio ``[B, M, F, D]`` after attention among the ``M + P`` tokens of each frame."""
        b, m, f, d = audio.shape
        a = audio.transpose(1, 2).reshape(b * f, m, d)
        v = video.transpose(1, 2).reshape(b * f, -1, d)
        if self.cross_modal:
            a = self.step_cross(a, v)
        else:
            tokens = torch.cat([a, v], dim=1)  # [B*F, M+P, D]
            for block in self.step_blocks:
                tokens = block(tokens)
            a = tokens[:, :m]
        return a.reshape(b, f, m, d).transpose(1, 2)

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        audio, video = self._embed(audio, video)
        return self.per_step(*self.over_time(audio, video)).mean(dim=2)


class SyncFeatures(nn.Module):
    """How each source's audio co-varies over the clip with the video at each position.

    ``audio [B, M, F, D]``, ``video [B, F, P, D] -> [B, M, D]``. Both streams are projected,
    centred and scaled over time, so that ``corr[b, m, p, d]`` is the correlation over the clip
    of channel ``d`` of source ``m`` and of position ``p``: a loud source whose object brightens
    or grows with it scores high where that object is, a silent object's own motion scores
    nothing. Positions are pooled by a learned softmax over their correlations (where the
    source's object is), not averaged: an object covers a few of them.

    Attention can only find such a product of two time series through its softmax weights,
    which it has to learn first; here it is the input, as in hand-made synchrony detectors.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.audio, self.video = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.where = nn.Linear(dim, 1)
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))

    @staticmethod
    def _standardise(x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(dim=-2, keepdim=True)  # over time (dim -2)
        return x / (x.pow(2).mean(dim=-2, keepdim=True) + 1e-5).sqrt()

    def forward(self, audio: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        a = self._standardise(self.audio(audio))  # [B, M, F, D]
        v = self._standardise(self.video(video.transpose(1, 2)))  # [B, P, F, D]
        corr = torch.einsum("bmfd,bpfd->bmpd", a, v) / a.shape[2]  # [B, M, P, D]
        weights = torch.softmax(self.where(corr).squeeze(-1), dim=-1)  # [B, M, P]
        return self.out((weights.unsqueeze(-1) * corr).sum(dim=2))


def _standardise_over(x: torch.Tensor, dim: int) -> torch.Tensor:
    x = x - x.mean(dim=dim, keepdim=True)
    std = x.pow(2).mean(dim=dim, keepdim=True).sqrt()
    # a constant series (a silent source, a still cell) correlates with nothing
    return torch.where(std > 1e-4, x / std.clamp_min(1e-4), torch.zeros_like(x))


class LoudnessCue(StrEnum):
    """A series of a source's loudness, one value per frame interval, that motion in the picture
    may follow."""

    LOG_LEVEL = "log_level"  # log energy: a voice or an engine, level as heard
    LEVEL = "level"  # RMS: what grows, brightens or swings with the sound's amplitude
    LEVEL_CHANGE = "level_change"  # |change of RMS|: what moves when the sound starts or stops


def loudness_series(sources: torch.Tensor, num_frames: int, cue: LoudnessCue) -> torch.Tensor:
    """``sources [B, M, T] -> [B, M, num_frames - 1]``: the cue over the frame intervals after
    the first (a frame difference needs the previous frame), standardised over time."""
    cue = LoudnessCue(cue)
    b, m, t = sources.shape
    per_frame = t // num_frames
    energy = sources[..., : num_frames * per_frame].reshape(b, m, num_frames, per_frame)
    energy = energy.pow(2).mean(-1)
    if cue is LoudnessCue.LOG_LEVEL:
        series = torch.log(energy + 1e-8)[..., 1:]
    elif cue is LoudnessCue.LEVEL:
        series = energy.sqrt()[..., 1:]
    else:
        rms = energy.sqrt()
        series = (rms[..., 1:] - rms[..., :-1]).abs()
    return _standardise_over(series, dim=-1)


def cell_motion(frames: torch.Tensor, grid: int) -> torch.Tensor:
    """``frames [B, F, H, W, 3] -> [B, F - 1, grid * grid]``: each cell's mean absolute
    difference from the previous frame, standardised over time."""
    x = frames.float()
    moved = (x[:, 1:] - x[:, :-1]).abs().mean(-1)  # [B, F-1, H, W]
    return _standardise_over(F.adaptive_avg_pool2d(moved, grid).flatten(2), dim=1)


def motion_correlations(
    sources: torch.Tensor,
    frames: torch.Tensor,
    grid: int = 8,
    cues: tuple[LoudnessCue, ...] = (LoudnessCue.LOG_LEVEL,),
) -> torch.Tensor:
    """``sources [B, M, T]``, ``frames [B, F, H, W, 3] -> corr [B, M, C, grid * grid]``: for
    each source, each cue of ``cues`` (C of them) and each cell of a ``grid x grid`` partition
    of the picture, the Pearson correlation over the clip between the source's loudness series
    (:func:`loudness_series`) and the cell's mean absolute difference from the previous frame.
    0 for a constant series and for fewer than three frames."""
    b, m, t = sources.shape
    f = frames.shape[1]
    if f < 3 or t < f:
        return sources.new_zeros(b, m, len(cues), grid * grid)
    cells = cell_motion(frames, grid)
    loud = torch.stack([loudness_series(sources, f, cue) for cue in cues], dim=2)
    return torch.einsum("bmcf,bfp->bmcp", loud, cells) / (f - 1)


class MotionSyncFeatures(nn.Module):
    """A fixed synchrony measure between each source's loudness and motion in the picture,
    learned only in how it is used.

    ``sources [B, M, T]``, ``frames [B, F, H, W, 3] -> [B, M, D]``. For each source and each
    loudness cue (:class:`LoudnessCue`), the correlation over the clip between the cue and,
    for each cell of a ``grid x grid`` partition of the picture, the cell's mean absolute
    difference from the previous frame; summarised per source and cue by the best cell and
    the mean over cells, then mapped to the feature space by a small MLP.

    Unlike :class:`SyncFeatures`, nothing in the measure is learned from the training pictures:
    it responds to whatever moves or changes with a sound (a drumstick, lips, a knife) as much
    in real footage as in the scenes it was trained on. Level-invariant (every cue is
    standardised over time); a silent source, or a clip of fewer than three frames, scores 0.
    """

    def __init__(
        self, dim: int, grid: int = 8, cues: tuple[LoudnessCue, ...] = (LoudnessCue.LOG_LEVEL,)
    ):
        super().__init__()
        self.grid = grid
        self.cues = tuple(LoudnessCue(c) for c in cues)
        self.out = nn.Sequential(nn.Linear(2 * len(self.cues), dim), nn.ReLU(), nn.Linear(dim, dim))

    def correlations(self, sources: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """``[B, M, C, grid * grid]``, as :func:`motion_correlations`."""
        return motion_correlations(sources, frames, self.grid, self.cues)

    def forward(self, sources: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        corr = self.correlations(sources, frames)
        summary = torch.cat([corr.amax(dim=-1), corr.mean(dim=-1)], dim=-1)  # [B, M, 2C]
        return self.out(summary)


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
