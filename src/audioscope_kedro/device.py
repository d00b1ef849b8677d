"""The one place that knows about devices and distributed ranks (in the spirit of demucs'
``distrib.py``): choose a device, move things to it, and ask which process this is.

Everything else is written for "the device" and "the main process"; running on a GPU, or as
one of several ``torchrun`` workers, changes nothing outside this module.
"""

from __future__ import annotations

import os
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T", torch.Tensor, nn.Module)


def choose(name: str = "auto") -> torch.device:
    """``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:<n>"``. Under
    ``torchrun``, ``"auto"`` takes this worker's GPU (``LOCAL_RANK``)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but this machine has no CUDA GPU")
    return device


def move(thing: T, device: torch.device) -> T:
    """``thing`` on ``device`` (a no-op when it is there already)."""
    return thing.to(device)


def rank() -> int:
    """This process's rank among all workers (0 when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", 0))


def local_rank() -> int:
    """This process's rank on its machine (0 when not distributed)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def world_size() -> int:
    """Number of workers (1 when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def is_main() -> bool:
    """True in the process that writes checkpoints, reports and progress bars."""
    return rank() == 0
