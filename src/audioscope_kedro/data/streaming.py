"""Clips and mixtures of mixtures (MoMs) streamed from a WebDataset clip store, for
``DataLoader`` worker processes on one or many ranks, from a local folder or any fsspec URL.

How an epoch is cut (every step a pure function of ``seed``, ``epoch`` and the layout):

1. **Shard order.** The store's shards (those holding clips of the wanted splits) are permuted
   by ``default_rng([seed, epoch])``: the same order on every rank and worker.
2. **Disjoint shards.** Consumer ``c = rank * num_workers + worker`` of ``C = world_size *
   num_workers`` takes shards ``order[c::C]``: every shard is read by exactly one (rank,
   worker), so every selected clip is yielded exactly once per epoch across all of them.
3. **Shuffle buffer.** Each consumer reads its shards start to end (sequential reads, the fast
   path on object stores) through a buffer of ``shuffle_buffer`` undecoded clips, popping a
   random one (``default_rng([seed, epoch, c, C])``) each time the buffer is full.
4. **MoM partners** (:class:`MoMStream`): the partner of each popped clip is drawn from the
   buffer and the last ``shuffle_buffer`` clips popped (never the clip itself), so partners
   come from the stream as well; random crops are drawn from the same generator.

Resuming: every example carries its consumer's ``worker`` and its ``position`` in that
consumer's sequence; a :class:`StreamPosition` advanced with each batch the training loop
consumed (not merely prefetched) is saved in the checkpoint, and :meth:`ClipStream.start_at`
makes each worker skip that many examples (they are read, to keep the buffer and the generator
in step, but not decoded), so the resumed stream equals the uninterrupted one. A resume with
another number of ranks or workers cannot continue inside the epoch: start the next epoch.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from audioscope_kedro import device
from audioscope_kedro.data.batches import MoMBatch
from audioscope_kedro.data.decode import DecodeSettings
from audioscope_kedro.data.lists import ClipLabel
from audioscope_kedro.data.shard_format import (
    TAR_FILE,
    StoreFormat,
    decode_audio,
    decode_frames,
    join,
)
from audioscope_kedro.data.store import (
    INDEX_FILE,
    SETTINGS_FILE,
    SHARD_DIR,
    SHARDS_FILE,
    read_json,
    read_store_format,
    shard_name,
)


@dataclass(frozen=True)
class Consumer:
    """One reader of the stream: a DataLoader worker of one rank."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    def __post_init__(self) -> None:
        if not (0 <= self.rank < self.world_size and 0 <= self.worker < self.num_workers):
            raise ValueError(f"bad stream consumer {self}")

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker

    @property
    def total(self) -> int:
        return self.world_size * self.num_workers


def shard_order(shards: Sequence[int], seed: int, epoch: int) -> list[int]:
    """The epoch's shard order, the same in every process."""
    rng = np.random.default_rng([seed, epoch])
    return [int(shards[i]) for i in rng.permutation(len(shards))]


def assigned_shards(shards: Sequence[int], seed: int, epoch: int, consumer: Consumer) -> list[int]:
    """The shards ``consumer`` reads this epoch: disjoint across consumers, together all."""
    return shard_order(shards, seed, epoch)[consumer.index :: consumer.total]


@dataclass
class StreamPosition:
    """How far a rank's training has consumed the stream: the epoch, and per DataLoader worker
    the number of examples of this epoch already used. Save :meth:`to_dict` in the checkpoint."""

    epoch: int = 0
    num_workers: int = 1
    consumed: dict[int, int] = field(default_factory=dict)
    world_size: int = 1

    def advance(self, worker: Sequence[int] | torch.Tensor, position: Sequence[int] | torch.Tensor):
        """Record a consumed batch from its examples' ``worker`` and ``position`` tags."""
        for w, p in zip(np.asarray(worker).tolist(), np.asarray(position).tolist(), strict=True):
            self.consumed[int(w)] = max(self.consumed.get(int(w), 0), int(p) + 1)

    def next_epoch(self) -> None:
        self.epoch, self.consumed = self.epoch + 1, {}

    def to_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "num_workers": self.num_workers,
            "consumed": self.consumed,
            "world_size": self.world_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamPosition:
        consumed = {int(k): int(v) for k, v in data["consumed"].items()}
        return cls(int(data["epoch"]), int(data["num_workers"]), consumed, int(data["world_size"]))


