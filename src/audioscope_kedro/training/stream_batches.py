"""Training batches read from the streaming WebDataset reader (``<recipe>.reader: stream``),
resumable exactly: a run killed at any step and resumed from its checkpoint trains on the same
batches, in the same order, as an uninterrupted run (plain PyTorch, no Kedro).

One :class:`StreamBatches` per rank: a ``DataLoader`` over
:class:`~audioscope_kedro.data.streaming.MoMStream` (the rank's shards, ``workers`` worker
processes, ``collate_moms``, ``drop_last``: every batch this rank's share of the global batch),
called by ``training.loop.train_loop`` once per step, in order. When the loader ends, the
source rolls into the next epoch on its own (ranks read disjoint shards of unequal sizes, so
they do not end their epochs on the same step).

**What is saved.** The loop may read one batch ahead (on a GPU), so the source keeps each
step's tags (``worker``, ``position`` of its examples) and applies those of the steps the loop
has finished only when it is asked for its state (:meth:`StreamBatches.state_dict`): a
:class:`~audioscope_kedro.data.streaming.StreamPosition` (the epoch and, per worker, the
examples used) and the worker whose batch comes next.

**Why the next worker is saved, and the reordering.** ``DataLoader`` hands out its workers'
batches in turn, starting at worker 0 each time an iterator is created and skipping the workers
that have run out. A resumed loader, each worker skipping what it had consumed, yields the
same batches in another order whenever the batches consumed this epoch are not a whole number
of turns, or some worker has run out before the others (near the end of an epoch). So the
source follows the *uninterrupted* turn itself: it knows which worker is due, takes that
worker's next batch, and keeps the batches the resumed loader hands out early in a small
buffer until their turn. A worker has run out when the loader skips it: the loader's turn is
the same cycle, so the workers between two consecutive batches it yields had nothing left (and
all of them when it ends). In an uninterrupted run the loader's turn is the due one and the
buffer stays empty; after a resume it holds at most a turn of the loader's workers.

A resume with another number of ranks or workers cannot continue inside an epoch (the shards
are dealt to ``ranks x workers`` readers): it starts the next epoch, with a warning.
"""

from __future__ import annotations

import collections
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch
from torch.utils.data import DataLoader

from audioscope_kedro import device as devices
from audioscope_kedro.data.batches import MoMBatch
from audioscope_kedro.data.shard_format import StoreFormat
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.data.streaming import MoMStream, StreamedMoMs, StreamPosition, collate_moms
from audioscope_kedro.parameters import ParameterError
from audioscope_kedro.training.sharding import rank_rows

log = logging.getLogger(__name__)


class BatchReader(StrEnum):
    """``<recipe>.reader``: how the training batches are read from the clip store."""

    # batch s is a pure function of (seed, s): random clip pairs read by offset (any store)
    RANDOM_ACCESS = "random_access"
    # the WebDataset store's shards read in sequence, every clip once an epoch (docs/scale.md)
    STREAM = "stream"


@dataclass(frozen=True)
class StreamSettings:
    """``<recipe>.stream``: the streaming reader's settings (used with ``reader: stream``)."""

    # DataLoader worker processes per rank (0: read in the training process). How the run
    # reads, not what: not in the checkpoint fingerprint; a resume with another number
    # starts the next epoch
    workers: int = 2
    # clips each worker shuffles among (and draws MoM partners from); changes the batches
    shuffle_buffer: int = 128

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"stream.workers must be >= 0, got {self.workers}")
        if self.shuffle_buffer < 1:
            raise ValueError(f"stream.shuffle_buffer must be >= 1, got {self.shuffle_buffer}")


def fingerprint_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A recipe's ``trained_settings`` as its checkpoint fingerprint takes them: with random
    access, without ``reader`` and ``stream`` (the ``stream`` block changes nothing then, and
    the settings are those of before the stream existed); with the stream, without
    ``stream.workers`` (the resume rule above handles another number)."""
    out = dict(settings)
    if BatchReader(out.pop("reader")) == BatchReader.RANDOM_ACCESS:
        out.pop("stream")
    else:
        out["stream"] = {k: v for k, v in out["stream"].items() if k != "workers"}
        out["reader"] = str(BatchReader.STREAM)
    return out


def webdataset_root(clip_store: ClipStore, block: str) -> str:
    """The store's location for the stream; a clear error when it is not a WebDataset store."""
    if clip_store.format != StoreFormat.WEBDATASET:
        root = clip_store.root
        raise ParameterError(
            f"{block}.reader is stream, which reads a WebDataset clip store, but {root} is a "
            f"{clip_store.format} store. Make one: `kedro run --pipeline ingest --params "
            f"ingest.format=webdataset` (a new ingest), or convert this one without decoding "
            f"again, `python -m audioscope_kedro.data.ingest convert {root} {root}_wds`, and "
            f"point the catalog's clip_store at it; or set {block}.reader: random_access"
        )
    return str(clip_store.root)


