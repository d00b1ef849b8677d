"""The demo dataset: which scenes to make, how to render them, and its AudioScope-format lists.

Every scene is a pure function of (seed, split, kind, index), so the dataset is deterministic
and any one file can be rebuilt on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache, partial

import numpy as np
import pandas as pd

from audioscope_kedro.data.lists import MOM_COLUMNS, ClipLabel, ListKey, Split
from audioscope_kedro.data.video_io import AVClip, Waveform
from audioscope_kedro.demo.scenes import (
    Scene,
    SceneConfig,
    SoundBank,
    make_scene,
    render_frames,
)

SPLITS = ("train", "validate", "test")
KINDS = ("unlabelled", "onscreen", "offscreen")


def scene_config(params: dict) -> SceneConfig:
    return SceneConfig(
        sample_rate=int(params["sample_rate"]),
        duration=float(params["duration"]),
        fps=float(params["fps"]),
        width=int(params["width"]),
        height=int(params["height"]),
        background_noise_db=float(params.get("background_noise_db", -35.0)),
        distractor_probability=float(params.get("distractor_probability", 0.3)),
    )


def _scene_seed(seed: int, split: str, kind: str, index: int) -> int:
    state = np.random.SeedSequence([seed, SPLITS.index(split), KINDS.index(kind), index])
    return int(state.generate_state(1)[0])


def plan_scenes(params: dict) -> pd.DataFrame:
    """One row per scene: video path, split, kind, scene seed, on- and off-screen source counts.

    ``params["counts"]`` maps ``<split>`` (unlabelled) and ``<split>_onscreen`` /
    ``<split>_offscreen`` (labelled) to a number of clips.
    """
    max_on, max_off = int(params["max_on_screen"]), int(params["max_off_screen"])
    rows = []
    for split in SPLITS:
        for kind in KINDS:
            key = split if kind == "unlabelled" else f"{split}_{kind}"
            for i in range(int(params["counts"].get(key, 0))):
                seed = _scene_seed(int(params["seed"]), split, kind, i)
                rng = np.random.default_rng(seed + 1)
                if kind == "onscreen":
                    n_on, n_off = int(rng.integers(1, max_on + 1)), 0
                elif kind == "offscreen":
                    n_on, n_off = 0, int(rng.integers(1, max_off + 1))
                else:
                    n_on, n_off = (
                        int(rng.integers(0, max_on + 1)),
                        int(rng.integers(0, max_off + 1)),
                    )
                    if n_on + n_off == 0:
                        n_on = 1
                rows.append(
                    {
                        "video_path": f"videos/{split}/{kind}_{i:05d}.mp4",
                        "split": split,
                        "kind": kind,
                        "seed": seed,
                        "n_on_screen": n_on,
                        "n_off_screen": n_off,
                    }
                )
    return pd.DataFrame(rows)


def _bank(params: dict) -> SoundBank | None:
    if not params.get("sound_bank"):
        return None
    return SoundBank(
        params["sound_bank"],
        int(params["sample_rate"]),
        tuple(params.get("sound_bank_exclude") or ()),
    )


def build_scene(row: dict, params: dict, bank: SoundBank | None = None) -> Scene:
    return make_scene(
        int(row["seed"]),
        int(row["n_on_screen"]),
        int(row["n_off_screen"]),
        scene_config(params),
        bank,
    )


def _render_clip(row: dict, params: dict, on_done: Callable[[], None] | None) -> AVClip:
    config = scene_config(params)
    scene = build_scene(row, params, _bank(params))
    clip = AVClip(render_frames(scene, config), config.fps, scene.mixture, config.sample_rate)
    if on_done is not None:
        on_done()
    return clip


def video_partitions(
    plan: pd.DataFrame, params: dict, on_done: Callable[[], None] | None = None
) -> dict[str, Callable[[], AVClip]]:
    """Lazy clips for a ``PartitionedDataset``: partition id (path without ``.mp4``) -> callable."""
    return {
        row["video_path"].removesuffix(".mp4"): partial(_render_clip, row, params, on_done)
        for row in plan.to_dict("records")
    }


def stem_dir(video_path: str) -> str:
    return "stems/" + video_path.removeprefix("videos/").removesuffix(".mp4")


def stems_and_manifest(
    plan: pd.DataFrame, params: dict
) -> tuple[dict[str, Callable[[], Waveform]], pd.DataFrame]:
    """Per-source ground-truth stems (lazy) and their manifest.

    The manifest has one row per stem: ``video_path, stem_path, role, class_name``; ``role`` is
    ``on_screen``, ``off_screen`` or ``background``. The stems of a clip sum to its soundtrack.
    """
    bank = _bank(params)
    stems: dict[str, Callable[[], Waveform]] = {}
    rows = []
    for row in plan.to_dict("records"):
        scene = build_scene(row, params, bank)
        for j, source in enumerate(scene.sources):
            stem_id = f"{stem_dir(row['video_path'])}/{j}_{source.role}_{source.class_name}"
            stems[stem_id] = partial(_stem_audio, row, params, j)
            rows.append(
                {
                    "video_path": row["video_path"],
                    "stem_path": f"{stem_id}.wav",
                    "role": source.role,
                    "class_name": source.class_name,
                }
            )
    return stems, pd.DataFrame(rows)


@lru_cache(maxsize=4)
def _cached_scene(seed: int, n_on: int, n_off: int, params_json: str) -> Scene:
    # The stems of one scene are saved one after another: build the scene once for all of them.
    params = json.loads(params_json)
    row = {"seed": seed, "n_on_screen": n_on, "n_off_screen": n_off}
    return build_scene(row, params, _bank(params))


def _stem_audio(row: dict, params: dict, j: int) -> Waveform:
    key = (int(row["seed"]), int(row["n_on_screen"]), int(row["n_off_screen"]))
    scene = _cached_scene(*key, json.dumps(params, sort_keys=True))
    return Waveform(scene.sources[j].audio, scene.sample_rate)


def release_lists(plan: pd.DataFrame, params: dict) -> dict[ListKey, pd.DataFrame]:
    """The clip, labelled and MoM lists of the demo set, keyed by :class:`ListKey`.

    MoMs: ``<split>_on_off_mom`` pairs an on-screen-only clip (frames and audio) with the audio
    of an off-screen-only clip; ``<split>_off_off_mom`` pairs two off-screen-only clips.
    """
    duration = float(params["duration"])
    rng = np.random.default_rng(int(params["seed"]) + 7)
    lists: dict[ListKey, pd.DataFrame] = {}

    def clip_rows(paths: list[str]) -> pd.DataFrame:
        return pd.DataFrame({"video_path": paths, "start_time": 0.0, "end_time": duration})

    for split in SPLITS:
        for kind in KINDS:
            paths = plan.loc[(plan.split == split) & (plan.kind == kind), "video_path"].tolist()
            if paths:
                label = ClipLabel.UNLABELLED if kind == "unlabelled" else ClipLabel(kind)
                lists[ListKey(Split(split), label)] = clip_rows(paths)
        on = plan.loc[(plan.split == split) & (plan.kind == "onscreen"), "video_path"].tolist()
        off = plan.loc[(plan.split == split) & (plan.kind == "offscreen"), "video_path"].tolist()
        n_moms = int(params.get("moms_per_list", 0))
        if split == "train" or not n_moms:
            continue
        if on and off:
            pairs = [(on[i % len(on)], off[int(rng.integers(len(off)))]) for i in range(n_moms)]
            key = ListKey(Split(split), ClipLabel.ONSCREEN, ClipLabel.OFFSCREEN)
            lists[key] = _mom_rows(pairs, duration)
        if len(off) >= 2:
            pairs = []
            for i in range(n_moms):
                a = i % len(off)
                b = (a + 1 + int(rng.integers(len(off) - 1))) % len(off)
                pairs.append((off[a], off[b]))
            key = ListKey(Split(split), ClipLabel.OFFSCREEN, ClipLabel.OFFSCREEN)
            lists[key] = _mom_rows(pairs, duration)
    return lists


def _mom_rows(pairs: list[tuple[str, str]], duration: float) -> pd.DataFrame:
    return pd.DataFrame(
        [(a, 0.0, duration, b, 0.0, duration) for a, b in pairs],
        columns=MOM_COLUMNS,
    )
