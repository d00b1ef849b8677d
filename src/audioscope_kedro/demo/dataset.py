"""The demo dataset: which scenes to make, how to render them, and its AudioScope-format lists.

Every scene is a pure function of (seed, split, kind, index), so the dataset is deterministic
and any one file can be rebuilt on its own. Two styles (``demo_data.style``): ``shapes``, the
self-contained default (drawn shapes, synthetic or real sounds), and ``real`` (pictures of
sounding things from a Debian package with real recordings; ``demo/real_scenes.py``).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import pandas as pd

from audioscope_kedro.data.lists import MOM_COLUMNS, ClipLabel, ListKey, Split
from audioscope_kedro.data.video_io import AVClip, Waveform
from audioscope_kedro.demo.images import (
    DemoInputMissing,
    ImageBank,
    ImageSetParams,
    prepare_images,
)
from audioscope_kedro.demo.real_scenes import (
    RealLook,
    RealScene,
    make_real_scene,
    object_records,
    render_real_frames,
)
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
OBJECT_COLUMNS = ["video_path", "index", "class_name", "sprite", "sounding", "x", "y"]


class SceneStyle(enum.StrEnum):
    SHAPES = "shapes"  # drawn shapes whose look stands for a sound class (self-contained)
    REAL = "real"  # pictures of sounding things and real recordings (the demo_real variant)


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
    # The realistic variant (conf/demo_real); the defaults keep the default demo as it was.
    style: SceneStyle = SceneStyle.SHAPES
    sound_events: bool = False  # gate recordings with on/off events (SceneConfig)
    images: ImageSetParams | None = None  # style real: which pictures show which class
    image_cache: str | None = None  # style real: where the package and sprites are kept
    real_look: RealLook = field(default_factory=RealLook)

    def __post_init__(self) -> None:
        if self.style is SceneStyle.REAL:
            if not self.sound_bank or self.images is None:
                raise ValueError(
                    "style real needs demo_data.sound_bank (the recordings) and "
                    "demo_data.images (the pictures of each class)"
                )
            if self.images.folder is None and not self.image_cache:
                raise ValueError("style real needs demo_data.image_cache (or images.folder)")
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
            sound_events=self.sound_events,
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
    include = None
    if p.style is SceneStyle.REAL:
        _check_sound_bank(p)
        include = tuple(image_classes(p))
    return _open_bank(p.sound_bank, p.sample_rate, tuple(p.sound_bank_exclude), include)


def _check_sound_bank(p: DemoDataParams) -> None:
    if not Path(p.sound_bank).is_dir():
        raise DemoInputMissing(
            f"the realistic demo needs the real recordings of demo_data.sound_bank = "
            f"{p.sound_bank} (../shared/data/sounds: <class>/<file>), which is not there"
        )


@lru_cache(maxsize=4)
def _open_bank(
    root: str, sample_rate: int, exclude: tuple[str, ...], include: tuple[str, ...] | None
) -> SoundBank:
    # One bank per setting and process, so that its decoded recordings are reused by every
    # scene (the bank is read-only once made).
    return SoundBank(root, sample_rate, exclude, include)


def image_classes(params: Mapping | DemoDataParams) -> list[str]:
    """The sound classes that have pictures (style real), from the settings alone."""
    p = demo_params(params)
    if p.images is None:
        return []
    if p.images.folder is not None:
        objects = Path(p.images.folder) / "objects"
        return sorted(d.name for d in objects.iterdir() if d.is_dir()) if objects.is_dir() else []
    return sorted(p.images.classes)


def image_manifest(params: Mapping | DemoDataParams) -> pd.DataFrame:
    """Style real: fetch and cut the pictures (once per setting, into ``image_cache``) and
    check the recordings; the manifest of every picture used. Style shapes: empty.

    Raises :class:`DemoInputMissing`, with what is missing and what to do, where the
    recordings or the package cannot be had.
    """
    p = demo_params(params)
    if p.style is not SceneStyle.REAL:
        return pd.DataFrame()
    _check_sound_bank(p)
    _, manifest = prepare_images(p.images, p.image_cache or "")
    pictured = set(manifest.loc[manifest.kind == "objects", "class_name"])
    try:
        usable = [c for c in _bank(p).classes if c in pictured]
    except ValueError:  # no recording of any pictured class
        usable = []
    if len(usable) < 2:
        raise DemoInputMissing(
            f"the sound bank {p.sound_bank} has recordings for {len(usable)} of the pictured "
            f"classes {sorted(pictured)}: the realistic demo needs at least 2"
        )
    manifest = manifest.copy()
    # pictures of a class without recordings are never drawn: the record says so
    manifest["used"] = (manifest.kind != "objects") | manifest.class_name.isin(usable)
    return manifest


@lru_cache(maxsize=2)
def _open_images(params_json: str) -> ImageBank:
    p = demo_params(json.loads(params_json))
    folder, _ = prepare_images(p.images, p.image_cache or "")
    return ImageBank(folder)


def _images(params: DemoDataParams) -> ImageBank:
    return _open_images(_params_json(params))


def _params_json(params: DemoDataParams) -> str:
    return json.dumps(asdict(params), sort_keys=True)


def build_real_scene(row: dict, params: Mapping | DemoDataParams) -> RealScene:
    p = demo_params(params)
    return make_real_scene(
        int(row["seed"]),
        int(row["n_on_screen"]),
        int(row["n_off_screen"]),
        p.scene,
        _bank(p),
        _images(p),
    )


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


def render_clip_arrays(row: dict, params: Mapping | DemoDataParams) -> tuple[np.ndarray, Scene]:
    """The frames (uint8 [F, H, W, 3]) and the scene (sounds) of one planned clip."""
    p = demo_params(params)
    if p.style is SceneStyle.REAL:
        real = build_real_scene(row, p)
        return render_real_frames(real, p.scene, p.real_look, _images(p)), real.scene
    scene = build_scene(row, p, _bank(p))
    return render_frames(scene, p.scene), scene


def _render_clip(
    row: dict, params: Mapping | DemoDataParams, on_done: Callable[[], None] | None
) -> AVClip:
    config = scene_config(params)
    frames, scene = render_clip_arrays(row, params)
    clip = AVClip(frames, config.fps, scene.mixture, config.sample_rate)
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


def visible_objects(plan: pd.DataFrame, params: Mapping | DemoDataParams) -> pd.DataFrame:
    """Style real: one row per visible object of every clip (``OBJECT_COLUMNS``: its class,
    the picture drawn, whether it is heard, its rest position), the record of what each video
    shows. Style shapes: empty."""
    p = demo_params(params)
    if p.style is not SceneStyle.REAL:
        return pd.DataFrame(columns=OBJECT_COLUMNS)
    images = _images(p)
    rows = []
    for row in plan.to_dict("records"):
        for rec in object_records(build_real_scene(row, p), images):
            rows.append({"video_path": row["video_path"], **asdict(rec)})
    return pd.DataFrame(rows, columns=OBJECT_COLUMNS)


@lru_cache(maxsize=4)
def _cached_scene(seed: int, n_on: int, n_off: int, params_json: str) -> Scene:
    # The stems of one scene are saved one after another: build the scene once for all of them.
    params = json.loads(params_json)
    row = {"seed": seed, "n_on_screen": n_on, "n_off_screen": n_off}
    return build_scene(row, params, _bank(params))


def _stem_audio(row: dict, params: DemoDataParams, j: int) -> Waveform:
    key = (int(row["seed"]), int(row["n_on_screen"]), int(row["n_off_screen"]))
    scene = _cached_scene(*key, _params_json(params))
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