@dataclass
class RawClip:
    """A clip as read from its shard, not yet decoded: its two members' bytes."""

    clip_id: str
    audio: bytes
    frames: bytes
    num_samples: int
    num_frames: int
    label: int
    weight: float


# the index columns a streaming reader needs of a shard's clips
SHARD_COLUMNS = [
    "clip_id",
    "split",
    "label",
    "num_samples",
    "num_frames",
    "audio_byte_offset",
    "audio_byte_size",
    "frames_byte_offset",
    "frames_byte_size",
]


class _ShardIndex:
    """The index rows of one shard at a time: the index is written in shard order in row
    groups, so a shard's rows are in the one or two row groups whose ``shard`` statistics span
    it. Only those are read; memory stays that of a row group, whatever the store's size."""

    def __init__(self, location: str):
        self._handle = fsspec.open(location, "rb").open()
        self._file = pq.ParquetFile(self._handle)
        meta = self._file.metadata
        column = self._file.schema_arrow.get_field_index("shard")
        self._spans = []
        for g in range(meta.num_row_groups):
            stats = meta.row_group(g).column(column).statistics
            has = stats is not None and stats.has_min_max
            self._spans.append((stats.min, stats.max) if has else (None, None))

    def rows(self, shard: int):
        groups = [g for g, (lo, hi) in enumerate(self._spans) if lo is None or lo <= shard <= hi]
        table = self._file.read_row_groups(groups, columns=[*SHARD_COLUMNS, "shard"])
        rows = table.to_pandas()
        return rows[rows["shard"] == shard].sort_values("audio_byte_offset")

    def __enter__(self) -> _ShardIndex:
        return self

    def __exit__(self, *exc) -> None:
        self._handle.close()


