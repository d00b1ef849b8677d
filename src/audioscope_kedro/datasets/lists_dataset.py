"""Kedro dataset for a folder of AudioScope-format lists (clip lists, labelled lists, MoM lists)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from kedro.io import AbstractDataset

from audioscope_kedro.atomic import atomic_path
from audioscope_kedro.data.lists import (
    LIST_QUARANTINE_COLUMNS,
    MAX_LISTED,
    ListFileError,
    ListKey,
    find_lists,
    read_list_rows,
    scan_lists,
)

log = logging.getLogger(__name__)


class AudioScopeListsDataset(
    AbstractDataset[dict[ListKey, pd.DataFrame], dict[ListKey, pd.DataFrame]]
):
    """All lists named ``<prefix>_<split>[_<label>_unanimous[_plus_<partner>_mom]]_clips.csv``
    in ``path``, as a dict keyed by :class:`ListKey` (``train``, ``test_onscreen``,
    ``test_on_off_mom``...).

    Loading validates every list (pandera, lazily). A file that cannot be a list at all (empty,
    not UTF-8, missing columns, no usable row) stops the load with one error naming every such
    file; a bad row is left out with a warning naming its file, line and reason, and the run
    goes on with the rest. With ``quarantine_path`` those rows are also written there
    (``file,row,reason``; rewritten on every load, so it never shows a previous run's rows).
    Saving writes the lists without a header, as the public release does.
    """

    def __init__(
        self,
        path: str,
        prefix: str = "filtered",
        quarantine_path: str | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        self._path = Path(path)
        self._prefix = prefix
        self._quarantine_path = Path(quarantine_path) if quarantine_path else None
        self.metadata = metadata

    def load(self) -> dict[ListKey, pd.DataFrame]:
        lists: dict[ListKey, pd.DataFrame] = {}
        errors: list[str] = []
        reports: list[pd.DataFrame] = []
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
                rows = read_list_rows(file, key, source=str(file))
            except ListFileError as err:
                errors.append(str(err))
                continue
            lists[key] = rows.frame
            if rows.quarantined:
                reports.append(rows.report())
                self._warn(rows.source, rows.quarantined)
        if errors:
            raise ValueError("\n\n".join(errors))
        if self._quarantine_path is not None:
            report = (
                pd.concat(reports, ignore_index=True)
                if reports
                else pd.DataFrame(columns=LIST_QUARANTINE_COLUMNS)
            )
            with atomic_path(self._quarantine_path) as tmp:
                report.to_csv(tmp, index=False)
        return lists

    @staticmethod
    def _warn(source: str, quarantined: list[tuple[int, str]]) -> None:
        for row, why in quarantined[:MAX_LISTED]:
            log.warning("%s: row %d quarantined: %s", source, row, why)
        if len(quarantined) > MAX_LISTED:
            log.warning("%s: %d more rows quarantined", source, len(quarantined) - MAX_LISTED)

    def save(self, data: dict[ListKey, pd.DataFrame]) -> None:
        self._path.mkdir(parents=True, exist_ok=True)
        for key, frame in data.items():
            target = self._path / key.file_name(self._prefix)
            with atomic_path(target) as tmp:
                frame.to_csv(tmp, header=False, index=False, float_format="%.3f")

    def _exists(self) -> bool:
        return bool(find_lists(self._path, self._prefix))

    def _describe(self) -> dict[str, Any]:
        return {
            "path": str(self._path),
            "prefix": self._prefix,
            "quarantine_path": str(self._quarantine_path) if self._quarantine_path else None,
        }
