"""Shared test helpers (imported by tests; fixtures live in the conftest.py files)."""

from __future__ import annotations

from pathlib import Path

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
# where `--env test` runs write, relative to the project folder (conf/test/globals.yml)
TEST_DATA = Path(yaml.safe_load((PROJECT_ROOT / "conf/test/globals.yml").read_text())["data_root"])
