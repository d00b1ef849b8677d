import numpy as np
import pytest

from audioscope_kedro.demo.scenes import (
    SYNTH_CLASSES,
    SceneConfig,
    SoundBank,
    look_of_class,
    loudness_track,
    make_scene,
    render_frames,
    synth_sound,
)

CONFIG = SceneConfig(
    sample_rate=8000, duration=2.0, fps=10.0, width=48, height=48, distractor_probability=0.0
)


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = make_scene(3, 2, 1, CONFIG), make_scene(3, 2, 1, CONFIG), make_scene(4, 2, 1, CONFIG)
    np.testing.assert_array_equal(a.mixture, b.mixture)
    np.testing.assert_array_equal(render_frames(a, CONFIG), render_frames(b, CONFIG))
    assert not np.allclose(a.mixture, c.mixture)


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


def test_object_follows_loudness_and_offscreen_draws_nothing():
    scene = make_scene(5, 1, 0, CONFIG)
    frames = render_frames(scene, CONFIG).astype(float)
    loud = loudness_track(scene.sources[0].audio, CONFIG.sample_rate, CONFIG.fps, len(frames))
    brightness = frames.sum(axis=(1, 2, 3))
    assert np.corrcoef(loud, brightness)[0, 1] > 0.8
    off = make_scene(5, 0, 2, CONFIG)
    off_frames = render_frames(off, CONFIG)
    assert np.ptp(off_frames.astype(float).sum(axis=(1, 2, 3))) == 0  # nothing moves


def test_sound_bank(shared_data):
    bank = SoundBank(shared_data / "sounds", 8000, exclude=("mixture_unlabeled",))
    assert len(bank.classes) >= 40 and "mixture_unlabeled" not in bank.classes
    scene = make_scene(2, 2, 1, CONFIG, bank)
    assert {s.class_name for s in scene.sources[:3]} <= set(bank.classes)
    for s in scene.sources[:3]:
        assert (
            s.audio.shape == (16000,) and np.isfinite(s.audio).all() and np.abs(s.audio).max() > 0
        )


def test_sound_bank_rejects_empty_folder(tmp_path):
    with pytest.raises(ValueError, match="no <class>/<audio file>"):
        SoundBank(tmp_path, 8000)
