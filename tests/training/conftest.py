"""Fixtures of the training-recipe tests: a tiny ingested dataset whose training split has
unlabelled and human-labelled clips (tests/helpers.py's tiny dataset has unlabelled ones only)."""

from __future__ import annotations

import pandas as pd
import pytest

from audioscope_kedro.data.clip_table import assemble_clip_table
from audioscope_kedro.data.lists import ListKey
from audioscope_kedro.data.store import ClipStore, ShardBatch, build_clip_store, plan_shards
from audioscope_kedro.data.video_io import write_mp4
from tests.helpers import TINY_CLIP_SECONDS, TINY_DECODE, tone_clip

# list -> number of clips: 6 unlabelled and 4 labelled training clips, 4 validation clips
LABELLED_TRAIN_LISTS = {
    "train": 6,
    "train_onscreen": 2,
    "train_offscreen": 2,
    "validate_onscreen": 2,
    "validate_offscreen": 2,
}


@pytest.fixture(scope="session")
def labelled_train_store(tmp_path_factory) -> ClipStore:
    """A clip store (``TINY_DECODE``, 1 s clips) of the lists above; every video its own tone.
    Read-only."""
    root = tmp_path_factory.mktemp("labelled_train")
    lists, k = {}, 0
    for name, count in LABELLED_TRAIN_LISTS.items():
        paths = []
        for i in range(count):
            path = f"videos/{name}_{i}.mp4"
            frames, audio = tone_clip(
                duration=1.5, sr=16000, fps=8.0, size=16, seed=k, freq=200.0 + 90.0 * k
            )
            write_mp4(root / "videos_root" / path, frames, 8.0, audio, 16000)
            paths.append(path)
            k += 1
        lists[ListKey.parse(name)] = pd.DataFrame(
            {"video_path": paths, "start_time": 0.0, "end_time": TINY_CLIP_SECONDS}
        )
    table = assemble_clip_table(lists)
    plans = plan_shards(table, str(root / "videos_root"), TINY_DECODE, 8)
    build_clip_store(ShardBatch(plans, 1, TINY_DECODE), root / "clip_store")
    return ClipStore(root / "clip_store")
