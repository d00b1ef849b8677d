"""Kedro datasets for model folders, calibrations, released models and training checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset, DatasetError
from torch import nn

from audioscope_kedro.atomic import write_json
from audioscope_kedro.evaluation.calibration import Calibration
from audioscope_kedro.models.persistence import CONFIG_FILE, load_model, save_model
from audioscope_kedro.release import ReleasedModel, read_calibration
from audioscope_kedro.training.checkpoints import CheckpointStore


class ModelFolderDataset(AbstractDataset[nn.Module, nn.Module]):
    """A model folder (``model.pt`` + ``config.json``); ``kind`` is checked on load."""

    def __init__(self, path: str, kind: str | None = None, metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self._kind = kind
        self.metadata = metadata

    def load(self) -> nn.Module:
        return load_model(self._path, self._kind)

    def save(self, data: nn.Module) -> None:
        save_model(data, self._path)

    def _exists(self) -> bool:
        return (self._path / CONFIG_FILE).exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "kind": self._kind}


class CheckpointDirDataset(AbstractDataset[None, CheckpointStore]):
    """A folder of training checkpoints. Loading gives the :class:`CheckpointStore` that the
    training node resumes from and writes to while it runs."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> CheckpointStore:
        return CheckpointStore(self._path)

    def save(self, data: None) -> None:
        raise DatasetError("checkpoints are written by the training loop, not saved as an output")

    def _exists(self) -> bool:
        return True  # an empty folder is a valid (fresh) checkpoint store

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}


class CalibrationDataset(AbstractDataset[Calibration, Calibration]):
    """``calibration.json`` as a :class:`Calibration` (with the fingerprint of its model)."""

    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> Calibration:
        return read_calibration(self._filepath)

    def save(self, data: Calibration) -> None:
        write_json(self._filepath, data.to_json())

    def _exists(self) -> bool:
        return self._filepath.exists()

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}


class ReleasedModelDataset(AbstractDataset[ReleasedModel, ReleasedModel]):
    """The released model folder (weights, ``config.json``, ``calibration.json``); loading
    refuses a calibration made for other weights."""

    def __init__(self, path: str, metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> ReleasedModel:
        return ReleasedModel.load(self._path)

    def save(self, data: ReleasedModel) -> None:
        data.save(self._path)

    def _exists(self) -> bool:
        return (self._path / CONFIG_FILE).exists()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
