"""Fixtures of the data tests: synthetic videos written on the fly (tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audioscope_kedro.data.video_io import write_mp4
from tests.helpers import tone_clip, write_tone_videos


@pytest.fixture
def tone_mp4(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 3-second tone video and the frames and audio it was written from."""
    frames, audio = tone_clip()
    path = tmp_path / "tone.mp4"
    write_mp4(path, frames, 10.0, audio, 16000)
    return path, frames, audio


@pytest.fixture
def video_root(tmp_path: Path) -> Path:
    """Five 2-second tone videos ``v0.mp4`` ... ``v4.mp4`` and an empty ``empty.mp4``."""
    return write_tone_videos(tmp_path / "videos")
