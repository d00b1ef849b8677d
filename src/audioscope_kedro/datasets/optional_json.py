"""A JSON file that may not exist yet: loading it then gives ``{}``.

For ``tune_best_params``: ``train`` reads it (and uses it only when asked to), and must also
run in a project where ``tune`` never ran."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kedro.io import AbstractDataset

from audioscope_kedro.atomic import write_json


class OptionalJSONDataset(AbstractDataset[dict, dict]):
    def __init__(self, filepath: str, metadata: dict[str, Any] | None = None):
        self._filepath = Path(filepath)
        self.metadata = metadata

    def load(self) -> dict:
        return json.loads(self._filepath.read_text()) if self._filepath.exists() else {}

    def save(self, data: dict) -> None:
        write_json(self._filepath, data)

    def _exists(self) -> bool:
        return True

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._filepath)}
