"""Realistic scenes for the ``demo_real`` variant: real pictures of sounding things, moving with
their real recordings, over a real background photo seen by a moving camera (plain numpy +
OpenCV, no Kedro).

The sounds are those of :func:`~audioscope_kedro.demo.scenes.make_scene` with a sound bank of
real recordings restricted to the classes that have pictures; each visible object (sounding,
or silent and moving on the loudness of a sound of its own that is never heard) is drawn as a
picture of its class (:class:`~audioscope_kedro.demo.images.ImageBank`). Which picture, where
it wanders, the background and the camera path come from a random stream of their own, seeded
by the scene's seed, so the sounds of a scene do not depend on the pictures and vice versa.

What tells a sounding object from a silent one is only the synchrony of its motion with what is
heard: both kinds are drawn from the same pictures, sizes and motions; they are drawn in a
random order (the sounding ones would otherwise always be behind); every scene shows as many
objects whatever it sounds like (``SceneConfig.visible_objects``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from audioscope_kedro.demo.images import ImageBank, Sprite
from audioscope_kedro.demo.scenes import (
    Scene,
    SceneConfig,
    SoundBank,
    loudness_track,
    make_scene,
    pan_and_shake,
)


@dataclass(frozen=True)
class RealLook:
    """How a realistic scene moves (the ``demo_data.real_look`` block); sizes and distances are
    fractions of the frame's shorter side."""

    object_size: float = 0.42  # longest side of an object's picture at full loudness
    size_range: tuple[float, float] = (0.6, 1.0)  # its scale from silence to full loudness
    brightness_range: tuple[float, float] = (0.35, 1.0)  # its brightness, likewise
    bounce: float = 0.07  # how far it jumps up at full loudness
    drift: float = 0.02  # amplitude of each object's slow wander (independent of any sound)
    camera_zoom: float = 0.05  # the camera's slow zoom in and out, 1 to 1 + camera_zoom
    clutter_size: tuple[float, float] = (0.08, 0.16)  # longest side of a clutter picture
    background_zoom: tuple[float, float] = (1.0, 1.6)  # how much of the photo the canvas shows

    def __post_init__(self) -> None:
        for name in ("size_range", "brightness_range", "clutter_size", "background_zoom"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"real_look.{name} must be [low, high] with 0 < low <= high")
        if self.object_size <= 0:
            raise ValueError("real_look.object_size must be positive")
        if min(self.bounce, self.drift, self.camera_zoom) < 0:
            raise ValueError("real_look.bounce, drift and camera_zoom must not be negative")


@dataclass
class VisibleObject:
    class_name: str
    sprite: int  # index into ImageBank.objects[class_name]
    position: tuple[float, float]  # rest position of its centre, fractions of width and height
    motion: np.ndarray  # float32 [T]: the audio whose loudness moves it
    sounding: bool  # its motion audio is heard in the scene
    wander: np.ndarray  # [2, 2]: frequency (Hz) and phase of its drift, per axis (x, y)


@dataclass
class RealScene:
    scene: Scene  # the sounds: sources, stems and mixture as in the default demo
    objects: list[VisibleObject]  # in drawing order
    background: int  # index into ImageBank.backgrounds
    view_seed: int  # background crop, clutter and camera path (see render_real_frames)


def make_real_scene(
    seed: int,
    n_on: int,
    n_off: int,
    config: SceneConfig,
    bank: SoundBank,
    images: ImageBank,
) -> RealScene:
    """One realistic scene from its seed; the same seed and settings give the same scene.

    The sounds are ``make_scene(seed, ...)`` exactly, so the stems of a clip can be rebuilt
    without the pictures.
    """
    missing = sorted(set(bank.classes) - set(images.objects))
    if missing:
        raise ValueError(
            f"sound classes {missing} have no pictures in {images.folder}: restrict the sound "
            "bank to the classes of the image set"
        )
    scene = make_scene(seed, n_on, n_off, config, bank)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    visible = [
        (s.class_name, s.position, s.audio, True) for s in scene.sources if s.role == "on_screen"
    ] + [(d.class_name, d.position, d.motion, False) for d in scene.distractors]
    objects = [
        VisibleObject(
            class_name=name,
            sprite=int(rng.integers(len(images.objects[name]))),
            position=position,
            motion=motion,
            sounding=sounding,
            wander=np.stack([rng.uniform(0.05, 0.3, 2), rng.uniform(0, 2 * np.pi, 2)], axis=1),
        )
        for name, position, motion, sounding in visible
    ]
    order = rng.permutation(len(objects))
    return RealScene(
        scene=scene,
        objects=[objects[i] for i in order],
        background=int(rng.integers(len(images.backgrounds))),
        view_seed=int(rng.integers(2**31)),
    )


