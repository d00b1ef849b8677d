"""A file dataset of kedro-datasets (``pandas.CSVDataset``, ``json.JSONDataset``...) saved
atomically.

kedro-datasets write straight to the final name (``open(path, "wb")`` truncates it first): a
run killed while saving, or out of disk space, leaves a truncated table or JSON file that the
next reader takes as the output, and the previous version is gone. ``AtomicFileDataset``
saves the wrapped dataset under a temporary name beside the final one and renames it
(:func:`audioscope_kedro.atomic.atomic_path`: a full disk raises ``DiskFullError`` naming the
file, the previous version intact); it loads the final name. In catalog.yml::

    train_curve:
      type: audioscope_kedro.datasets.atomic_file.AtomicFileDataset
      filepath: ${globals:data_root}/08_reporting/train_curve.csv
      dataset: {type: pandas.CSVDataset, save_args: {index: false}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError

from audioscope_kedro.atomic import atomic_path


class AtomicFileDataset(AbstractDataset[Any, Any]):
    """``dataset`` (a type name, or a config without ``filepath``) at ``filepath``, local."""

    def __init__(
        self, filepath: str, dataset: str | dict[str, Any], metadata: dict[str, Any] | None = None
    ):
        config = {"type": dataset} if isinstance(dataset, str) else dict(dataset)
        if "filepath" in config:
            raise DatasetError(
                f"AtomicFileDataset at {filepath}: give filepath on the entry, not in `dataset`"
            )
        self._filepath = Path(filepath)
        self._config = config
        self.metadata = metadata

    def _dataset(self, path: Path) -> AbstractDataset:
        return AbstractDataset.from_config(
            self._filepath.name, {**self._config, "filepath": str(path)}
        )

    def load(self) -> Any:
        return self._dataset(self._filepath).load()

    def save(self, data: Any) -> None:
        with atomic_path(self._filepath) as tmp:
            self._dataset(tmp).save(data)

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath), "dataset": self._config.get("type")}
