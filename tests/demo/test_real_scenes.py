"""The realistic demo's scenes (demo/real_scenes.py), on a tiny stand-in set of pictures and
recordings that the tests make themselves: neither the Debian package nor ../shared is needed
(test_images.py has the test that fetches the real package)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from audioscope_kedro.demo.images import ImageBank
from audioscope_kedro.demo.real_scenes import RealLook, make_real_scene, render_real_frames
from audioscope_kedro.demo.scenes import SceneConfig, SoundBank, loudness_track
from tests.demo.helpers import save_rgba

CONFIG = SceneConfig(
    sample_rate=8000,
    duration=2.0,
    fps=10.0,
    width=64,
    height=64,
    visible_objects=(2, 3),
    camera_pan=0.08,
    camera_shake=0.01,
    clutter=3,
    sound_events=True,
)
LOOK = RealLook()
# A still camera, no wander, no clutter: what changes in a frame is the objects' loudness alone.
STILL = dataclasses.replace(CONFIG, camera_pan=0.0, camera_shake=0.0, clutter=0)
STILL_LOOK = dataclasses.replace(LOOK, drift=0.0, camera_zoom=0.0)


@pytest.fixture(scope="module")
def assets(stand_in) -> tuple[SoundBank, ImageBank, ImageBank]:
    """The stand-in recordings, and the pictures over a cluttered and over a flat background."""
    return (
        SoundBank(stand_in.sounds, 8000),
        ImageBank(stand_in.textured),
        ImageBank(stand_in.flat),
    )


def _object_tracks(real, images, num_frames: int):
    """Per visible object, rendered alone on the flat background with a still camera: its drawn
    area per frame, and the loudness of its motion audio and of the soundtrack."""
    out = []
    for obj in real.objects:
        alone = dataclasses.replace(real, objects=[obj])
        frames = render_real_frames(alone, STILL, STILL_LOOK, images).astype(np.float32)
        area = (np.abs(frames - 128).sum(axis=-1) > 6).sum(axis=(1, 2)).astype(float)
        own = loudness_track(obj.motion, STILL.sample_rate, STILL.fps, num_frames)
        heard = loudness_track(real.scene.mixture, STILL.sample_rate, STILL.fps, num_frames)
        out.append((obj, area, own, heard))
    return out


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def _auc(pos: list[float], neg: list[float]) -> float:
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(np.mean(pos > neg) + 0.5 * np.mean(pos == neg))


def test_same_seed_same_clip_and_frames_of_at_least_64(assets):
    bank, images, _ = assets
    a, b = (make_real_scene(3, 1, 1, CONFIG, bank, images) for _ in range(2))
    frames = render_real_frames(a, CONFIG, LOOK, images)
    assert frames.shape == (20, 64, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, render_real_frames(b, CONFIG, LOOK, images))
    np.testing.assert_array_equal(a.scene.mixture, b.scene.mixture)
    other = make_real_scene(4, 1, 1, CONFIG, bank, images)
    assert not np.array_equal(frames, render_real_frames(other, CONFIG, LOOK, images))


def test_background_moves(assets):
    """With no object at all, the frames still change: the camera pans, shakes and zooms over
    the cluttered photo. A still camera leaves them identical (the measure can see it)."""
    bank, images, _ = assets
    real = dataclasses.replace(make_real_scene(0, 0, 1, CONFIG, bank, images), objects=[])
    moving = render_real_frames(real, CONFIG, LOOK, images).astype(np.float32)
    assert np.abs(np.diff(moving, axis=0)).mean() > 5.0
    still = render_real_frames(real, STILL, STILL_LOOK, images).astype(np.float32)
    assert np.abs(np.diff(still, axis=0)).max() == 0


def test_every_visible_object_moves_and_only_sounding_ones_follow_the_soundtrack(assets):
    """Each visible object, sounding or silent, grows and shrinks with the loudness of its own
    motion audio (correlation of its drawn area with it: > 0.9 for every object of 40 scenes,
    measured 0.99 at the least); the area of a sounding object follows the soundtrack, that
    of a silent one does not (mean correlation 0.69 vs 0.04 over 40 and 65 objects)."""
    bank, _, flat = assets
    sounding, silent = [], []
    for seed in range(40):
        real = make_real_scene(seed, 1, 1, STILL, bank, flat)
        for obj, area, own, heard in _object_tracks(real, flat, 20):
            assert np.ptp(area) > 0, "a visible object that does not move"
            assert _corr(area, own) > 0.9
            (sounding if obj.sounding else silent).append(_corr(area, heard))
    assert len(sounding) == 40 and len(silent) >= 40
    assert np.mean(sounding) > 0.4
    assert abs(np.mean(silent)) < 0.1


def test_visible_objects_do_not_depend_on_what_is_heard(assets):
    """2 to 3 objects in every scene whatever its sounds, of distinct classes, silent ones
    never of a heard class; as many sounding objects as on-screen sounds."""
    bank, images, _ = assets
    counts = {}
    for n_on, n_off in [(1, 0), (2, 0), (0, 1), (0, 2), (2, 2)]:
        counts[n_on, n_off] = set()
        for seed in range(12):
            real = make_real_scene(seed, n_on, n_off, CONFIG, bank, images)
            classes = [o.class_name for o in real.objects]
            counts[n_on, n_off].add(len(classes))
            assert len(set(classes)) == len(classes)
            assert sum(o.sounding for o in real.objects) == n_on
            heard = {s.class_name for s in real.scene.sources if s.role != "background"}
            assert not heard & {o.class_name for o in real.objects if not o.sounding}
    assert all(c == {2, 3} for c in counts.values()), counts


def test_drawing_order_does_not_tell_sounding_objects(assets):
    """Objects are drawn in a random order: a sounding object is not always behind (first
    drawn) or in front, which overlaps would show without listening."""
    bank, images, _ = assets
    first = [make_real_scene(s, 1, 0, CONFIG, bank, images).objects[0].sounding for s in range(60)]
    assert 0.2 < np.mean(first) < 0.65  # 1 of 2 or 3 objects: 0.42 expected


def test_motion_does_not_tell_on_screen_from_off_screen_but_synchrony_does(assets):
    """Off-screen-only clips move as much as on-screen-only ones (motion energy AUC within
    0.25..0.75 on 16 + 16 clips; measured 0.45); the best correlation of an object's area with
    the soundtrack tells them apart (AUC > 0.8; measured 0.98)."""
    bank, images, flat = assets
    motion, sync = {True: [], False: []}, {True: [], False: []}
    for s in range(16):
        for on in (True, False):
            n_on, n_off = (1 + s % 2, 0) if on else (0, 1 + s % 2)
            real = make_real_scene(100 * on + s, n_on, n_off, CONFIG, bank, images)
            frames = render_real_frames(real, CONFIG, LOOK, images).astype(np.float32)
            motion[on].append(float(np.abs(np.diff(frames, axis=0)).mean()))
            tracks = _object_tracks(real, flat, 20)
            sync[on].append(max(_corr(area, heard) for _, area, _, heard in tracks))
    assert 0.25 < _auc(motion[True], motion[False]) < 0.75
    assert _auc(sync[True], sync[False]) > 0.8


def test_sound_classes_without_pictures_are_refused(assets):
    bank, _, _ = assets
    root = Path(bank.root).parent / "few"
    save_rgba(root / "objects" / "tone" / "0.png", np.full((8, 8, 4), 255))
    save_rgba(root / "backgrounds" / "0.png", np.full((8, 8, 4), 255))
    with pytest.raises(ValueError, match="have no pictures"):
        make_real_scene(0, 1, 0, CONFIG, bank, ImageBank(root))