class ClipStream(IterableDataset):
    """Every selected clip of a WebDataset store, once per epoch, as
    ``{"clip_id", "audio" float32 [T], "frames" uint8 [F, H, W, 3], "label", "weight",
    "worker", "position"}``; see the module docstring for the order.

    ``root``: the store folder or an fsspec URL (``s3://...``, ``file://...``, ``memory://``).
    ``splits`` / ``clip_ids``: the selection (default: every clip); ``weights``: per clip id
    (e.g. coincidence scores; default 1). ``rank`` / ``world_size``: default
    :func:`audioscope_kedro.device.rank` / :func:`~audioscope_kedro.device.world_size`.

    A shard is fetched whole, in one sequential read (one GET on an object store), and its
    clips are cut at the member offsets the index records for it: the same bytes WebDataset's
    own tar reader yields (tested), without parsing every tar header in Python (3 members a
    clip; that parsing alone cost more than decoding a small clip, docs/scale.md).
    """

    def __init__(
        self,
        root: str,
        *,
        seed: int = 0,
        splits: Sequence[str] | None = None,
        clip_ids: Sequence[str] | None = None,
        weights: Mapping[str, float] | None = None,
        shuffle_buffer: int = 128,
        rank: int | None = None,
        world_size: int | None = None,
    ):
        fmt, codec = read_store_format(root)
        if fmt != StoreFormat.WEBDATASET or codec is None:
            raise ValueError(
                f"{root} is a {fmt} clip store: streaming reads a WebDataset store "
                "(ingest with format: webdataset, or convert_store)"
            )
        if shuffle_buffer < 1:
            raise ValueError("shuffle_buffer must be at least 1")
        self.root = str(root)
        self.codec = codec
        self.settings = DecodeSettings(**read_json(join(root, SETTINGS_FILE)))
        self.seed = seed
        self.splits = None if splits is None else {str(s) for s in splits}
        self.clip_ids = None if clip_ids is None else set(clip_ids)
        self.weights = weights
        self.shuffle_buffer = shuffle_buffer
        self.rank = device.rank() if rank is None else rank
        self.world_size = device.world_size() if world_size is None else world_size
        with fsspec.open(join(root, SHARDS_FILE), "rb") as f:
            per_shard = pq.read_table(f).to_pandas()
        if self.splits is not None:
            per_shard = per_shard[per_shard["split"].isin(self.splits)]
        # only the shard list is kept: memory does not grow with the store
        self.shards = sorted({int(s) for s in per_shard["shard"]})
        self.epoch = 0
        self._skip: dict[int, int] = {}
        self._expect_workers: int | None = None

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration streams (call before creating the loader's iterator;
        with ``persistent_workers`` the workers keep the epoch they started with)."""
        self.epoch, self._skip = epoch, {}

    def start_at(self, position: StreamPosition) -> None:
        """Resume inside ``position.epoch``: each worker skips what was consumed before."""
        if position.consumed and position.world_size != self.world_size:
            raise ValueError(
                f"the stream position was saved with {position.world_size} ranks, this run has "
                f"{self.world_size}: resume from the next epoch"
            )
        self.epoch, self._skip = position.epoch, dict(position.consumed)
        self._expect_workers = position.num_workers

    def consumer(self) -> Consumer:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        if self._skip and self._expect_workers not in (None, num_workers):
            raise ValueError(
                f"the stream position was saved with {self._expect_workers} DataLoader workers, "
                f"this loader has {num_workers}: resume with the same number or from the next "
                "epoch"
            )
        return Consumer(self.rank, self.world_size, worker, num_workers)

    def raw_clips(self, consumer: Consumer) -> Iterator[RawClip]:
        """The consumer's clips in shard order, undecoded."""
        with _ShardIndex(join(self.root, INDEX_FILE)) as index:
            for shard in assigned_shards(self.shards, self.seed, self.epoch, consumer):
                rows = index.rows(shard)
                if self.splits is not None:
                    rows = rows[rows["split"].isin(self.splits)]
                if self.clip_ids is not None:
                    rows = rows[rows["clip_id"].isin(self.clip_ids)]
                if not len(rows):
                    continue
                location = join(self.root, SHARD_DIR, shard_name(shard), TAR_FILE)
                with fsspec.open(location, "rb") as f:
                    data = f.read()
                for r in rows.itertuples(index=False):
                    a, f_ = r.audio_byte_offset, r.frames_byte_offset
                    yield RawClip(
                        r.clip_id,
                        data[a : a + r.audio_byte_size],
                        data[f_ : f_ + r.frames_byte_size],
                        r.num_samples,
                        r.num_frames,
                        ClipLabel(r.label if isinstance(r.label, str) else "").code,
                        float(self.weights.get(r.clip_id, 1.0)) if self.weights else 1.0,
                    )

    def _rng(self, consumer: Consumer) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, consumer.index, consumer.total])

    def shuffled(self, consumer: Consumer, rng: np.random.Generator):
        """The consumer's clips through the shuffle buffer; yields ``(clip, buffer)`` where
        ``buffer`` holds the clips still waiting (for drawing partners)."""
        buffer: list[RawClip] = []
        for clip in self.raw_clips(consumer):
            buffer.append(clip)
            if len(buffer) >= self.shuffle_buffer:
                yield self._pop(buffer, rng), buffer
        while buffer:
            yield self._pop(buffer, rng), buffer

    @staticmethod
    def _pop(buffer: list[RawClip], rng: np.random.Generator) -> RawClip:
        i = int(rng.integers(len(buffer)))
        buffer[i], buffer[-1] = buffer[-1], buffer[i]
        return buffer.pop()

    def decode_audio(self, clip: RawClip) -> np.ndarray:
        return decode_audio(clip.audio, self.codec.audio_member, clip.num_samples)

    def decode_frames(self, clip: RawClip) -> np.ndarray:
        s = self.settings
        shape = (clip.num_frames, s.frame_height, s.frame_width, 3)
        return decode_frames(clip.frames, self.codec.frames_member, clip.num_frames, shape)

    def __iter__(self) -> Iterator[dict]:
        consumer = self.consumer()
        rng = self._rng(consumer)
        skip = self._skip.get(consumer.worker, 0)
        for position, (clip, _) in enumerate(self.shuffled(consumer, rng)):
            if position < skip:
                continue
            yield {
                "clip_id": clip.clip_id,
                "audio": self.decode_audio(clip),
                "frames": self.decode_frames(clip),
                "label": clip.label,
                "weight": clip.weight,
                "worker": consumer.worker,
                "position": position,
            }


