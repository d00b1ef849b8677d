"""A resumable training loop (plain PyTorch): a run killed at any moment and started again
continues from its last checkpoint and ends with the same weights as an uninterrupted run.

What makes that hold: every batch is a pure function of (seed, step); the learning rate is a
pure function of the step; a checkpoint holds the model, the optimiser, torch's RNG state, the
step and the curve so far, and is written under a temporary name, then renamed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm


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

    @classmethod
    def from_params(cls, params: dict) -> LoopSettings:
        return cls(**{k: params[k] for k in cls.__dataclass_fields__ if k in params})

    def lr(self, step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, self.warmup_steps))
        progress = min(1.0, step / max(1, self.steps))
        cosine = self.final_lr_fraction + (1 - self.final_lr_fraction) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
        return self.learning_rate * warm * cosine


class CheckpointStore:
    """``step-0000100.pt`` files in a folder; the newest complete one is the resume point."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def paths(self) -> list[Path]:
        return sorted(self.folder.glob("step-*.pt")) if self.folder.exists() else []

    def latest(self) -> dict | None:
        for path in reversed(self.paths()):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # noqa: BLE001 - a damaged file: fall back to the one before
                continue
        return None

    def save(self, step: int, state: dict, keep: int = 2) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"step-{step:07d}.pt"
        tmp = self.folder / f".step-{step:07d}.pt.tmp-{os.getpid()}"
        torch.save(state, tmp)
        tmp.replace(final)
        for old in self.paths()[:-keep]:
            old.unlink(missing_ok=True)
        return final

    def clear(self) -> None:
        for path in self.paths():
            path.unlink()


def config_fingerprint(*parts) -> str:
    """Identity of a run's configuration: checkpoints of another one are not resumed from."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def code_fingerprint() -> str:
    """Identity of this package's source: a checkpoint written by other code is not resumed
    from (after an edit, `dvc repro` must retrain, not pick up the old final checkpoint)."""
    digest = hashlib.sha1()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def state_fingerprint(module: nn.Module) -> str:
    """Identity of a module's weights (e.g. the pre-trained separator a run starts from)."""
    digest = hashlib.sha1()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


StepFn = Callable[[nn.Module, object], tuple[torch.Tensor, dict[str, float]]]


def train_loop(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step_fn: StepFn,
    make_batch: Callable[[int], object],
    settings: LoopSettings,
    checkpoints: CheckpointStore,
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
    desc: str = "train",
    fingerprint: str = "",
    on_validate: Callable[[int, dict], None] | None = None,
) -> list[dict]:
    """Run (or resume) training to ``settings.steps``; returns the curve: one row per
    validation with the step, the mean training logs since the last row and the validation
    figures. ``fingerprint`` identifies the run's configuration: a checkpoint of another
    configuration is not resumed from (it is reported and ignored). ``on_validate(step, row)``
    is called after each validation (Optuna reports and prunes there)."""
    fingerprint = f"{fingerprint}:{code_fingerprint()}"
    start, curve = 0, []
    sums: dict[str, float] = {}
    count = 0
    state = checkpoints.latest()
    if state is not None and state.get("fingerprint") == fingerprint:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start, curve = int(state["step"]), list(state["curve"])
        sums, count = dict(state["sums"]), int(state["count"])
    elif state is not None:
        tqdm.write(
            f"{desc}: checkpoints in {checkpoints.folder} are from another configuration; starting afresh"
        )
        checkpoints.clear()
    model.train()
    progress = tqdm(total=settings.steps, initial=start, desc=desc, unit="step")
    tic = time.perf_counter()
    for step in range(start, settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = settings.lr(step)
        loss, logs = step_fn(model, make_batch(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
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
                    row.update(validate(model))
                model.train()
            curve.append(row)
            sums, count, tic = {}, 0, time.perf_counter()
            if on_validate is not None:
                on_validate(done, row)
        if done % settings.checkpoint_every == 0 or done == settings.steps:
            checkpoints.save(
                done,
                {
                    "step": done,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng": torch.get_rng_state(),
                    "curve": curve,
                    "sums": sums,  # training logs since the last curve row
                    "count": count,
                    "fingerprint": fingerprint,
                },
                keep=settings.keep_checkpoints,
            )
    progress.close()
    model.eval()
    return curve
