"""Start a training on several processes of this machine from inside one process (a Kedro
node), with ``torch.distributed``'s elastic launcher: the caller runs once, the workers
train, the main worker's result comes back (plain PyTorch, no Kedro).

``torchrun ... -m audioscope_kedro.distributed`` is the other way in (several machines, or a
cluster's launcher); inside a worker that ``torchrun`` started, :func:`run` calls the training
in line, so the same node function serves both.
"""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch.distributed.elastic.multiprocessing.errors import record

from audioscope_kedro import device as devices

R = TypeVar("R")


@dataclass(frozen=True)
class DistributedSettings:
    """The ``<recipe>.distributed`` parameter block: how ``kedro run`` trains."""

    # Processes on this machine, each with its share of every batch (the global batch,
    # <recipe>.batch_size, is split among them). 1: in the Kedro process itself, as always.
    # Under torchrun this is ignored: torchrun's --nproc-per-node decides.
    nproc_per_node: int = 1

    def __post_init__(self) -> None:
        if self.nproc_per_node < 1:
            raise ValueError(f"nproc_per_node must be at least 1, got {self.nproc_per_node}")


def run(settings: DistributedSettings, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """``fn(*args, **kwargs)``: in this process when ``settings.nproc_per_node`` is 1 or this
    process is already a worker that torchrun started; otherwise on ``nproc_per_node`` new worker
    processes (DDP over gloo or NCCL, rendezvous on this machine), returning the main worker's
    result. A failed worker stops all of them and raises here (``ChildFailedError``); a run
    started again resumes from the checkpoints the main worker wrote."""
    if settings.nproc_per_node == 1 or devices.launched():
        return fn(*args, **kwargs)
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=settings.nproc_per_node,
        run_id=f"audioscope-{uuid.uuid4().hex[:12]}",
        # as `torchrun --standalone`: a rendezvous on this machine, on a free port
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
        start_method="spawn",  # no fork of a process that holds threads and open files
    )
    task = (fn, args, kwargs)  # a ClipStore pickles by its folder (ClipStore.__reduce__)
    results = elastic_launch(config, _worker)(task, settings.nproc_per_node)
    return pickle.loads(results[0])


@record  # a worker's traceback reaches the launching process's ChildFailedError
def _worker(task: tuple, nproc_per_node: int) -> bytes | None:
    """One worker: its share of the CPU, the training, and the result from the main worker,
    pickled by value (tensors in shared memory would vanish with this process)."""
    fn, args, kwargs = task
    if "OMP_NUM_THREADS" not in os.environ:  # the workers share the cores, not each take all
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        torch.set_num_threads(max(1, (cores or 1) // nproc_per_node))
    try:
        result = fn(*args, **kwargs)
    finally:
        devices.destroy()
    return pickle.dumps(result) if devices.is_main() else None
