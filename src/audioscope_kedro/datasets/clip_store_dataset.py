"""Kedro dataset for the sharded clip store (see :mod:`audioscope_kedro.data.store`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from audioscope_kedro.data.store import (
    INDEX_FILE,
    ClipStore,
    IngestJob,
    ShardBatch,
    build_clip_store,
    pending_nodes,
)


class ClipStoreDataset(AbstractDataset[ShardBatch | IngestJob, ClipStore]):
    """Saving an :class:`IngestJob` (or an explicit :class:`ShardBatch`) decodes and writes the
    shards that are not already current (resumable, process pool, progress bar), this node's
    part only when several machines share the work, and merges the index once every shard is
    there; loading gives a :class:`ClipStore` (memory-mapped npy, or a
    :class:`~audioscope_kedro.data.store.TarClipStore` for the WebDataset format)."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self.metadata = metadata

    @property
    def path(self) -> Path:
        """The store's folder (the run lock of a run that writes it sits beside it)."""
        return self._path

    def load(self) -> ClipStore:
        waiting = pending_nodes(self._path)
        if waiting:
            # an index beside unmerged shards may describe another plan: refuse to guess
            raise DatasetError(
                f"the clip store at {self._path} is being built by several ingest nodes and is "
                f"not merged yet (reports so far: {', '.join(waiting)}); it is merged by the "
                "last node to finish, or run `python -m audioscope_kedro.data.ingest merge "
                f"{self._path}` once every node is done"
            )
        return ClipStore(self._path)

    def save(self, data: ShardBatch | IngestJob) -> None:
        build_clip_store(data, self._path)

    def _exists(self) -> bool:
        return (self._path / INDEX_FILE).exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
