"""Training checkpoints and the fingerprints that decide whether one may be resumed from.

A checkpoint holds everything a resumed run needs (model, optimiser, RNG state, step, curve)
and the fingerprint of the run that wrote it: configuration, starting weights and source code.
A checkpoint with another fingerprint is never resumed from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from audioscope_kedro.atomic import atomic_path

log = logging.getLogger(__name__)


class CheckpointStore:
    """``step-0000100.pt`` files in a folder; the newest complete one is the resume point."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def paths(self) -> list[Path]:
        """The checkpoints, oldest first. Only complete files carry the ``step-*.pt`` name: a
        write interrupted by a kill leaves a hidden temporary (``atomic``), never listed."""
        return sorted(self.folder.glob("step-*.pt")) if self.folder.exists() else []

    def latest(self) -> dict | None:
        """The newest checkpoint that loads (``weights_only``: tensors and plain data, never
        pickled objects). One that does not load (damaged on disk, or not a checkpoint of this
        code) is reported and the one before it is used."""
        for path in reversed(self.paths()):
            try:
                return torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001 - any unreadable file: try the one before
                log.warning(
                    "checkpoint %s cannot be read (%s: %s); resuming from the one before it",
                    path,
                    type(err).__name__,
                    str(err).splitlines()[0] if str(err) else "",
                )
        return None

    def save(self, step: int, state: dict, keep: int = 2) -> Path:
        """Write ``step-<step>.pt`` atomically, then drop all but the newest ``keep``: a kill at
        any moment leaves at least the previous checkpoint whole; a full disk raises
        ``atomic.DiskFullError`` and leaves the checkpoints as they were."""
        final = self.folder / f"step-{step:07d}.pt"
        with atomic_path(final) as tmp, open(tmp, "wb") as handle:
            # a file object, not the path: torch names the archive's records after the file
            # (here the temporary name, with its pid), so one state would give other bytes in
            # every process
            torch.save(state, handle)
        self.prune(keep)
        return final

    def prune(self, keep: int) -> None:
        """Drop all but the newest ``keep`` checkpoints (also what a run killed between a save
        and its pruning left: the resumed run prunes when it starts)."""
        for old in self.paths()[:-keep]:
            old.unlink(missing_ok=True)

    def clear(self) -> None:
        for path in self.paths():
            path.unlink()


# Parameters that say how a run computes, not what it trains: a checkpoint written on 2 GPUs
# resumes on 4, or on the CPU (DESIGN.md §6, docs/scale.md)
RUN_SETTINGS = ("device", "bf16", "distributed")


def trained_settings(params: Any) -> dict[str, Any]:
    """A recipe's parameter dataclass as a dict, without its :data:`RUN_SETTINGS`: what its
    checkpoints' fingerprint depends on."""
    return {k: v for k, v in dataclasses.asdict(params).items() if k not in RUN_SETTINGS}


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
