"""Nodes of ``demo_data``: thin wrappers over :mod:`audioscope_kedro.demo.dataset`."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from tqdm.auto import tqdm

from audioscope_kedro.data.lists import ListKey
from audioscope_kedro.data.video_io import AVClip, Waveform
from audioscope_kedro.demo import dataset as demo_dataset
from audioscope_kedro.demo.images import DemoInputMissing


def _with_duration(params: dict, clip_seconds: float) -> dict:
    # every demo video is one clip of the project's clip length
    return {**params, "duration": float(clip_seconds)}


def plan_demo_scenes(
    params: dict, clip_seconds: float, image_manifest: pd.DataFrame
) -> pd.DataFrame:
    """Which scenes to make: one row per clip with its split, kind, seed and source counts.
    (``image_manifest`` orders this node, and every write, after the inputs are checked.)"""
    return demo_dataset.plan_scenes(_with_duration(params, clip_seconds))


def prepare_demo_images(params: dict, clip_seconds: float) -> pd.DataFrame:
    """The realistic variant's pictures, fetched and cut once (empty for the default demo).

    A missing input (the recordings, the Debian package) stops the run with one message
    saying what is missing and what to do, not a traceback: it is not a bug.
    """
    try:
        return demo_dataset.image_manifest(_with_duration(params, clip_seconds))
    except DemoInputMissing as err:
        raise SystemExit(f"demo_data stopped: {err}") from None


def render_demo_videos(
    scene_plan: pd.DataFrame, params: dict, clip_seconds: float, image_manifest: pd.DataFrame
) -> dict[str, Callable[[], AVClip]]:
    """Lazy ``.mp4`` partitions; each is rendered and encoded when the catalog saves it.
    (``image_manifest`` only orders this node after the pictures are ready.)"""
    params = _with_duration(params, clip_seconds)
    progress = tqdm(total=len(scene_plan), desc="demo videos", unit="clip")

    def tick() -> None:
        progress.update(1)
        if progress.n == progress.total:
            progress.close()

    return demo_dataset.video_partitions(scene_plan, params, on_done=tick)


def render_demo_stems(
    scene_plan: pd.DataFrame, params: dict, clip_seconds: float, image_manifest: pd.DataFrame
) -> tuple[dict[str, Callable[[], Waveform]], pd.DataFrame]:
    """Lazy per-source ground-truth ``.wav`` stems and the stem manifest.
    (``image_manifest`` only orders this node after the inputs are checked.)"""
    return demo_dataset.stems_and_manifest(scene_plan, _with_duration(params, clip_seconds))


def list_demo_objects(
    scene_plan: pd.DataFrame, params: dict, clip_seconds: float, image_manifest: pd.DataFrame
) -> pd.DataFrame:
    """The realistic variant's record of every visible object of every clip (empty for the
    default demo)."""
    return demo_dataset.visible_objects(scene_plan, _with_duration(params, clip_seconds))


def make_demo_lists(
    scene_plan: pd.DataFrame, params: dict, clip_seconds: float
) -> dict[ListKey, pd.DataFrame]:
    """Clip, labelled and MoM lists, saved under the public AudioScope file names."""
    return demo_dataset.release_lists(scene_plan, _with_duration(params, clip_seconds))
