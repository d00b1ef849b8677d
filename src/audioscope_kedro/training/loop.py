"""A resumable training loop (plain PyTorch): a run killed at any moment and started again
continues from its last checkpoint and ends with the same weights as an uninterrupted run.

What makes that hold: every batch is a pure function of (seed, step), or comes from a
*stateful* batch source (:class:`BatchSource`: the streaming reader) whose state the checkpoint
holds; the learning rate is a pure function of the step; a checkpoint holds the model, the
optimiser, torch's RNG state, the step and the curve so far (and the batch source's state of
every worker), and is written under a temporary name, then renamed.

**Several processes** (``torchrun``, or ``training.launch``): the loop joins the process group
the environment describes (``device.init``), wraps the model in ``DistributedDataParallel``
(gradients averaged over the workers in ``backward``), and averages the logged values over the
workers. ``make_batch(step)`` must give *this worker's* rows of the global batch of ``step``
(``training.sharding.rank_rows``), and ``validate`` must share its work among the workers and
return the reduced figures (``training.sharding``); the main process's validation row is the
one kept, on every worker. Only the main process reads and writes checkpoints (the state it
reads is broadcast to the others, so a run resumes alike whatever file system each worker
sees) and shows the progress bar. Nothing in a checkpoint of a pure ``make_batch`` depends on
the number of workers: a run resumes with another number of processes and continues the same
sequence of batches. A stateful source's state is gathered from every worker at each
checkpoint (a collective: every worker takes part) and saved as a list in rank order; on resume
each worker hands the whole list to its own source, which continues its own entry (or, with
another number of workers, decides how to go on: the stream starts its next epoch).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn
from tqdm.auto import tqdm

from audioscope_kedro import device as devices
from audioscope_kedro.training.checkpoints import CheckpointStore, code_fingerprint


@dataclass
class LoopSettings:
    steps: int
    learning_rate: float = 1e-3
    warmup_steps: int = 50
    final_lr_fraction: float = 0.1  # cosine decay down to this fraction of the peak
    grad_clip: float = 5.0
    checkpoint_every: int = 100
    validate_every: int = 100
    keep_checkpoints: int = 2

    def lr(self, step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, self.warmup_steps))
        progress = min(1.0, step / max(1, self.steps))
        cosine = self.final_lr_fraction + (1 - self.final_lr_fraction) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
        return self.learning_rate * warm * cosine


StepFn = Callable[[nn.Module, object], tuple[torch.Tensor, dict[str, float]]]


@runtime_checkable
class BatchSource(Protocol):
    """A ``make_batch`` that is not a pure function of the step: it is called once per step,
    in order (the loop may call it one step ahead of the step it trains, on a GPU), and its
    state goes into the checkpoints (``training.stream_batches.StreamBatches``)."""

    def __call__(self, step: int) -> object: ...

    def state_dict(self, done_steps: int) -> dict:
        """The state once the steps ``< done_steps`` are trained (not those read ahead)."""
        ...

    def load_state_dict(self, states: Sequence[Mapping[str, Any]]) -> None:
        """Resume from the states every worker of the saving run gave, in rank order."""
        ...

    def close(self) -> None:
        """Release what reading holds (worker processes); called when the loop ends."""
        ...


def map_batches(
    make_batch: Callable[[int], object], fn: Callable[[int, object], object]
) -> Callable[[int], object]:
    """``make_batch`` with ``fn(step, batch)`` applied to each step's batch (``fn`` a pure
    function of its arguments): a :class:`BatchSource` stays one, with its state."""
    if isinstance(make_batch, BatchSource):
        return _MappedSource(make_batch, fn)
    return lambda step: fn(step, make_batch(step))


class _MappedSource:
    """A :class:`BatchSource` whose batches pass through ``fn(step, batch)``."""

    def __init__(self, source: BatchSource, fn: Callable[[int, object], object]):
        self.source, self.fn = source, fn

    def __call__(self, step: int) -> object:
        return self.fn(step, self.source(step))

    def state_dict(self, done_steps: int) -> dict:
        return self.source.state_dict(done_steps)

    def load_state_dict(self, states: Sequence[Mapping[str, Any]]) -> None:
        self.source.load_state_dict(states)

    def close(self) -> None:
        self.source.close()


def train_loop(
    model: nn.Module,
    step_fn: StepFn,
    make_batch: Callable[[int], object],
    settings: LoopSettings,
    checkpoints: CheckpointStore,
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
    desc: str = "train",
    fingerprint: str = "",
    on_validate: Callable[[int, dict], None] | None = None,
    code_version: str | None = None,
    lr_scales: dict[str, float] | None = None,
    device: str | torch.device = "cpu",
    bf16: bool = False,
) -> list[dict]:
    """Run (or resume) training to ``settings.steps``; returns the curve: one row per
    validation with the step, the mean training logs since the last row and the validation
    figures. ``fingerprint`` identifies the run's configuration: a checkpoint of another
    configuration is not resumed from (it is reported and ignored). ``on_validate(step, row)``
    is called after each validation (Optuna reports and prunes there). ``code_version``
    identifies the source code the run depends on (default: the whole package), so that a
    checkpoint written by other code is not resumed from. The optimiser is Adam; its
    learning rate follows ``settings.lr(step)``, times ``lr_scales[name]`` for the parameters
    of the submodule ``name`` (e.g. ``{"separator": 0.1}``); a scale of 0 freezes that
    submodule (no gradient is computed for it).

    ``device`` (``"cpu"``, ``"cuda"``, ``"auto"``...; see ``device.choose``) is where the
    model trains; on CUDA the step runs under bf16 autocast when ``bf16``, batches are pinned
    and copied without blocking, and the next batch is read while the GPU computes. The model
    is back on the CPU when the loop returns.

    ``make_batch`` is a pure function of the step, or a :class:`BatchSource`, whose state every
    checkpoint holds (``"batches"``: one entry per worker) and which is resumed from it."""
    stateful = isinstance(make_batch, BatchSource)
    fingerprint = f"{fingerprint}:{code_version or code_fingerprint()}"
    where = device if isinstance(device, torch.device) else devices.choose(device)
    devices.init(where)
    devices.configure(where)
    main = devices.is_main()
    model.to(where)
    optimizer = torch.optim.Adam(_param_groups(model, lr_scales or {}), lr=settings.learning_rate)
    start, curve = 0, []
    sums: dict[str, float] = {}
    count = 0
    # the main process reads the checkpoint and hands it to the others: one resume point
    state = devices.broadcast(checkpoints.latest() if main else None)
    if state is not None and state.get("fingerprint") == fingerprint:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        devices.set_rng_state(state, where)
        start, curve = int(state["step"]), list(state["curve"])
        sums, count = dict(state["sums"]), int(state["count"])
        if stateful:
            make_batch.load_state_dict(state["batches"])
        if main:  # a kill between a save and its pruning left one checkpoint too many
            checkpoints.prune(settings.keep_checkpoints)
    elif state is not None and main:
        tqdm.write(
            f"{desc}: checkpoints in {checkpoints.folder} are from another configuration; starting afresh"
        )
        checkpoints.clear()
    model.train()
    net = devices.wrap(model)  # after loading: every worker starts from the same weights
    progress = tqdm(total=settings.steps, initial=start, desc=desc, unit="step", disable=not main)
    tic = time.perf_counter()
    batches = _batches(make_batch, range(start, settings.steps), where)
    try:
        for step, batch in zip(range(start, settings.steps), batches, strict=True):
            for group in optimizer.param_groups:
                group["lr"] = settings.lr(step) * group["lr_scale"]
            with devices.autocast(where, bf16):
                loss, logs = step_fn(net, devices.to_device(batch, where))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
            optimizer.step()
            logs = devices.mean_over_ranks(logs)  # each worker logged its rows of the batch
            for key, value in logs.items():
                sums[key] = sums.get(key, 0.0) + float(value)
            count += 1
            progress.update(1)
            progress.set_postfix({k: f"{v:.2f}" for k, v in logs.items()})
            done = step + 1
            if done % settings.validate_every == 0 or done == settings.steps:
                row = {"step": done, **{f"train_{k}": v / count for k, v in sums.items()}}
                row["steps_per_s"] = count / (time.perf_counter() - tic)
                if validate is not None:
                    model.eval()
                    with torch.no_grad():
                        row.update(validate(devices.on_device(model, where)))
                    model.train()
                row = devices.broadcast(row)  # the main process's row, on every worker
                curve.append(row)
                sums, count, tic = {}, 0, time.perf_counter()
                if on_validate is not None:
                    on_validate(done, row)
            if done % settings.checkpoint_every == 0 or done == settings.steps:
                # every worker's source state, on the main process (a collective: all take part)
                sources = devices.gather(make_batch.state_dict(done)) if stateful else None
                if not main:
                    continue  # only the main process writes
                state = {
                    "step": done,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    **devices.rng_state(where),  # "rng" (and the GPU's, on one)
                    "curve": curve,
                    "sums": sums,  # training logs since the last curve row
                    "count": count,
                    "fingerprint": fingerprint,
                }
                if stateful:
                    state["batches"] = sources
                checkpoints.save(done, state, keep=settings.keep_checkpoints)
    finally:
        batches.close()  # on a GPU: waits for the batch being read ahead
        if stateful:
            make_batch.close()  # the loader's worker processes
    progress.close()
    model.eval()
    model.to("cpu")
    return curve


def _batches(
    make_batch: Callable[[int], object], steps: range, device: torch.device
) -> Iterator[object]:
    """``make_batch(step)`` for each step, in order. For a GPU each batch is pinned, and read
    one step ahead in a thread so that the GPU does not wait for it (the batch is a pure
    function of the step, so reading it early changes nothing; a :class:`BatchSource` counts
    only the steps trained in its state); on the CPU, in line."""
    if device.type == "cpu":
        for step in steps:
            yield make_batch(step)
        return

    def read(step: int) -> object:
        return devices.pin(make_batch(step), device)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batches") as pool:
        pending = pool.submit(read, steps[0]) if steps else None
        for step in steps[1:]:
            ready, pending = pending, pool.submit(read, step)
            yield ready.result()
        if pending is not None:
            yield pending.result()


def _param_groups(model: nn.Module, lr_scales: dict[str, float]) -> list[dict]:
    """One Adam parameter group per scaled submodule (``lr_scale`` kept in the group), one for
    the rest; submodules scaled to 0 are frozen instead (``requires_grad`` off)."""
    groups, scaled = [], set()
    for name, scale in lr_scales.items():
        if scale < 0:
            raise ValueError(f"learning-rate scale of {name!r} must be >= 0, got {scale}")
        if scale == 1:
            continue
        sub = model.get_submodule(name)
        params = list(sub.parameters())
        scaled.update(id(p) for p in params)
        if scale == 0:
            sub.requires_grad_(False)
        else:
            groups.append({"params": params, "lr_scale": float(scale)})
    rest = [p for p in model.parameters() if id(p) not in scaled]
    return [{"params": rest, "lr_scale": 1.0}, *groups]