def _worker_start(workers: int) -> str | None:
    """How the loader starts its workers (a new set each epoch): forked on Linux. A rank that
    ``training.launch`` spawned has ``spawn`` as its default start method, and spawned loader
    workers import torch and this package again at every epoch (6 to 10 s an epoch on this
    2-core machine, against a tenth of a second forked). Forking a rank is what ``torchrun``
    users do by default: the worker runs only the reader, one torch thread."""
    return "fork" if workers > 0 and sys.platform.startswith("linux") else None


@dataclass
class _Taken:
    """One step's batch, until the loop has finished that step."""

    step: int
    epoch: int
    worker: torch.Tensor
    position: torch.Tensor
    next_worker: int  # the worker due after this batch


class StreamBatches:
    """``make_batch(step)`` for ``train_loop`` from a :class:`MoMStream`: this rank's
    ``batch_size`` MoMs of each step, read by ``workers`` DataLoader processes; stateful
    (:meth:`state_dict` / :meth:`load_state_dict`) so that a resumed run continues the
    uninterrupted sequence. ``on_batch(step, streamed)`` sees each batch with its clip ids."""

    def __init__(
        self,
        stream: MoMStream,
        batch_size: int,
        workers: int,
        on_batch: Callable[[int, StreamedMoMs], None] | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.stream = stream
        self.batch_size = batch_size
        self.workers = workers
        self.readers = max(1, workers)  # the in-process reader is worker 0 of 1
        self.on_batch = on_batch
        # what the loop has consumed (advanced by state_dict), and the worker due after it
        self.consumed = StreamPosition(num_workers=self.readers, world_size=stream.world_size)
        self._consumed_next = 0
        self._taken: collections.deque[_Taken] = collections.deque()
        self._lock = threading.Lock()  # the loop may read ahead in a thread (GPU)
        # the reading side: where the next batch comes from
        self._epoch, self._skip, self._due = 0, {}, 0
        self._iterator: Iterator[StreamedMoMs] | None = None
        self._waiting: dict[int, collections.deque[StreamedMoMs]] = {}
        self._ran_out: set[int] = set()
        self._loader_last = -1
        self._yielded = 0
        self._next_step: int | None = None

    # ------------------------------------------------------------------ train_loop's protocol

    def __call__(self, step: int) -> MoMBatch:
        if self._next_step is not None and step != self._next_step:
            raise ValueError(
                f"streamed batches are read in step order: asked for step {step} after "
                f"step {self._next_step - 1}"
            )
        self._next_step = step + 1
        streamed = self._next()
        with self._lock:
            self._taken.append(
                _Taken(step, self._epoch, streamed.worker, streamed.position, self._due)
            )
        if self.on_batch is not None:
            self.on_batch(step, streamed)
        return streamed.batch

    def state_dict(self, done_steps: int) -> dict:
        """Where this rank's stream stands once steps ``< done_steps`` are trained (batches
        read ahead for later steps are not counted: a resume reads them again)."""
        with self._lock:
            while self._taken and self._taken[0].step < done_steps:
                taken = self._taken.popleft()
                while self.consumed.epoch < taken.epoch:
                    self.consumed.next_epoch()
                self.consumed.advance(taken.worker, taken.position)
                self._consumed_next = taken.next_worker
            return {"position": self.consumed.to_dict(), "next_worker": self._consumed_next}

    def load_state_dict(self, states: Sequence[Mapping[str, Any]]) -> None:
        """Resume from every rank's :meth:`state_dict`, in rank order, as the checkpoint holds
        them: this rank continues its own; with another number of ranks or workers every rank
        starts the epoch after the newest saved one (the shards are dealt anew)."""
        positions = [StreamPosition.from_dict(s["position"]) for s in states]
        world, rank = self.stream.world_size, self.stream.rank
        same = len(positions) == world and all(
            p.world_size == world and p.num_workers == self.readers for p in positions
        )
        if same:
            position, due = positions[rank], int(states[rank]["next_worker"])
        else:
            epoch = max(p.epoch for p in positions) + 1
            if devices.is_main():
                saved = positions[0]
                log.warning(
                    "the stream's position was saved with %d rank(s) x %d DataLoader worker(s); "
                    "this run has %d x %d, which deal the shards otherwise: it cannot continue "
                    "inside epoch %d and starts epoch %d",
                    saved.world_size,
                    saved.num_workers,
                    world,
                    self.readers,
                    epoch - 1,
                    epoch,
                )
            position, due = StreamPosition(epoch, self.readers, {}, world), 0
        self.close()
        with self._lock:
            self.consumed, self._consumed_next = position, due
            self._taken.clear()
        self._epoch, self._skip, self._due = position.epoch, dict(position.consumed), due
        self._next_step = None

    def close(self) -> None:
        """Stop the loader's worker processes (the loop calls this when it ends)."""
        self._iterator = None  # the iterator shuts its workers down when released

    # --------------------------------------------------------------------------- reading

    def _open(self) -> None:
        self._iterator = self._loader()
        self._waiting = {w: collections.deque() for w in range(self.readers)}
        self._ran_out, self._loader_last, self._yielded = set(), -1, 0

    def _loader(self) -> Iterator[StreamedMoMs]:
        """A loader of ``self._epoch``, each worker skipping what was consumed of it."""
        self.stream.start_at(
            StreamPosition(self._epoch, self.readers, dict(self._skip), self.stream.world_size)
        )
        loader = DataLoader(
            self.stream,
            batch_size=self.batch_size,
            num_workers=self.workers,
            collate_fn=collate_moms,
            drop_last=True,  # a worker's last partial batch: every step has the same rows
            # its own generator: a loader draws its workers' base seed from it, and from
            # torch's global generator without one, which the training's RNG state (saved in
            # the checkpoint) would then depend on (the stream draws from its own seeds)
            generator=torch.Generator().manual_seed(self.stream.seed),
            multiprocessing_context=_worker_start(self.workers),
        )
        return iter(loader)

    def _next(self) -> StreamedMoMs:
        while True:
            if self._iterator is None:
                self._open()
            streamed = self._take()
            if streamed is not None:
                self._yielded += 1
                return streamed
            if not self._yielded and not self._skip:
                raise ValueError(
                    f"rank {self.stream.rank} of {self.stream.world_size} reads no full batch "
                    f"of {self.batch_size} MoMs in epoch {self._epoch} of {self.stream.root} "
                    f"with {self.readers} reader(s): each worker reads whole batches of its "
                    "own shards; use fewer stream.workers or ranks, or a store with more clips "
                    "or smaller shards"
                )
            self.close()  # the epoch is over: the next one, from its start
            self._epoch, self._skip, self._due = self._epoch + 1, {}, 0

    def _take(self) -> StreamedMoMs | None:
        """The due worker's next batch (from the buffer or the loader), or ``None`` when every
        worker has run out this epoch."""
        while True:
            due = self._due
            for _ in range(self.readers):  # the uninterrupted turn skips workers run out
                if self._waiting[due] or due not in self._ran_out:
                    break
                due = (due + 1) % self.readers
            else:
                return None
            self._due = due
            if self._waiting[due]:
                self._due = (due + 1) % self.readers
                return self._waiting[due].popleft()
            try:
                streamed = next(self._iterator)
            except StopIteration:
                self._ran_out = set(range(self.readers))
                continue
            worker = int(streamed.worker[0])
            if not bool((streamed.worker == worker).all()):
                raise RuntimeError("a DataLoader batch of an IterableDataset mixes workers")
            # the loader's turn skipped the workers between its last batch and this one:
            # they have run out (with one worker left, every other one)
            skipped = (self._loader_last + 1) % self.readers
            while skipped != worker:
                self._ran_out.add(skipped)
                skipped = (skipped + 1) % self.readers
            self._loader_last = worker
            self._waiting[worker].append(streamed)


def stream_source(
    root: str,
    settings: StreamSettings,
    *,
    block: str,
    batch_size: int,
    seed: int,
    seconds: float,
    crop_seconds: float | None,
    splits: Sequence[str],
    clip_ids: Sequence[str] | None = None,
    weights: Mapping[str, float] | None = None,
) -> StreamBatches:
    """This rank's :class:`StreamBatches` of a recipe: its share of the global ``batch_size``
    (``<block>.batch_size``) of MoMs of the selected clips, ``seconds`` long (random crops of
    ``crop_seconds``), from the WebDataset store at ``root``."""
    rows = rank_rows(batch_size, f"{block}.batch_size")
    stream = MoMStream(
        root,
        seconds=seconds,
        crop_seconds=crop_seconds,
        seed=seed,
        splits=splits,
        clip_ids=clip_ids,
        weights=weights,
        shuffle_buffer=settings.shuffle_buffer,
    )
    return StreamBatches(stream, rows.stop - rows.start, settings.workers)
