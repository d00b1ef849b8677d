"""Fixed-length clips and mixtures of mixtures (MoMs) from the clip store, for training and
evaluation. Every batch is a pure function of (seed, step): a resumed run sees the same data.

Clips are read through the store's memory maps, batch by batch: nothing is loaded whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from audioscope_kedro.data.lists import ClipLabel, MomKind
from audioscope_kedro.data.store import ClipStore


@dataclass
class ClipSet:
    """A selection of the store's clips, cropped or zero-padded to ``seconds``."""

    store: ClipStore
    rows: np.ndarray  # positions in store.index
    seconds: float
    weights: np.ndarray | None = None  # per clip, e.g. coincidence scores

    @classmethod
    def select(
        cls,
        store: ClipStore,
        seconds: float,
        clip_ids: list[str] | None = None,
        splits: tuple[str, ...] | None = None,
        weights: pd.Series | None = None,
    ) -> ClipSet:
        index = store.index
        mask = np.ones(len(index), bool)
        if splits is not None:
            mask &= index["split"].isin(splits).to_numpy()
        if clip_ids is not None:
            mask &= index["clip_id"].isin(set(clip_ids)).to_numpy()
        rows = np.flatnonzero(mask)
        w = None
        if weights is not None:
            w = index["clip_id"].iloc[rows].map(weights).fillna(1.0).to_numpy(np.float32)
        return cls(store, rows, seconds, w)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def num_samples(self) -> int:
        return int(round(self.seconds * self.store.settings.sample_rate))

    @property
    def num_frames(self) -> int:
        return max(1, int(round(self.seconds * self.store.settings.fps)))

    @property
    def clip_ids(self) -> list[str]:
        return self.store.index["clip_id"].iloc[self.rows].tolist()

    @cached_property
    def labels(self) -> np.ndarray:
        """1 on-screen only, 0 off-screen only, -1 unlabelled (human clip labels). Computed
        once: batches ask for it every step, and building it costs time in the store's size."""
        raw = self.store.index["label"].iloc[self.rows].fillna("")
        return np.array([ClipLabel(v).code for v in raw], dtype=int)

    def audio(
        self,
        which: np.ndarray,
        start_frames: np.ndarray | None = None,
        num_frames: int | None = None,
    ) -> torch.Tensor:
        """``[len(which), T]`` float32; a crop of ``num_frames`` video frames' worth of audio
        from ``start_frames`` when given (crops are whole frames, so audio and video stay aligned)."""
        per_frame = self.store.settings.sample_rate / self.store.settings.fps
        length = self.num_samples if num_frames is None else int(round(num_frames * per_frame))
        out = np.zeros((len(which), length), np.float32)
        for k, i in enumerate(which):
            start = 0 if start_frames is None else int(round(start_frames[k] * per_frame))
            a = self.store.audio(int(self.rows[i]))[start : start + length]
            out[k, : a.size] = a
        return torch.from_numpy(out)

    def frames(
        self,
        which: np.ndarray,
        start_frames: np.ndarray | None = None,
        num_frames: int | None = None,
    ) -> torch.Tensor:
        """``[len(which), F, H, W, 3]`` uint8; past the clip's end the last frame is held."""
        s = self.store.settings
        count = self.num_frames if num_frames is None else num_frames
        out = np.zeros((len(which), count, s.frame_height, s.frame_width, 3), np.uint8)
        for k, i in enumerate(which):
            start = 0 if start_frames is None else int(start_frames[k])
            f = self.store.frames(int(self.rows[i]))[start : start + count]
            out[k, : len(f)] = f
            out[k, len(f) :] = f[-1]
        return torch.from_numpy(out)


@dataclass
class MoMBatch:
    mix1: torch.Tensor  # [B, T] soundtrack of the video whose frames are shown
    mix2: torch.Tensor  # [B, T] soundtrack of another video
    frames: torch.Tensor  # [B, F, H, W, 3] uint8, of video 1
    label: torch.Tensor  # [B] human label of clip 1 (1 on, 0 off, -1 none)
    weight: torch.Tensor  # [B] per-example weight of the pseudo-labels

    @property
    def mixture(self) -> torch.Tensor:
        return self.mix1 + self.mix2


