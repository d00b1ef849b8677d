"""Shared test helpers: plain functions and constants, imported by the test modules.

Fixtures live in the conftest.py files (and call these); no test imports a conftest module.
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import yaml
from kedro.config import OmegaConfigLoader
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.io import AbstractDataset, DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from audioscope_kedro.data.clip_table import assemble_clip_table, assemble_mom_table
from audioscope_kedro.data.decode import DecodeSettings
from audioscope_kedro.data.lists import MOM_COLUMNS, ListKey
from audioscope_kedro.data.store import ClipStore, ShardBatch, build_clip_store, plan_shards
from audioscope_kedro.data.video_io import write_mp4
from audioscope_kedro.media import MediaFormat
from audioscope_kedro.models.attention import AttentionConfig
from audioscope_kedro.models.audioscope import AudioScopeConfig
from audioscope_kedro.models.embeddings import EmbeddingConfig
from audioscope_kedro.models.separation import SeparatorConfig
from audioscope_kedro.parameters import parse
from audioscope_kedro.settings import CONFIG_LOADER_ARGS
from audioscope_kedro.tuning.study import TuneParams

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
# where `--env test` runs write, relative to the project folder (conf/test/globals.yml)
TEST_DATA = Path(yaml.safe_load((PROJECT_ROOT / "conf/test/globals.yml").read_text())["data_root"])
# the pipelines of the whole chain, in order (the `chain` fixture runs them on `--env test`)
CHAIN = ["demo_data", "ingest", "coincidence", "pretrain_audio", "train", "calibrate", "evaluate"]


# ------------------------------------------------------------------------------ synthetic media


def tone_clip(
    duration: float = 3.0,
    sr: int = 16000,
    fps: float = 10.0,
    size: int = 32,
    seed: int = 0,
    freq: float = 440.0,
):
    """Frames whose brightness ramps with time and a noise-modulated tone: easy to check."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration * sr)) / sr
    audio = (
        0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * rng.standard_normal(t.size).clip(-1, 1))
    ).astype(np.float32)
    n_frames = int(round(duration * fps))
    frames = np.zeros((n_frames, size, size, 3), np.uint8)
    for k in range(n_frames):
        frames[k] = int(255 * k / max(1, n_frames - 1))
    return frames, audio


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


def write_tone_videos(root: Path, count: int = 5, duration: float = 2.0) -> Path:
    """``v0.mp4`` ... tone clips of ``duration`` seconds (one seed each) and an empty
    ``empty.mp4`` under ``root``."""
    for i in range(count):
        frames, audio = tone_clip(duration=duration, seed=i)
        write_mp4(root / f"v{i}.mp4", frames, 10.0, audio, 16000)
    (root / "empty.mp4").write_bytes(b"")
    return root


# ------------------------------------------------------------ a tiny dataset in the list format

TINY_CLIP_SECONDS = 1.0
TINY_MEDIA = MediaFormat(sample_rate=8000, fps=4.0, frame_height=16, frame_width=16)
TINY_DECODE = DecodeSettings.for_media(TINY_MEDIA)  # as conf/test/parameters_ingest.yml
# on-screen and off-screen videos of each evaluation split, and unlabelled training videos
TINY_VIDEOS = {
    "validate": {"onscreen": 2, "offscreen": 3},
    "test": {"onscreen": 2, "offscreen": 3},
    "train": {"": 2},
}


def tiny_video_paths() -> dict[tuple[str, str], list[str]]:
    """``(split, label) -> video paths`` (relative to the video root) of the tiny dataset."""
    return {
        (split, label): [f"videos/{split}/{label or 'clip'}_{i}.mp4" for i in range(n)]
        for split, labels in TINY_VIDEOS.items()
        for label, n in labels.items()
    }


def tiny_lists() -> dict:
    """The AudioScope lists (``dict[ListKey, DataFrame]``, as the lists dataset loads them) of
    the tiny dataset: per split the clip list, the labelled lists, and for validate and test the
    on+off MoMs (on_k with off_k) and off+off MoMs (off_k with off_k+1)."""

    def clips(paths):
        return pd.DataFrame({"video_path": paths, "start_time": 0.0, "end_time": TINY_CLIP_SECONDS})

    def moms(pairs):
        return pd.DataFrame(
            [(a, 0.0, TINY_CLIP_SECONDS, b, 0.0, TINY_CLIP_SECONDS) for a, b in pairs],
            columns=MOM_COLUMNS,
        )

    paths = tiny_video_paths()
    lists = {ListKey.parse("train"): clips(paths[("train", "")])}
    for split in ("validate", "test"):
        on, off = paths[(split, "onscreen")], paths[(split, "offscreen")]
        lists[ListKey.parse(split)] = clips(on + off)
        lists[ListKey.parse(f"{split}_onscreen")] = clips(on)
        lists[ListKey.parse(f"{split}_offscreen")] = clips(off)
        lists[ListKey.parse(f"{split}_on_off_mom")] = moms(zip(on, off, strict=False))
        lists[ListKey.parse(f"{split}_off_off_mom")] = moms(
            (off[k], off[(k + 1) % len(off)]) for k in range(len(off))
        )
    return lists


