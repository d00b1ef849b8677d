"""Nodes of ``demo_data``: thin wrappers over :mod:`audioscope_kedro.demo.dataset`."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from tqdm.auto import tqdm

from audioscope_kedro.demo import dataset as demo_dataset
from audioscope_kedro.data.video_io import AVClip, Waveform


def plan_demo_scenes(params: dict) -> pd.DataFrame:
    """Which scenes to make: one row per clip with its split, kind, seed and source counts."""
    return demo_dataset.plan_scenes(params)


def render_demo_videos(scene_plan: pd.DataFrame, params: dict) -> dict[str, Callable[[], AVClip]]:
    """Lazy ``.mp4`` partitions; each is rendered and encoded when the catalog saves it."""
    progress = tqdm(total=len(scene_plan), desc="demo videos", unit="clip")

    def tick() -> None:
        progress.update(1)
        if progress.n == progress.total:
            progress.close()

    return demo_dataset.video_partitions(scene_plan, params, on_done=tick)


def render_demo_stems(
    scene_plan: pd.DataFrame, params: dict
) -> tuple[dict[str, Callable[[], Waveform]], pd.DataFrame]:
    """Lazy per-source ground-truth ``.wav`` stems and the stem manifest."""
    return demo_dataset.stems_and_manifest(scene_plan, params)


def make_demo_lists(scene_plan: pd.DataFrame, params: dict) -> dict[str, pd.DataFrame]:
    """Clip, labelled and MoM lists, saved under the public AudioScope file names."""
    return demo_dataset.release_lists(scene_plan, params)
