"""How the training recipes share their work among distributed workers (plain PyTorch).

- **Training batches**: the global batch of step ``s`` stays a pure function of ``(seed, s)``;
  worker ``r`` of ``W`` takes rows ``[r B/W, (r+1) B/W)`` of it (:func:`rank_rows`). The loss of
  each worker is the mean over its rows and DDP averages the gradients, so the update is the
  one of the whole batch, whatever ``W`` is: a run resumed with another number of processes
  continues the same sequence.
- **Validation**: the fixed validation batches are dealt to the workers in contiguous blocks
  (:func:`device.part`), each batch whole, exactly as one process would make it; the per-batch
  results are gathered on the main process in their original order and reduced there, so the
  figures are those of one process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np

from audioscope_kedro import device as devices
from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.data.lists import MomKind

B = TypeVar("B")


def rank_rows(batch_size: int, name: str) -> slice:
    """This worker's rows of a global batch of ``batch_size``; ``name`` is the parameter, for
    the message when the batch does not split evenly (uneven shares would weigh the examples
    of the smaller shares more in the averaged gradient)."""
    workers = devices.world_size()
    if batch_size % workers:
        raise ValueError(
            f"{name} = {batch_size} does not split evenly over {workers} processes: the global "
            f"batch is shared equally among them; use a multiple of {workers}"
        )
    share = batch_size // workers
    r = devices.rank()
    return slice(r * share, (r + 1) * share)


def take_rows(batch: B, rows: slice) -> B:
    """``batch`` (tensors, or a tuple or dataclass of them, batch first) cut to ``rows``; the
    batch itself when ``rows`` is all of it."""
    if devices.world_size() == 1:
        return batch
    return devices.map_tensors(batch, lambda t: t[rows])


def gather_in_order(items: list[Any]) -> list[Any] | None:
    """Every worker's ``items`` (its share, in order), concatenated in rank order on the main
    process (``None`` on the others): with contiguous shares, the one-process order."""
    parts = devices.gather(items)
    return None if parts is None else [x for part in parts for x in part]


def shard_moms(moms: MoMSet, batch_size: int, groups: Sequence[Iterable[MomKind]]) -> MoMSet | None:
    """This worker's share of ``moms`` for a pass that batches each group of MoM kinds on its
    own (as ``evaluation.runner.run_on_moms``): a contiguous block of each group's batches, so
    that every batch is one that a single process would make, and every worker that works has
    some of each group. With fewer batches in a group than workers, only as many workers as
    that group has batches work; the others get ``None``."""
    positions = [
        np.flatnonzero(np.isin(moms.kind.astype(str), [str(k) for k in kinds])) for kinds in groups
    ]
    batches = [-(-len(p) // batch_size) for p in positions]  # batches of each group
    workers = min(devices.world_size(), *batches) if batches else 1
    if workers <= 1:
        return moms if devices.is_main() else None
    r = devices.rank()
    if r >= workers:
        return None
    keep = []
    for p, n in zip(positions, batches, strict=True):
        base, extra = divmod(n, workers)
        first = r * base + min(r, extra)
        last = first + base + (r < extra)
        keep.append(p[first * batch_size : last * batch_size])
    mine = np.sort(np.concatenate(keep))
    return MoMSet(
        moms.clips,
        moms.first[mine],
        moms.second[mine],
        moms.kind[mine],
        [moms.mom_ids[i] for i in mine],
    )
