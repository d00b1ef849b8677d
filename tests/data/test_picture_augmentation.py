"""Picture augmentation (``train.picture_augmentation``): one look per clip, fixed over its
frames; a pure function of (seed, step, row of the global batch)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audioscope_kedro.data.picture_augmentation import (
    Look,
    PictureAugmentation,
    apply_look,
    augment_pictures,
    draw_look,
)

ON = PictureAugmentation(enabled=True)


def random_frames(batch: int = 6, frames: int = 4, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, frames, size, size, 3), generator=g, dtype=torch.uint8)


def test_a_clip_still_over_time_stays_still_and_each_clip_gets_its_own_look():
    """The same change on every frame of a clip: frames equal over time stay equal (what
    moves with a sound is the only thing that moves); the clips' looks differ."""
    still = random_frames(frames=1).expand(-1, 5, -1, -1, -1).contiguous()
    out = augment_pictures(still, ON, seed=0, step=3)
    assert out.shape == still.shape and out.dtype == torch.uint8
    assert torch.equal(out, out[:, :1].expand_as(out))
    assert not torch.equal(out, still)
    # the same picture in every row: only the looks make the rows differ
    same = still[:1].expand(6, -1, -1, -1, -1)
    looks = augment_pictures(same, ON, seed=0, step=3)
    assert len({looks[k].numpy().tobytes() for k in range(6)}) == 6


def test_the_looks_are_a_function_of_seed_step_and_row_of_the_global_batch():
    frames = random_frames()
    whole = augment_pictures(frames, ON, seed=1, step=7)
    assert torch.equal(whole, augment_pictures(frames, ON, seed=1, step=7))
    # one training process's rows 2-3 of the global batch get the looks of those rows
    assert torch.equal(augment_pictures(frames[2:4], ON, seed=1, step=7, first_row=2), whole[2:4])
    assert not torch.equal(augment_pictures(frames[2:4], ON, seed=1, step=7), whole[2:4])
    assert not torch.equal(augment_pictures(frames, ON, seed=1, step=8), whole)
    assert not torch.equal(augment_pictures(frames, ON, seed=2, step=7), whole)


def test_off_or_without_any_change_the_frames_are_untouched():
    frames = random_frames()
    assert augment_pictures(frames, PictureAugmentation(), seed=0, step=0) is frames
    nothing = PictureAugmentation(
        enabled=True, min_crop=1.0, channel_gain=0.0, brightness=0.0, grey_probability=0.0
    )
    assert torch.equal(augment_pictures(frames, nothing, seed=0, step=0), frames)


def test_the_crop_is_resized_back_to_the_whole_picture():
    frames = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)
    frames[:, :4, :4] = 200  # the top-left quarter
    look = Look(0, 0, 4, 4, gains=np.ones(3), shift=0.0, grey=False)
    assert torch.equal(apply_look(frames, look), torch.full_like(frames, 200))
    elsewhere = Look(4, 4, 4, 4, gains=np.ones(3), shift=0.0, grey=False)
    assert torch.equal(apply_look(frames, elsewhere), torch.zeros_like(frames))


def test_colour_gains_shift_and_grey():
    frames = torch.full((1, 2, 2, 3), 100, dtype=torch.uint8)
    frames[..., 2] = 50
    look = Look(0, 0, 2, 2, gains=np.array([1.2, 1.0, 0.5]), shift=0.2, grey=False)
    assert apply_look(frames, look)[0, 0, 0].tolist() == [171, 151, 76]  # x g + 0.2 * 255
    grey = apply_look(frames, Look(0, 0, 2, 2, gains=np.ones(3), shift=0.0, grey=True))
    assert grey[0, 0, 0].tolist() == [83, 83, 83]  # (100 + 100 + 50) / 3
    always_grey = PictureAugmentation(enabled=True, grey_probability=1.0)
    out = augment_pictures(random_frames(), always_grey, seed=0, step=0)
    assert torch.equal(out[..., 0], out[..., 1]) and torch.equal(out[..., 1], out[..., 2])


def test_draws_stay_in_their_ranges():
    settings = PictureAugmentation(enabled=True, min_crop=0.5, grey_probability=0.5)
    looks = [
        draw_look(settings, 20, 30, seed=0, step=s, row=r) for s in range(20) for r in range(8)
    ]
    for look in looks:
        assert 10 <= look.crop_height <= 20 and 15 <= look.crop_width <= 30
        assert 0 <= look.top <= 20 - look.crop_height and 0 <= look.left <= 30 - look.crop_width
        assert np.all(np.abs(look.gains - 1) <= 0.4) and abs(look.shift) <= 0.15
    assert 0.3 < np.mean([look.grey for look in looks]) < 0.7
    assert len({look.crop_height for look in looks}) > 5


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_crop", 0.0), ("min_crop", 1.5), ("channel_gain", 1.0), ("brightness", -0.1)]
    + [("grey_probability", 1.2)],
)
def test_settings_out_of_range_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"picture_augmentation.{field}"):
        PictureAugmentation(**{field: value})