def random_mom_batch(
    clips: ClipSet,
    batch_size: int,
    seed: int,
    step: int,
    crop_seconds: float | None = None,
    rows: slice | None = None,
) -> MoMBatch:
    """MoMs of random clip pairs (clip 1 != clip 2), determined by ``(seed, step)``.

    With ``crop_seconds`` each clip contributes a random crop of that length (both clips
    independently; clip 1's frames cropped with its audio): cheaper steps, more variety.
    ``rows`` reads only those rows of the batch (one training process's share): the same
    random draws, so the rows are those of the whole batch, without reading the others.
    """
    rng = np.random.default_rng([seed, step])
    n = len(clips)
    if n < 2:
        raise ValueError(f"need at least 2 clips to make mixtures of mixtures, have {n}")
    first = rng.integers(0, n, batch_size)
    second = (first + rng.integers(1, n, batch_size)) % n
    count = starts1 = starts2 = None
    if crop_seconds is not None and crop_seconds < clips.seconds:
        count = max(1, int(round(crop_seconds * clips.store.settings.fps)))
        room = clips.num_frames - count
        starts1, starts2 = (
            rng.integers(0, room + 1, batch_size),
            rng.integers(0, room + 1, batch_size),
        )
    if rows is not None:
        first, second = first[rows], second[rows]
        if starts1 is not None:
            starts1, starts2 = starts1[rows], starts2[rows]
    weights = clips.weights[first] if clips.weights is not None else np.ones(len(first), np.float32)
    return MoMBatch(
        clips.audio(first, starts1, count),
        clips.audio(second, starts2, count),
        clips.frames(first, starts1, count),
        torch.from_numpy(clips.labels[first]),
        torch.from_numpy(np.asarray(weights, np.float32)),
    )


@dataclass
class MoMSet:
    """The fixed MoMs of a MoM table (e.g. the validation or test lists), in order."""

    clips: ClipSet
    first: np.ndarray  # positions in clips of clip 1
    second: np.ndarray  # positions in clips of clip 2
    kind: np.ndarray  # MomKind values
    mom_ids: list[str]

    @classmethod
    def from_table(cls, store: ClipStore, moms: pd.DataFrame, seconds: float, split: str) -> MoMSet:
        """MoMs of ``split`` whose two clips were both ingested (quarantined ones are dropped)."""
        table = moms[moms["split"] == split]
        clips = ClipSet.select(
            store, seconds, clip_ids=list(set(table.clip_id_1) | set(table.clip_id_2))
        )
        position = {cid: k for k, cid in enumerate(clips.clip_ids)}
        keep = table.clip_id_1.isin(position) & table.clip_id_2.isin(position)
        table = table[keep]
        return cls(
            clips,
            table.clip_id_1.map(position).to_numpy(int),
            table.clip_id_2.map(position).to_numpy(int),
            table["kind"].to_numpy(),
            table["mom_id"].tolist(),
        )

    def __len__(self) -> int:
        return len(self.first)

    def batches(self, batch_size: int, kinds: MomKind | Iterable[MomKind] | None = None):
        """Yield ``(positions, MoMBatch)`` in table order, optionally of some kinds only."""
        if kinds is None:
            idx = np.arange(len(self))
        else:
            wanted = [str(kinds)] if isinstance(kinds, MomKind) else [str(k) for k in kinds]
            idx = np.flatnonzero(np.isin(self.kind.astype(str), wanted))
        for start in range(0, len(idx), batch_size):
            pos = idx[start : start + batch_size]
            a, b = self.first[pos], self.second[pos]
            labels = np.array([MomKind(k).first_label.code for k in self.kind[pos]], dtype=int)
            yield (
                pos,
                MoMBatch(
                    self.clips.audio(a),
                    self.clips.audio(b),
                    self.clips.frames(a),
                    torch.from_numpy(labels),
                    torch.ones(len(pos)),
                ),
            )
