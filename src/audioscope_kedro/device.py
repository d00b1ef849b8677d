"""The one place that knows about devices and distributed ranks (in the spirit of demucs'
``distrib.py``): choose a device, move things to it, ask which process this is, and the few
collectives that training needs.

Everything else is written for "the device" and "the main process"; running on a GPU, or as
one of several ``torchrun`` workers, changes nothing outside this module. With one process
(``WORLD_SIZE`` unset or 1) every collective here is the identity and nothing is initialised,
so a single-process run computes exactly what it computed before distributed training existed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

T = TypeVar("T", torch.Tensor, nn.Module)


def choose(name: str = "auto") -> torch.device:
    """``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:<n>"``. Under
    ``torchrun``, ``"auto"`` and ``"cuda"`` take this worker's GPU (``LOCAL_RANK``)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but this machine has no CUDA GPU")
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank() % torch.cuda.device_count())
    return device


def move(thing: T, device: torch.device) -> T:
    """``thing`` on ``device`` (a no-op when it is there already)."""
    return thing.to(device)


def _active() -> bool:
    """A process group is joined (torch built without distributed support: never)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank among all workers (0 when not distributed)."""
    if _active():
        return dist.get_rank()
    return int(os.environ.get("RANK", 0))


def local_rank() -> int:
    """This process's rank on its machine (0 when not distributed)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def world_size() -> int:
    """Number of workers (1 when not distributed)."""
    if _active():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    """True in the process that writes checkpoints, reports and progress bars."""
    return rank() == 0


def launched() -> bool:
    """True in a worker that ``torchrun`` (or ``elastic_launch``) started: it describes the
    process group in the environment, even for a single process."""
    return "WORLD_SIZE" in os.environ


# ------------------------------------------------------------------- the process group


def init(device: torch.device) -> bool:
    """Join the process group that ``torchrun`` (or ``elastic_launch``) described in the
    environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``): NCCL for a CUDA
    device, gloo for the CPU. Nothing happens with one process or when already joined; returns
    whether this process is one of several."""
    if world_size() <= 1:
        return False
    if not _active():
        if device.type == "cuda":
            here, gpus = int(os.environ.get("LOCAL_WORLD_SIZE", 1)), torch.cuda.device_count()
            if here > gpus:
                raise RuntimeError(
                    f"{here} processes on this machine share {gpus} GPU(s): NCCL needs a GPU "
                    f"per process; start at most {gpus} per machine (or train on device: cpu)"
                )
            torch.cuda.set_device(device)  # NCCL and the object collectives use this GPU
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def destroy() -> None:
    """Leave the process group (if any), so that the process can exit cleanly."""
    if _active():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait until every worker is here."""
    if _active():
        dist.barrier()


def _comm_device() -> torch.device:
    # NCCL moves CUDA tensors only; gloo moves CPU tensors
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """The mean over all workers of each value (the same keys on every worker); with one
    process the values themselves, untouched."""
    if not _active() or not values:
        return values
    keys = list(values)  # the same order on every worker: the same step function made them
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return dict(zip(keys, (t / dist.get_world_size()).tolist(), strict=True))


def gather(obj: Any) -> list[Any] | None:
    """Every worker's ``obj`` in rank order on the main process, ``None`` on the others."""
    if not _active():
        return [obj]
    out = [None] * dist.get_world_size() if is_main() else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast(obj: Any) -> Any:
    """The main process's ``obj`` on every worker (pickled: for small objects and state)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def part(n: int) -> range:
    """This worker's contiguous share of ``n`` items (sizes differ by at most one, the first
    workers take the larger shares, as ``numpy.array_split``); ``range(n)`` with one process."""
    size, r = world_size(), rank()
    base, extra = divmod(n, size)
    start = r * base + min(r, extra)
    return range(start, start + base + (r < extra))


def wrap(model: nn.Module) -> nn.Module:
    """``model`` inside ``DistributedDataParallel`` when there are several workers (gradients
    averaged over them in ``backward``), ``model`` itself otherwise."""
    if not _active():
        return model
    device = next(model.parameters()).device
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


# ------------------------------------------------------------------------- the GPU path


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The random generators a training step can draw from (dropout): the CPU's, and the
    GPU's when training on one; for a checkpoint."""
    state = {"rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore what :func:`rng_state` saved (a CPU checkpoint resumed on a GPU: the CPU's)."""
    torch.set_rng_state(state["rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def configure(device: torch.device) -> None:
    """On CUDA let cuDNN pick the fastest kernels for our fixed input shapes; a no-op on CPU."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``bf16``; nothing (full float32) on the CPU."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``obj`` (a tensor, or a tuple, list, dict or dataclass of them) with ``fn`` applied to
    every tensor in it; other values are kept."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        changes = {f.name: map_tensors(getattr(obj, f.name), fn) for f in dataclasses.fields(obj)}
        return dataclasses.replace(obj, **changes)
    if isinstance(obj, tuple | list):
        return type(obj)(map_tensors(x, fn) for x in obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    return obj


def pin(batch: Any, device: torch.device) -> Any:
    """``batch`` in page-locked memory when it is going to a GPU (so that its copy can run
    while the GPU computes); unchanged for the CPU."""
    if device.type != "cuda":
        return batch
    return map_tensors(batch, lambda t: t.pin_memory())


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` on ``device`` (copies from pinned memory do not block); unchanged on CPU."""
    if device.type == "cpu":
        return batch
    return map_tensors(batch, lambda t: t.to(device, non_blocking=True))


class OnDevice:
    """``model`` called with CPU tensors: inputs go to ``device``, outputs come back to the
    CPU. For code written for CPU tensors (validation, evaluation) run with a GPU model."""

    def __init__(self, model: nn.Module, device: torch.device):
        self.model, self.device = model, device

    def __call__(self, *args: Any) -> Any:
        out = self.model(*(to_device(a, self.device) for a in args))
        return map_tensors(out, lambda t: t.cpu())

    def eval(self) -> OnDevice:
        self.model.eval()
        return self

    def train(self, mode: bool = True) -> OnDevice:
        self.model.train(mode)
        return self

    def __getattr__(self, name: str) -> Any:  # config, submodules: those of the model
        return getattr(self.model, name)


def on_device(model: nn.Module, device: torch.device) -> nn.Module | OnDevice:
    """``model`` itself on the CPU, an :class:`OnDevice` view of it elsewhere."""
    return model if device.type == "cpu" else OnDevice(model, device)
