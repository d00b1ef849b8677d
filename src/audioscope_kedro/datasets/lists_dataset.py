"""Kedro dataset for a folder of AudioScope-format lists (clip lists, labelled lists, MoM lists)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset

from audioscope_kedro.atomic import atomic_path
from audioscope_kedro.data.lists import (
    ListKey,
    ListValidationError,
    find_lists,
    read_list,
    scan_lists,
)

log = logging.getLogger(__name__)


class AudioScopeListsDataset(
    AbstractDataset[dict[ListKey, pd.DataFrame], dict[ListKey, pd.DataFrame]]
):
    """All lists named ``<prefix>_<split>[_<label>_unanimous[_plus_<partner>_mom]]_clips.csv``
    in ``path``, as a dict keyed by :class:`ListKey` (``train``, ``test_onscreen``,
    ``test_on_off_mom``...).

    Loading validates every list (pandera, lazily) and raises one error naming every bad row of
    every file. Saving writes the lists without a header, as the public release does.
    """

    def __init__(self, path: str, prefix: str = "filtered", metadata: dict[str, Any] | None = None):
        self._path = Path(path)
        self._prefix = prefix
        self.metadata = metadata

    def load(self) -> dict[ListKey, pd.DataFrame]:
        lists: dict[ListKey, pd.DataFrame] = {}
        errors: list[str] = []
        found = scan_lists(self._path, self._prefix)
        for file in found.unrecognised:
            log.warning(
                "%s looks like a list (prefix %r) but matches no list name of the AudioScope or "
                "AudioScopeV2 release: not read",
                file,
                self._prefix,
            )
        for key, file in found.lists.items():
            try:
                lists[key] = read_list(file, key, source=str(file))
            except ListValidationError as err:
                errors.append(str(err))
        if errors:
            raise ValueError("\n\n".join(errors))
        return lists

    def save(self, data: dict[ListKey, pd.DataFrame]) -> None:
        self._path.mkdir(parents=True, exist_ok=True)
        for key, frame in data.items():
            target = self._path / key.file_name(self._prefix)
            with atomic_path(target) as tmp:
                frame.to_csv(tmp, header=False, index=False, float_format="%.3f")

    def _exists(self) -> bool:
        return bool(find_lists(self._path, self._prefix))

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path), "prefix": self._prefix}
