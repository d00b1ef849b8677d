"""Fixtures of the separation tests: a small released model trained in the test run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.separate.helpers import train_release


@pytest.fixture(scope="session")
def release_dir(tmp_path_factory) -> Path:
    """A released model folder (weights, config, calibration at 6 and 15 dB) of a tiny model
    trained for a few MixIT steps here: never committed weights. Read-only."""
    return train_release(tmp_path_factory.mktemp("separate_model") / "model")
