import dataclasses

import numpy as np
import pytest

from audioscope_kedro.demo.scenes import (
    SYNTH_CLASSES,
    SceneConfig,
    SoundBank,
    look_of_class,
    loudness_track,
    make_backdrop,
    make_scene,
    render_frames,
    synth_sound,
)

CONFIG = SceneConfig(sample_rate=8000, duration=2.0, fps=10.0, width=48, height=48)
# One object, no camera motion, no clutter: what is drawn is the object alone.
STILL = dataclasses.replace(
    CONFIG, visible_objects=(1, 1), camera_pan=0.0, camera_shake=0.0, clutter=0
)


def _motion(frames: np.ndarray) -> float:
    """Clip-level motion energy: mean absolute difference of consecutive frames."""
    return float(np.abs(np.diff(frames.astype(np.float32), axis=0)).mean())


def _auc(pos: list[float], neg: list[float]) -> float:
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(np.mean(pos > neg) + 0.5 * np.mean(pos == neg))


def _sync(frames: np.ndarray, audio: np.ndarray, sr: int, fps: float, grid: int = 4) -> float:
    """Highest correlation over a grid of image cells between cell brightness and loudness."""
    loud = loudness_track(audio, sr, fps, len(frames))
    f, h, w, _ = frames.shape
    cells = frames.astype(np.float32).mean(axis=-1).reshape(f, grid, h // grid, grid, w // grid)
    cells = cells.mean(axis=(2, 4)).reshape(f, -1)
    a, c = loud - loud.mean(), cells - cells.mean(axis=0)
    return float(np.max(a @ c / (np.linalg.norm(a) * np.linalg.norm(c, axis=0) + 1e-9)))


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = make_scene(3, 2, 1, CONFIG), make_scene(3, 2, 1, CONFIG), make_scene(4, 2, 1, CONFIG)
    np.testing.assert_array_equal(a.mixture, b.mixture)
    np.testing.assert_array_equal(render_frames(a, CONFIG), render_frames(b, CONFIG))
    assert not np.allclose(a.mixture, c.mixture)
    assert not np.array_equal(render_frames(a, CONFIG), render_frames(c, CONFIG))


def test_stems_sum_to_mixture_and_roles():
    scene = make_scene(1, 2, 2, CONFIG)
    roles = [s.role for s in scene.sources]
    assert (
        roles.count("on_screen") == 2
        and roles.count("off_screen") == 2
        and roles[-1] == "background"
    )
    np.testing.assert_allclose(
        np.sum([s.audio for s in scene.sources], axis=0), scene.mixture, atol=1e-6
    )
    assert np.abs(scene.mixture).max() <= 0.9 + 1e-6


@pytest.mark.parametrize("name", SYNTH_CLASSES)
def test_synth_classes_are_finite_unit_rms(name):
    x = synth_sound(name, np.random.default_rng(0), 8000, 8000)
    assert np.isfinite(x).all() and np.sqrt(np.mean(x**2)) == pytest.approx(1.0, rel=1e-3)


def test_looks_are_distinct_per_class():
    looks = {look_of_class(i) for i in range(144)}
    assert len(looks) == 144


def test_object_follows_its_loudness():
    """The learnable cue: size, brightness and height of a sounding object follow its sound."""
    scene = make_scene(5, 1, 0, STILL)
    assert not scene.distractors
    frames = render_frames(scene, STILL).astype(float)
    loud = loudness_track(scene.sources[0].audio, STILL.sample_rate, STILL.fps, len(frames))
    assert np.ptp(loud) > 0.5
    brightness = frames.sum(axis=(1, 2, 3))
    assert np.corrcoef(loud, brightness)[0, 1] > 0.8


def test_silent_object_moves_on_its_own_unheard_sound():
    """A distractor is drawn as a sounding object of its class would be, on the loudness of a
    sound that is not in the mixture; an off-screen sound draws nothing."""
    scene = make_scene(5, 0, 2, STILL)
    (d,) = scene.distractors
    assert d.look == look_of_class(SYNTH_CLASSES.index(d.class_name))
    assert not any(np.allclose(d.motion, s.audio) for s in scene.sources)
    frames = render_frames(scene, STILL).astype(float)
    loud = loudness_track(d.motion, STILL.sample_rate, STILL.fps, len(frames))
    assert np.corrcoef(loud, frames.sum(axis=(1, 2, 3)))[0, 1] > 0.8
    # The same scene with the distractor removed: a still, empty background.
    empty = render_frames(dataclasses.replace(scene, distractors=[]), STILL)
    assert np.ptp(empty.astype(float).sum(axis=(1, 2, 3))) == 0


def test_distractors_uncorrelated_with_the_soundtrack():
    """Over many scenes, a silent object's motion does not follow what is heard, a sounding
    object's does."""
    silent, sounding = [], []
    for seed in range(60):
        scene = make_scene(seed, 1, 1, CONFIG)
        mix = loudness_track(scene.mixture, CONFIG.sample_rate, 50.0, 100)
        on = scene.sources[0]
        sounding.append(
            np.corrcoef(mix, loudness_track(on.audio, CONFIG.sample_rate, 50.0, 100))[0, 1]
        )
        for d in scene.distractors:
            motion = loudness_track(d.motion, CONFIG.sample_rate, 50.0, 100)
            silent.append(np.corrcoef(mix, motion)[0, 1])
    assert len(silent) >= 60
    assert abs(np.mean(silent)) < 0.1
    assert np.mean(sounding) > np.mean(silent) + 0.3


def test_visible_objects_do_not_depend_on_what_is_heard():
    """Every scene shows visible_objects[0]..[1] objects, with distinct looks, whatever its
    sounds: an off-screen-only scene shows as many objects as an on-screen-only one."""
    config = dataclasses.replace(CONFIG, visible_objects=(2, 3))
    counts = {}
    for n_on, n_off in [(1, 0), (2, 0), (0, 1), (0, 2), (2, 2)]:
        counts[n_on, n_off] = set()
        for seed in range(10):
            scene = make_scene(seed, n_on, n_off, config)
            looks = [look for look, _, _ in scene.visible]
            counts[n_on, n_off].add(len(looks))
            assert len(set(looks)) == len(looks)
            heard = {s.class_name for s in scene.sources if s.role != "background"}
            assert not heard & {d.class_name for d in scene.distractors}
    assert all(c == {2, 3} for c in counts.values()), counts


def test_camera_moves_the_whole_frame():
    backdrop = make_backdrop(0, CONFIG, 20)
    assert backdrop.canvas.shape[0] == CONFIG.height + 2 * backdrop.margin
    assert backdrop.offsets.min() >= 0 and backdrop.offsets.max() <= 2 * backdrop.margin
    assert len({tuple(o) for o in backdrop.offsets}) > 3
    still = make_backdrop(0, dataclasses.replace(CONFIG, camera_pan=0.0, camera_shake=0.0), 20)
    assert still.margin == 0 and not still.offsets.any()


def test_motion_energy_does_not_tell_on_screen_from_off_screen():
    """The shortcut that the demo had: off-screen-only clips were still, on-screen-only ones
    moved. Now both move alike (benchmarks/shortcut_baseline.py measures it on the demo)."""
    on = [_motion(render_frames(make_scene(s, 1 + s % 2, 0, CONFIG), CONFIG)) for s in range(16)]
    off = [
        _motion(render_frames(make_scene(100 + s, 0, 1 + s % 2, CONFIG), CONFIG)) for s in range(16)
    ]
    assert min(off) > 0.2 * np.mean(on)
    assert 0.75 < np.mean(off) / np.mean(on) < 1.33
    assert 0.25 < _auc(on, off) < 0.75


def test_synchrony_tells_on_screen_from_off_screen():
    """What the model must learn is there: a visible object follows the soundtrack only when
    it is the one sounding."""

    def sync(seed: int, n_on: int, n_off: int) -> float:
        scene = make_scene(seed, n_on, n_off, CONFIG)
        frames = render_frames(scene, CONFIG)
        return _sync(frames, scene.mixture, CONFIG.sample_rate, CONFIG.fps)

    on = [sync(s, 1, 0) for s in range(16)]
    off = [sync(100 + s, 0, 1) for s in range(16)]
    assert _auc(on, off) > 0.8


def test_config_rejects_bad_settings():
    with pytest.raises(ValueError, match="visible_objects"):
        SceneConfig(visible_objects=(3, 2))
    with pytest.raises(ValueError, match="negative"):
        SceneConfig(camera_shake=-1.0)


def test_sound_bank(shared_data):
    bank = SoundBank(shared_data / "sounds", 8000, exclude=("mixture_unlabeled",))
    assert len(bank.classes) >= 40 and "mixture_unlabeled" not in bank.classes
    scene = make_scene(2, 2, 1, CONFIG, bank)
    assert {s.class_name for s in scene.sources[:3]} <= set(bank.classes)
    for s in scene.sources[:3]:
        assert (
            s.audio.shape == (16000,) and np.isfinite(s.audio).all() and np.abs(s.audio).max() > 0
        )
    for d in scene.distractors:
        assert d.class_name in bank.classes and d.motion.shape == (16000,)
    assert render_frames(scene, CONFIG).shape == (20, 48, 48, 3)


def test_sound_bank_rejects_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no <class>/<audio file>"):
        SoundBank(tmp_path, 8000)
