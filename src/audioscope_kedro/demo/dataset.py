"""The demo dataset: which scenes to make, how to render them, and its AudioScope-format lists.

Every scene is a pure function of (seed, split, kind, index), so the dataset is deterministic
and any one file can be rebuilt on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
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
from audioscope_kedro.parameters import parse

SPLITS = ("train", "validate", "test")
KINDS = ("unlabelled", "onscreen", "offscreen")


@dataclass(frozen=True)
class DemoDataParams:
    """The ``demo_data`` block (``conf/base/parameters_demo_data.yml`` says what each does)."""

    seed: int = 0
    sample_rate: int = 16000
    duration: float = 5.0  # the nodes set it to the project's clip_seconds
    fps: float = 15.0
    width: int = 96
    height: int = 96
    sound_bank: str | None = None
    sound_bank_exclude: tuple[str, ...] = ()
    max_on_screen: int = 2
    max_off_screen: int = 2
    level_range_db: tuple[float, float] = (-6.0, 6.0)
    background_noise_db: float = -35.0
    visible_objects: tuple[int, int] = (2, 3)
    camera_pan: float = 0.06
    camera_shake: float = 0.012
    clutter: int = 10
    counts: dict[str, int] = field(default_factory=dict)
    moms_per_list: int = 0

    def __post_init__(self) -> None:
        keys = {s if k == "unlabelled" else f"{s}_{k}" for s in SPLITS for k in KINDS}
        unknown = sorted(set(self.counts) - keys)
        if unknown:
            raise ValueError(f"unknown list(s) in counts: {unknown}; known: {sorted(keys)}")
        if min(self.max_on_screen, self.max_off_screen) < 1:
            raise ValueError("max_on_screen and max_off_screen must be at least 1")
        if self.visible_objects[0] < self.max_on_screen:
            raise ValueError(
                f"visible_objects {list(self.visible_objects)} starts below max_on_screen "
                f"{self.max_on_screen}: scenes with more sounding objects would show more "
                "objects, and the number of visible objects would tell on-screen clips apart"
            )
        _ = self.scene  # SceneConfig checks its own settings

    @property
    def scene(self) -> SceneConfig:
        return SceneConfig(
            sample_rate=self.sample_rate,
            duration=self.duration,
            fps=self.fps,
            width=self.width,
            height=self.height,
            level_range_db=self.level_range_db,
            background_noise_db=self.background_noise_db,
            visible_objects=self.visible_objects,
            camera_pan=self.camera_pan,
            camera_shake=self.camera_shake,
            clutter=self.clutter,
        )


def demo_params(params: Mapping | DemoDataParams) -> DemoDataParams:
    """The block parsed; an unknown key is an error naming it."""
    return parse(DemoDataParams, params, "demo_data")


def scene_config(params: Mapping | DemoDataParams) -> SceneConfig:
    return demo_params(params).scene


def _scene_seed(seed: int, split: str, kind: str, index: int) -> int:
    state = np.random.SeedSequence([seed, SPLITS.index(split), KINDS.index(kind), index])
    return int(state.generate_state(1)[0])


def plan_scenes(params: Mapping | DemoDataParams) -> pd.DataFrame:
    """One row per scene: video path, split, kind, scene seed, on- and off-screen source counts.

    ``counts`` maps ``<split>`` (unlabelled) and ``<split>_onscreen`` / ``<split>_offscreen``
    (labelled) to a number of clips. On-screen-only and off-screen-only clips draw their number
    of sounds from the same range, ``1..min(max_on_screen, max_off_screen)``, so that neither
    is louder or busier than the other.
    """
    p = demo_params(params)
    max_on, max_off = p.max_on_screen, p.max_off_screen
    max_labelled = min(max_on, max_off)
    rows = []
    for split in SPLITS:
        for kind in KINDS:
            key = split if kind == "unlabelled" else f"{split}_{kind}"
            for i in range(int(p.counts.get(key, 0))):
                seed = _scene_seed(p.seed, split, kind, i)
                rng = np.random.default_rng(seed + 1)
                if kind == "onscreen":
                    n_on, n_off = int(rng.integers(1, max_labelled + 1)), 0
                elif kind == "offscreen":
                    n_on, n_off = 0, int(rng.integers(1, max_labelled + 1))
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


def _bank(params: Mapping | DemoDataParams) -> SoundBank | None:
    p = demo_params(params)
    if not p.sound_bank:
        return None
    return SoundBank(p.sound_bank, p.sample_rate, p.sound_bank_exclude)


def build_scene(
    row: dict, params: Mapping | DemoDataParams, bank: SoundBank | None = None
) -> Scene:
    return make_scene(
        int(row["seed"]),
        int(row["n_on_screen"]),
        int(row["n_off_screen"]),
        scene_config(params),
        bank,
    )


def _render_clip(
    row: dict, params: Mapping | DemoDataParams, on_done: Callable[[], None] | None
) -> AVClip:
    config = scene_config(params)
    scene = build_scene(row, params, _bank(params))
    clip = AVClip(render_frames(scene, config), config.fps, scene.mixture, config.sample_rate)
    if on_done is not None:
        on_done()
    return clip


def video_partitions(
    plan: pd.DataFrame, params: Mapping | DemoDataParams, on_done: Callable[[], None] | None = None
) -> dict[str, Callable[[], AVClip]]:
    """Lazy clips for a ``PartitionedDataset``: partition id (path without ``.mp4``) -> callable."""
    return {
        row["video_path"].removesuffix(".mp4"): partial(_render_clip, row, params, on_done)
        for row in plan.to_dict("records")
    }


def stem_dir(video_path: str) -> str:
    return "stems/" + video_path.removeprefix("videos/").removesuffix(".mp4")


def stems_and_manifest(
    plan: pd.DataFrame, params: Mapping | DemoDataParams
) -> tuple[dict[str, Callable[[], Waveform]], pd.DataFrame]:
    """Per-source ground-truth stems (lazy) and their manifest.

    The manifest has one row per stem: ``video_path, stem_path, role, class_name``; ``role`` is
    ``on_screen``, ``off_screen`` or ``background``. The stems of a clip sum to its soundtrack.
    """
    params = demo_params(params)
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


def _stem_audio(row: dict, params: DemoDataParams, j: int) -> Waveform:
    key = (int(row["seed"]), int(row["n_on_screen"]), int(row["n_off_screen"]))
    scene = _cached_scene(*key, json.dumps(asdict(params), sort_keys=True))
    return Waveform(scene.sources[j].audio, scene.sample_rate)


def release_lists(
    plan: pd.DataFrame, params: Mapping | DemoDataParams
) -> dict[ListKey, pd.DataFrame]:
    """The clip, labelled and MoM lists of the demo set, keyed by :class:`ListKey`.

    MoMs: ``<split>_on_off_mom`` pairs an on-screen-only clip (frames and audio) with the audio
    of an off-screen-only clip; ``<split>_off_off_mom`` pairs two off-screen-only clips.
    """
    p = demo_params(params)
    duration = p.duration
    rng = np.random.default_rng(p.seed + 7)
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
        n_moms = p.moms_per_list
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