def _paste(canvas: np.ndarray, sprite: Sprite, cx: float, cy: float, side: float, gain: float):
    """Alpha-blend ``sprite``, scaled to longest side ``side`` and brightness ``gain``, centred
    at (cx, cy) on ``canvas`` (float32 RGB), clipped at its borders."""
    h, w = sprite.rgba.shape[:2]
    scale = side / max(h, w)
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    img = cv2.resize(sprite.rgba, (sw, sh), interpolation=cv2.INTER_AREA)
    x0, y0 = round(cx - sw / 2), round(cy - sh / 2)
    cx0, cy0 = max(0, x0), max(0, y0)
    cx1, cy1 = min(canvas.shape[1], x0 + sw), min(canvas.shape[0], y0 + sh)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    part = img[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    alpha = part[..., 3:4]
    roi = canvas[cy0:cy1, cx0:cx1]
    roi[:] = roi * (1 - alpha) + part[..., :3] * gain * alpha


def make_canvas(
    real: RealScene, config: SceneConfig, look: RealLook, images: ImageBank, margin: int
) -> np.ndarray:
    """The static world behind the objects: a crop of the scene's background photo, larger than
    the frame by ``margin`` on each side, with ``config.clutter`` pictures of unrelated things
    (never of a sound class) lying on it."""
    rng = np.random.default_rng(real.view_seed)
    ch, cw = config.height + 2 * margin, config.width + 2 * margin
    photo = images.backgrounds[real.background].rgba[..., :3]
    zoom = rng.uniform(*look.background_zoom)
    scale = max(cw / photo.shape[1], ch / photo.shape[0]) * zoom
    big = cv2.resize(
        photo,
        (max(cw, round(photo.shape[1] * scale)), max(ch, round(photo.shape[0] * scale))),
        interpolation=cv2.INTER_AREA,
    )
    y = int(rng.integers(big.shape[0] - ch + 1))
    x = int(rng.integers(big.shape[1] - cw + 1))
    canvas = np.ascontiguousarray(big[y : y + ch, x : x + cw], dtype=np.float32)
    if rng.random() < 0.5:
        canvas = np.ascontiguousarray(canvas[:, ::-1])
    size = min(config.height, config.width)
    for _ in range(config.clutter if images.clutter else 0):
        sprite = images.clutter[int(rng.integers(len(images.clutter)))]
        side = size * rng.uniform(*look.clutter_size)
        _paste(canvas, sprite, rng.uniform(0, cw), rng.uniform(0, ch), side, rng.uniform(0.7, 1))
    return canvas


def camera_path(
    seed: int, config: SceneConfig, look: RealLook, num_frames: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Per frame, the camera's offset from its rest position (pixels, [F, 2]) and zoom ([F]),
    and the canvas margin that keeps the view inside the canvas. A slow pan (two random
    sinusoids per axis), a shake (independent per frame) and a slow zoom in and out."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 2]))
    size = min(config.height, config.width)
    pan, shake = config.camera_pan * size, config.camera_shake * size
    offset = pan_and_shake(rng, num_frames, config.fps, pan, shake)
    t = np.arange(num_frames) / config.fps
    f, phase = rng.uniform(0.05, 0.2), rng.uniform(0, 2 * np.pi)
    zoom = 1 + look.camera_zoom * (0.5 - 0.5 * np.cos(2 * np.pi * f * t + phase))
    margin = int(np.ceil(pan + 3 * shake)) + 2  # zoom >= 1 only narrows the view
    return offset, zoom, margin


def render_real_frames(
    real: RealScene, config: SceneConfig, look: RealLook, images: ImageBank
) -> np.ndarray:
    """uint8 RGB frames [F, H, W, 3]: each object's picture grows, brightens and jumps with
    its sound's loudness (a silent one with that of its own unheard sound) while it wanders
    slowly, over the background photo and its clutter, seen by a panning, zooming, shaking
    camera; off-screen sounds draw nothing."""
    h, w = config.height, config.width
    size = min(h, w)
    num_frames = int(round(real.scene.duration * config.fps))
    offset, zoom, margin = camera_path(real.view_seed, config, look, num_frames)
    canvas = make_canvas(real, config, look, images, margin)
    t = np.arange(num_frames) / config.fps
    tracks = [
        loudness_track(o.motion, real.scene.sample_rate, config.fps, num_frames)
        for o in real.objects
    ]
    (s_lo, s_hi), (b_lo, b_hi) = look.size_range, look.brightness_range
    frames = np.empty((num_frames, h, w, 3), np.uint8)
    for k in range(num_frames):
        world = canvas.copy()
        for obj, loud in zip(real.objects, tracks, strict=True):
            (fx, px), (fy, py) = obj.wander
            x = obj.position[0] * w + look.drift * size * np.sin(2 * np.pi * fx * t[k] + px)
            y = obj.position[1] * h + look.drift * size * np.sin(2 * np.pi * fy * t[k] + py)
            y -= look.bounce * size * loud[k]
            _paste(
                world,
                images.objects[obj.class_name][obj.sprite],
                margin + x,
                margin + y,
                look.object_size * size * (s_lo + (s_hi - s_lo) * loud[k]),
                b_lo + (b_hi - b_lo) * loud[k],
            )
        # The camera looks at the canvas centre moved by its offset, magnified by its zoom.
        centre = np.array([margin + w / 2, margin + h / 2]) + offset[k]
        z = zoom[k]
        matrix = np.array(
            [[z, 0, w / 2 - z * centre[0]], [0, z, h / 2 - z * centre[1]]], dtype=np.float64
        )
        view = cv2.warpAffine(
            world, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
        frames[k] = np.clip(view + 0.5, 0, 255).astype(np.uint8)
    return frames


@dataclass
class ObjectRecord:
    """One visible object of a clip, for the run's record (``objects.csv``)."""

    index: int
    class_name: str
    sprite: str
    sounding: bool
    x: float
    y: float


def object_records(real: RealScene, images: ImageBank) -> list[ObjectRecord]:
    return [
        ObjectRecord(
            i,
            o.class_name,
            images.objects[o.class_name][o.sprite].name,
            o.sounding,
            round(o.position[0], 4),
            round(o.position[1], 4),
        )
        for i, o in enumerate(real.objects)
    ]


__all__ = [
    "ObjectRecord",
    "RealLook",
    "RealScene",
    "VisibleObject",
    "camera_path",
    "make_canvas",
    "make_real_scene",
    "object_records",
    "render_real_frames",
]
