"""Shared fixtures: synthetic media written on the fly, the ../shared real data, a Kedro project copy."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from audioscope_kedro.data.video_io import write_mp4

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it are skipped in a clone without it."""
    if not (SHARED_DATA / "real_videos" / "labels.csv").exists():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def tone_clip(
    duration: float = 3.0, sr: int = 16000, fps: float = 10.0, size: int = 32, seed: int = 0
):
    """Frames whose brightness ramps with time and a noise-modulated tone: easy to check."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * sr)) / sr
    audio = (
        0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * rng.standard_normal(t.size).clip(-1, 1))
    ).astype(np.float32)
    n_frames = int(round(duration * fps))
    frames = np.zeros((n_frames, size, size, 3), np.uint8)
    for k in range(n_frames):
        frames[k] = int(255 * k / max(1, n_frames - 1))
    return frames, audio


@pytest.fixture
def tone_mp4(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    frames, audio = tone_clip()
    path = tmp_path / "tone.mp4"
    write_mp4(path, frames, 10.0, audio, 16000)
    return path, frames, audio


def write_raw_container(
    path: Path,
    audio: np.ndarray | None,
    sample_rate: int = 16000,
    frames: np.ndarray | None = None,
    fps: int = 10,
    codec: str = "pcm_f32le",
) -> Path:
    """A Matroska file with PCM audio of any channel count/rate (and optional video)."""
    with av.open(str(path), "w", format="matroska") as c:
        if frames is not None:
            v = c.add_stream("libx264", rate=fps)
            v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if audio is not None:
            channels = 1 if audio.ndim == 1 else audio.shape[0]
            layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
            a = c.add_stream(codec, rate=sample_rate, layout=layout)
        if frames is not None:
            for i, f in enumerate(frames):
                vf = av.VideoFrame.from_ndarray(f, format="rgb24")
                vf.pts, vf.time_base = i, Fraction(1, fps)
                c.mux(v.encode(vf))
            c.mux(v.encode())
        if audio is not None:
            data = audio[None] if audio.ndim == 1 else audio
            for start in range(0, data.shape[1], 1024):
                chunk = np.ascontiguousarray(
                    data[:, start : start + 1024].T.reshape(1, -1).astype(np.float32)
                )
                af = av.AudioFrame.from_ndarray(chunk, format="flt", layout=layout)
                af.sample_rate, af.pts, af.time_base = sample_rate, start, Fraction(1, sample_rate)
                c.mux(a.encode(af))
            c.mux(a.encode())
    return path


@pytest.fixture
def kedro_project(tmp_path: Path, monkeypatch) -> Path:
    """A throwaway copy of the project's conf in a temp folder, as cwd, so runs write there."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project / "pyproject.toml")
    (project / "src").mkdir()  # Kedro checks it exists; the package itself is installed
    monkeypatch.chdir(project)
    return project