def _fit_audio(audio: np.ndarray, start: int, length: int) -> np.ndarray:
    out = np.zeros(length, np.float32)
    a = audio[start : start + length]
    out[: a.size] = a
    return out


def _fit_frames(frames: np.ndarray, start: int, count: int) -> np.ndarray:
    """``count`` frames from ``start``; past the clip's end the last frame is held."""
    f = frames[start : start + count]
    out = np.empty((count, *frames.shape[1:]), np.uint8)
    out[: len(f)] = f
    out[len(f) :] = f[-1]
    return out


class MoMStream(ClipStream):
    """Mixtures of mixtures from the stream: each clip of the epoch once as clip 1 (its frames
    shown), with a partner clip 2 drawn from the shuffle buffer or the clips just before it,
    both cropped or zero-padded to ``seconds`` (random crops of ``crop_seconds``, aligned to
    whole frames, as :func:`audioscope_kedro.data.batches.random_mom_batch`). Examples are
    ``{"mix1", "mix2", "frames", "label", "weight", "clip_id_1", "clip_id_2", "worker",
    "position"}``; :func:`collate_moms` makes a :class:`StreamedMoMs` of a list of them."""

    def __init__(self, root: str, *, seconds: float, crop_seconds: float | None = None, **kwargs):
        super().__init__(root, **kwargs)
        self.seconds = seconds
        self.crop_seconds = crop_seconds

    def __iter__(self) -> Iterator[dict]:
        consumer = self.consumer()
        rng = self._rng(consumer)
        skip = self._skip.get(consumer.worker, 0)
        s = self.settings
        per_frame = s.sample_rate / s.fps
        total_frames = s.num_frames(self.seconds)
        cropping = self.crop_seconds is not None and self.crop_seconds < self.seconds
        count, room, length = total_frames, 0, s.num_samples(self.seconds)
        if cropping:
            count = max(1, int(round(self.crop_seconds * s.fps)))
            room, length = total_frames - count, int(round(count * per_frame))
        history: collections.deque[RawClip] = collections.deque(maxlen=self.shuffle_buffer)
        for position, (clip, buffer) in enumerate(self.shuffled(consumer, rng)):
            candidates = len(buffer) + len(history)
            if candidates == 0:
                raise ValueError(
                    f"stream consumer {consumer} of {self.root} has a single clip: no partner "
                    "for a mixture of mixtures (use fewer workers or ranks, or smaller shards)"
                )
            j = int(rng.integers(candidates))
            partner = buffer[j] if j < len(buffer) else history[j - len(buffer)]
            start1, start2 = rng.integers(0, room + 1, 2) if cropping else (0, 0)
            history.append(clip)
            if position < skip:  # resumed: read and drawn as before, not decoded
                continue
            yield {
                "mix1": _fit_audio(self.decode_audio(clip), int(round(start1 * per_frame)), length),
                "mix2": _fit_audio(
                    self.decode_audio(partner), int(round(start2 * per_frame)), length
                ),
                "frames": _fit_frames(self.decode_frames(clip), int(start1), count),
                "label": clip.label,
                "weight": clip.weight,
                "clip_id_1": clip.clip_id,
                "clip_id_2": partner.clip_id,
                "worker": consumer.worker,
                "position": position,
            }


@dataclass
class StreamedMoMs:
    """A batch of streamed MoMs and the tags that advance a :class:`StreamPosition`."""

    batch: MoMBatch
    clip_ids_1: list[str]
    clip_ids_2: list[str]
    worker: torch.Tensor  # [B]
    position: torch.Tensor  # [B]


def collate_moms(examples: list[dict]) -> StreamedMoMs:
    """``DataLoader(collate_fn=collate_moms)`` for :class:`MoMStream`."""
    stack = lambda key, dtype=None: torch.from_numpy(  # noqa: E731
        np.stack([e[key] for e in examples])
        if dtype is None
        else np.asarray([e[key] for e in examples], dtype)
    )
    return StreamedMoMs(
        MoMBatch(
            stack("mix1"),
            stack("mix2"),
            stack("frames"),
            stack("label", np.int64),
            stack("weight", np.float32),
        ),
        [e["clip_id_1"] for e in examples],
        [e["clip_id_2"] for e in examples],
        stack("worker", np.int64),
        stack("position", np.int64),
    )
