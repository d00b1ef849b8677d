"""The `demo_data` pipeline in the realistic style, in memory on the stand-in recordings and
pictures: the release layout's outputs (videos, stems, lists) plus the record of what each
video shows, consistent with each other."""

from __future__ import annotations

import numpy as np
import pandas as pd
from kedro.io import MemoryDataset

from audioscope_kedro.demo.dataset import plan_scenes, render_clip_arrays
from audioscope_kedro.pipelines.demo_data import create_pipeline
from tests.helpers import run_in_memory


class Kept(MemoryDataset):
    """An intermediate output the runner would release once used: kept to be read after."""

    def _release(self) -> None:
        pass


COUNTS = {"train": 3, "test_onscreen": 3, "test_offscreen": 3}


def _params(stand_in) -> dict:
    return {
        "style": "real",
        "sample_rate": 8000,
        "fps": 8.0,
        "width": 64,
        "height": 64,
        "sound_bank": str(stand_in.sounds),
        "sound_events": True,
        "images": {"folder": str(stand_in.textured)},
        "counts": COUNTS,
        "moms_per_list": 2,
    }


def test_realistic_demo_data_in_memory(stand_in):
    params = _params(stand_in)
    images = Kept()
    inputs = {"params:demo_data": params, "params:clip_seconds": 1, "demo_image_manifest": images}
    out = run_in_memory(create_pipeline(), inputs)
    plan = plan_scenes({**params, "duration": 1.0})
    objects, stems = out["demo_visible_objects"], out["demo_stem_manifest"]
    assert set(objects.video_path) == set(plan.video_path)
    for row in plan.to_dict("records"):
        shown = objects[objects.video_path == row["video_path"]]
        assert 2 <= len(shown) <= 3 and shown.sounding.sum() == row["n_on_screen"]
        heard_on = stems[(stems.video_path == row["video_path"]) & (stems.role == "on_screen")]
        assert sorted(heard_on.class_name) == sorted(shown[shown.sounding].class_name)
        assert shown.sprite.str.startswith("objects/").all()
    manifest = images.load()
    assert set(manifest.kind) == {"objects", "backgrounds", "clutter"} and manifest.used.all()
    clip = out["demo_videos"]["videos/test/onscreen_00000"]()
    assert clip.frames.shape == (8, 64, 64, 3)
    # The stems of a clip sum to its soundtrack: the sounds are the scene's, with pictures.
    key = "videos/test/onscreen_00000.mp4"
    stem_ids = [k for k in out["demo_stems"] if k.startswith("stems/test/onscreen_00000/")]
    total = np.sum([out["demo_stems"][k]().audio for k in stem_ids], axis=0)
    np.testing.assert_allclose(total, clip.audio, atol=1e-6)
    row = plan[plan.video_path == key].iloc[0].to_dict()
    frames, _ = render_clip_arrays(row, {**params, "duration": 1.0})
    np.testing.assert_array_equal(frames, clip.frames)
    assert isinstance(out["demo_lists"], dict) and len(out["demo_lists"]) >= 4


def test_default_demo_records_nothing_more():
    params = {"sample_rate": 8000, "fps": 8.0, "width": 32, "height": 32, "counts": {"train": 2}}
    images = Kept()
    inputs = {"params:demo_data": params, "params:clip_seconds": 1, "demo_image_manifest": images}
    out = run_in_memory(create_pipeline(), inputs)
    assert images.load().empty and out["demo_visible_objects"].empty
    assert isinstance(out["demo_stem_manifest"], pd.DataFrame)