def write_tiny_videos(video_root: Path) -> Path:
    """The videos of the tiny dataset (1.5 s each; every one its own tone frequency, so that
    any two are far apart)."""
    all_paths = [p for paths in tiny_video_paths().values() for p in paths]
    for k, path in enumerate(all_paths):
        frames, audio = tone_clip(
            duration=1.5, sr=16000, fps=8.0, size=16, seed=k, freq=200.0 + 90.0 * k
        )
        write_mp4(video_root / path, frames, 8.0, audio, 16000)
    return video_root


@dataclass
class TinyData:
    """The tiny dataset ingested: what ``ingest`` would give the later pipelines."""

    video_root: Path
    clip_table: pd.DataFrame
    mom_table: pd.DataFrame
    store: ClipStore


def build_tiny_data(root: Path) -> TinyData:
    """Videos, tables and clip store (in ``TINY_MEDIA``) of the tiny dataset under ``root``."""
    video_root = write_tiny_videos(root / "videos_root")
    lists = tiny_lists()
    clip_table, mom_table = assemble_clip_table(lists), assemble_mom_table(lists)
    plans = plan_shards(clip_table, str(video_root), TINY_DECODE, 8)
    build_clip_store(ShardBatch(plans, 1, TINY_DECODE), root / "clip_store")
    return TinyData(video_root, clip_table, mom_table, ClipStore(root / "clip_store"))


# --------------------------------------------------------------------------------- tiny models


def tiny_config(
    variant="sep_sa",
    num_sources=4,
    basis="learned",
    clip_seconds=5.0,
    media: MediaFormat | None = None,
) -> AudioScopeConfig:
    """A small AudioScope configuration (by default for 8 kHz, 8 fps input): milliseconds to
    run."""
    return AudioScopeConfig(
        media=media or MediaFormat(sample_rate=8000, fps=8.0),
        clip_seconds=clip_seconds,
        separator=SeparatorConfig(
            num_sources=num_sources,
            basis=basis,
            bottleneck=16,
            hidden=32,
            blocks=3,
            basis_size=64,
            window=64,
            hop=32,
        ),
        embedding=EmbeddingConfig(dim=16, audio_channels=16, image_channels=(8, 16)),
        attention=AttentionConfig(variant=variant, dim=16, heads=2, layers=1),
    )


# ---------------------------------------------------------------------------- the tune search


def tune_space(entries: dict) -> dict:
    """The parsed search space of a ``tune.space`` block."""
    return parse(TuneParams, {"space": entries}, "tune").space


def base_tune_space() -> dict:
    """The search space of conf/base/parameters_tune.yml."""
    tune = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_tune.yml").read_text())["tune"]
    return tune_space(tune["space"])


# ------------------------------------------------------------------------- Kedro project runs


@functools.cache
def _conf_parameters(env: str) -> dict:
    loader = OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)
    return loader["parameters"]


def conf_parameters(env: str = "test") -> dict:
    """The parameters a Kedro session gives the nodes on ``env`` (conf/base merged with
    conf/<env>, project settings' loader arguments); a fresh copy on each call."""
    return copy.deepcopy(_conf_parameters(env))


def run_in_memory(pipeline: Pipeline, inputs: dict) -> dict:
    """Run ``pipeline`` with the ``SequentialRunner`` on a catalog of its inputs, as in the
    Kedro starters' pipeline tests: values become ``MemoryDataset``s (copied as Kedro copies
    them; pass a dataset, e.g. ``MemoryDataset(x, copy_mode="assign")``, to choose). Returns
    the pipeline's outputs, loaded."""
    catalog = DataCatalog(
        {
            name: value if isinstance(value, AbstractDataset) else MemoryDataset(value)
            for name, value in inputs.items()
        }
    )
    outputs = SequentialRunner().run(pipeline, catalog)
    return {name: dataset.load() for name, dataset in outputs.items()}


def make_project(root: Path) -> Path:
    """A project folder with this repository's conf (the package itself is installed)."""
    root.mkdir(parents=True)
    shutil.copytree(PROJECT_ROOT / "conf", root / "conf", ignore=shutil.ignore_patterns("local"))
    (root / "conf" / "local").mkdir()
    (root / "src").mkdir()  # Kedro checks it exists
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


def run(project: Path, *pipelines: str, **params) -> None:
    """Run ``pipelines`` one after the other in ``project`` on the ``test`` environment, each in
    its own session, with ``params`` as runtime parameters."""
    cwd = os.getcwd()
    os.chdir(project)
    try:
        bootstrap_project(project)
        for name in pipelines:
            with KedroSession.create(
                project_path=project, env="test", runtime_params=params or None
            ) as session:
                session.run(pipeline_names=[name])
    finally:
        os.chdir(cwd)


def kedro_process_args(pipeline: str, params: str) -> tuple[list[str], dict[str, str]]:
    """Command and environment of a separate `kedro run` process on the `test` environment
    (one torch thread, so that two of them do not fight over the cores)."""
    cmd = [
        sys.executable,
        "-m",
        "kedro",
        "run",
        "--env",
        "test",
        "--pipeline",
        pipeline,
        "--params",
        params,
    ]
    return cmd, {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
