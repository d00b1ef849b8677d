"""Helpers of the demo tests: a tiny stand-in for the realistic demo's inputs, made by the
tests themselves (one synthetic recording per class, and two picture folders in the layout of
demo/images.py), so that neither the Debian package nor ../shared is needed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

from audioscope_kedro.demo.images import encode_png
from audioscope_kedro.demo.scenes import synth_sound

STAND_IN_CLASSES = ["tone", "chirp", "noise", "clicks", "warble", "buzz"]


@dataclass(frozen=True)
class StandIn:
    sounds: Path  # <class>/a.wav, 3 s at 8 kHz
    textured: Path  # picture folder whose background is a cluttered, textured "photo"
    flat: Path  # the same pictures on a flat grey background (only objects draw anything)


def save_rgba(path: Path, rgba: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(np.asarray(rgba)))


def stand_in_picture(rng: np.random.Generator, photo: bool) -> np.ndarray:
    """A 40x32 picture: a textured blob on a transparent surround (like a drawing), or an
    opaque textured rectangle (like a photo)."""
    h, w = 40, 32
    yy, xx = np.mgrid[:h, :w]
    rgb = rng.integers(40, 255, size=3) * (0.6 + 0.4 * ((xx // 4 + yy // 4) % 2))[..., None]
    inside = ((yy - h / 2) / (h / 2.2)) ** 2 + ((xx - w / 2) / (w / 2.2)) ** 2 < 1
    alpha = np.full((h, w), 255) if photo else np.where(inside, 255, 0)
    return np.dstack([rgb, alpha])


def _picture_folder(root: Path, flat_background: bool) -> Path:
    rng = np.random.default_rng(0)
    for i, name in enumerate(STAND_IN_CLASSES):
        for j in range(2):
            picture = stand_in_picture(rng, photo=(i + j) % 3 == 0)
            save_rgba(root / "objects" / name / f"{j}.png", picture)
    if flat_background:
        background = np.full((96, 120, 4), 128)
    else:  # smooth colour blobs plus fine texture
        coarse = rng.integers(0, 255, size=(6, 8, 3)).astype(np.uint8)
        smooth = cv2.resize(coarse, (120, 96), interpolation=cv2.INTER_CUBIC).astype(float)
        textured = np.clip(smooth + rng.normal(0, 20, smooth.shape), 0, 255)
        background = np.dstack([textured, np.full((96, 120), 255)])
    save_rgba(root / "backgrounds" / "0.png", background)
    save_rgba(root / "clutter" / "0.png", stand_in_picture(rng, photo=False))
    return root


def build_stand_in(root: Path) -> StandIn:
    rng = np.random.default_rng(1)
    for name in STAND_IN_CLASSES:
        (root / "sounds" / name).mkdir(parents=True)
        sf.write(root / "sounds" / name / "a.wav", synth_sound(name, rng, 3 * 8000, 8000), 8000)
    return StandIn(
        root / "sounds",
        _picture_folder(root / "textured", flat_background=False),
        _picture_folder(root / "flat", flat_background=True),
    )
