"""Kedro dataset for the sharded clip store (see :mod:`audioscope_kedro.data.store`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from audioscope_kedro.data.store import INDEX_FILE, ClipStore, ShardBatch, build_clip_store


class ClipStoreDataset(AbstractDataset[ShardBatch, ClipStore]):
    """Saving a :class:`ShardBatch` decodes and writes the shards that are not already current
    (resumable, process pool, progress bar); loading gives a memory-mapped :class:`ClipStore`."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> ClipStore:
        return ClipStore(self._path)

    def save(self, data: ShardBatch) -> None:
        build_clip_store(data, self._path)

    def _exists(self) -> bool:
        return (self._path / INDEX_FILE).exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
