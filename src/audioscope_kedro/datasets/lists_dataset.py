"""Kedro dataset for a folder of AudioScope-format lists (clip lists, labelled lists, MoM lists)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset

from audioscope_kedro.data.lists import (
    ListName,
    ListValidationError,
    find_lists,
    read_clip_list,
    read_mom_list,
)


class AudioScopeListsDataset(AbstractDataset[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]):
    """All lists named ``<prefix>_<split>[_<label>_unanimous[_plus_<label>_unanimous_mom]]_clips.csv``
    in ``path``, as a dict keyed by :attr:`ListName.key` (``train``, ``test_onscreen``,
    ``test_on_off_mom``...).

    Loading validates every list (pandera, lazily) and raises one error naming every bad row of
    every file. Saving writes the lists without a header, as the public release does.
    """

    def __init__(self, path: str, prefix: str = "filtered", metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self._prefix = prefix
        self.metadata = metadata

    def load(self) -> dict[str, pd.DataFrame]:
        lists: dict[str, pd.DataFrame] = {}
        errors: list[str] = []
        for key, file in find_lists(self._path, self._prefix).items():
            reader = read_mom_list if key.endswith("_mom") else read_clip_list
            try:
                lists[key] = reader(file, source=str(file))
            except ListValidationError as err:
                errors.append(str(err))
        if errors:
            raise ValueError("\n\n".join(errors))
        return lists

    def save(self, data: dict[str, pd.DataFrame]) -> None:
        self._path.mkdir(parents=True, exist_ok=True)
        for key, frame in data.items():
            target = self._path / ListName.from_key(self._prefix, key).file_name()
            tmp = target.with_name(f".{target.name}.tmp")
            frame.to_csv(tmp, header=False, index=False, float_format="%.3f")
            tmp.replace(target)

    def _exists(self) -> bool:
        return bool(find_lists(self._path, self._prefix))

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "prefix": self._prefix}
