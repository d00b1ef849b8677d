"""Picture augmentation of training batches: each clip's frames get one random change of look
(crop, colour, grey), the same for all of its frames.

Why one look per clip: the on-screen classifier must learn which sounds go with *what moves*
in the picture. A look that stays fixed over the clip keeps every motion (and the synchrony
between a moving object and its sound) intact, while the things a network can otherwise key
on without listening, the exact pictures, colours and framing of the few object images of a
demo, vary from example to example. Not in the AudioScope papers (docs/model.md, "Picture
augmentation"); off by default.

Each clip's look is a pure function of ``(seed, step, row)``, ``row`` its place in the global
batch, so a resumed run sees the looks of an uninterrupted one, and a batch shared among
several training processes gets the looks one process would give it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# a fourth word for the looks' seed sequence, so that they are drawn independently of the
# batch's own draws (data.batches.random_mom_batch seeds with [seed, step])
_LOOKS = 0x6C6F6F6B


@dataclass(frozen=True)
class PictureAugmentation:
    """The ``train.picture_augmentation`` block: one random look per training clip."""

    enabled: bool = False
    min_crop: float = 0.6  # crop the same share in [min_crop, 1] of both sides, resized back
    channel_gain: float = 0.4  # each colour channel times a gain in [1 - g, 1 + g]
    brightness: float = 0.15  # plus a shift in [-b, b] (pixel values in [0, 1])
    grey_probability: float = 0.3  # share of clips shown in grey

    def __post_init__(self):
        if not 0 < self.min_crop <= 1:
            raise ValueError(
                f"picture_augmentation.min_crop must be in (0, 1], got {self.min_crop}"
            )
        if not 0 <= self.channel_gain < 1:
            raise ValueError(
                f"picture_augmentation.channel_gain must be in [0, 1), got {self.channel_gain}"
            )
        if self.brightness < 0:
            raise ValueError(f"picture_augmentation.brightness must be >= 0, got {self.brightness}")
        if not 0 <= self.grey_probability <= 1:
            raise ValueError(
                "picture_augmentation.grey_probability must be in [0, 1], "
                f"got {self.grey_probability}"
            )


@dataclass(frozen=True)
class Look:
    """One clip's change of look."""

    top: int
    left: int
    crop_height: int
    crop_width: int
    gains: np.ndarray  # [3] per colour channel
    shift: float
    grey: bool


def draw_look(
    settings: PictureAugmentation, height: int, width: int, seed: int, step: int, row: int
) -> Look:
    """The look of the clip in row ``row`` of the global batch of ``step``."""
    rng = np.random.default_rng([seed, step, row, _LOOKS])
    scale = rng.uniform(settings.min_crop, 1.0)
    crop_height, crop_width = max(2, round(height * scale)), max(2, round(width * scale))
    return Look(
        top=int(rng.integers(0, height - crop_height + 1)),
        left=int(rng.integers(0, width - crop_width + 1)),
        crop_height=crop_height,
        crop_width=crop_width,
        gains=rng.uniform(1 - settings.channel_gain, 1 + settings.channel_gain, 3),
        shift=float(rng.uniform(-settings.brightness, settings.brightness)),
        grey=bool(rng.random() < settings.grey_probability),
    )


def apply_look(frames: torch.Tensor, look: Look) -> torch.Tensor:
    """``[F, H, W, 3]`` uint8 frames of one clip with ``look``: the same change on every frame."""
    _, height, width, _ = frames.shape
    x = frames.float().div(255)
    crop = x[:, look.top : look.top + look.crop_height, look.left : look.left + look.crop_width]
    if (look.crop_height, look.crop_width) != (height, width):
        crop = F.interpolate(
            crop.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", align_corners=False
        ).permute(0, 2, 3, 1)
    out = crop * torch.from_numpy(look.gains).to(crop) + look.shift
    if look.grey:
        out = out.mean(-1, keepdim=True).expand_as(out)
    return out.clamp(0, 1).mul(255).round().to(torch.uint8)


def augment_pictures(
    frames: torch.Tensor, settings: PictureAugmentation, seed: int, step: int, first_row: int = 0
) -> torch.Tensor:
    """``[B, F, H, W, 3]`` uint8 frames, rows ``first_row ...`` of the global batch of
    ``step``, each clip with its own look (:func:`draw_look`); unchanged when the settings are
    not ``enabled``."""
    if not settings.enabled or len(frames) == 0:
        return frames
    _, _, height, width, _ = frames.shape
    return torch.stack(
        [
            apply_look(clip, draw_look(settings, height, width, seed, step, first_row + k))
            for k, clip in enumerate(frames)
        ]
    )
