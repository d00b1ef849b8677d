"""Synthetic audio-visual scenes for the demo dataset (plain numpy + OpenCV, no Kedro).

A scene has visible sounding objects, silent visible objects (distractors), off-screen sounds
with nothing visible, and background noise. Each object's look (shape, colour, texture) is a
function of its sound class, and its size, brightness and vertical motion follow its sound's
loudness over time, so audio-visual correspondence is learnable.

Nothing visual tells an on-screen-only clip from an off-screen-only one without listening
(docs/demo.md; ``benchmarks/shortcut_baseline.py`` measures it): every scene shows the same
number of visible objects whatever its sounds, silent ones filling up; a silent object moves
exactly as a sounding object of its class would, on the loudness of a sound of its own that is
never heard (so its motion is uncorrelated with the soundtrack); the camera pans and shakes
over a cluttered background. Only the synchrony between a visible object and a sound heard in
the clip (and which sound class goes with which look) tells what is on screen. Everything is a
pure function of the scene's seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf

SYNTH_CLASSES = ["tone", "chirp", "noise", "clicks", "warble", "buzz"]
SHAPES = ["circle", "square", "triangle", "diamond", "ring", "cross"]
COLOURS = [
    (230, 60, 50),
    (60, 200, 80),
    (60, 110, 240),
    (240, 210, 50),
    (220, 70, 220),
    (60, 220, 230),
    (250, 140, 40),
    (240, 240, 240),
]
TEXTURES = ["solid", "stripes", "checker"]


@dataclass(frozen=True)
class Look:
    shape: str
    colour: tuple[int, int, int]
    texture: str


def look_of_class(class_index: int) -> Look:
    """Deterministic look of a sound class; distinct for up to 6 * 8 * 3 = 144 classes."""
    return Look(
        shape=SHAPES[class_index % len(SHAPES)],
        colour=COLOURS[(class_index // len(SHAPES) + class_index) % len(COLOURS)],
        texture=TEXTURES[(class_index // (len(SHAPES) * len(COLOURS))) % len(TEXTURES)],
    )


@dataclass
class Source:
    role: str  # "on_screen", "off_screen" or "background"
    class_name: str
    audio: np.ndarray  # float32 [T]
    look: Look | None = None  # None for off-screen sounds and background
    position: tuple[float, float] = (0.5, 0.5)  # centre, fractions of width and height


@dataclass
class Distractor:
    """A silent visible object: it looks like an object of ``class_name`` and moves on the
    loudness of ``motion``, a sound of that class drawn for it alone and never heard."""

    class_name: str
    look: Look
    position: tuple[float, float]
    motion: np.ndarray  # float32 [T], not part of the mixture


@dataclass
class Scene:
    sample_rate: int
    duration: float
    sources: list[Source]
    distractors: list[Distractor] = field(default_factory=list)
    backdrop_seed: int = 0  # background, clutter and camera path (see make_backdrop)

    @property
    def mixture(self) -> np.ndarray:
        return np.sum([s.audio for s in self.sources], axis=0).astype(np.float32)

    @property
    def visible(self) -> list[tuple[Look, tuple[float, float], np.ndarray]]:
        """Every visible object as (look, position, the audio whose loudness moves it)."""
        on = [(s.look, s.position, s.audio) for s in self.sources if s.role == "on_screen"]
        return on + [(d.look, d.position, d.motion) for d in self.distractors]


# ---------------------------------------------------------------- sounds


def _envelope(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Slowly varying loudness: a few on/off events with smooth attacks and decays.

    Events start anywhere and wrap around the clip's end (smoothing wraps too), so that every
    time of the clip is as likely to be loud: a stationary envelope. Otherwise sounds are
    louder mid-clip, and the envelopes of unrelated sounds (a silent object's motion and the
    soundtrack) are correlated.

    Built at a 200 Hz control rate and interpolated to audio rate: smoothing at audio rate
    was most of the cost of making a scene.
    """
    rate = 200
    m = max(2, int(np.ceil(n * rate / sr)))
    env = np.zeros(m)
    for _ in range(rng.integers(2, 6)):
        length = int(rng.integers(rate // 4, max(rate // 4 + 1, m // 2)))
        span = (int(rng.integers(m)) + np.arange(min(length, m))) % m
        env[span] = np.maximum(env[span], rng.uniform(0.5, 1))
    kernel = np.hanning(rate // 20)
    half = kernel.size // 2
    env = np.convolve(np.pad(env, half, mode="wrap"), kernel / kernel.sum(), mode="same")
    env = np.interp(np.arange(n) * rate / sr, np.arange(m), env[half : half + m])
    return env / (env.max() + 1e-9)


def synth_sound(class_name: str, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A procedural sound of one of :data:`SYNTH_CLASSES`, unit RMS, with a loudness envelope."""
    t = np.arange(n) / sr
    nyq = sr / 2
    if class_name == "tone":
        f0 = rng.uniform(150, 500)
        vib = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
        phase = 2 * np.pi * np.cumsum(f0 * vib) / sr
        x = sum(np.sin(k * phase) / k for k in range(1, 6) if k * f0 * 1.02 < nyq)
    elif class_name == "chirp":
        period = rng.uniform(0.25, 0.6)
        f_lo, f_hi = rng.uniform(300, 700), rng.uniform(1200, min(3000, 0.8 * nyq))
        frac = (t % period) / period
        phase = 2 * np.pi * np.cumsum(f_lo + (f_hi - f_lo) * frac) / sr
        x = np.sin(phase) * np.hanning(int(period * sr) + 2)[(frac * int(period * sr)).astype(int)]
    elif class_name == "noise":
        centre = rng.uniform(500, min(3000, 0.7 * nyq))
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / sr)
        spec *= np.exp(-0.5 * ((f - centre) / (0.25 * centre)) ** 2)
        x = np.fft.irfft(spec, n)
    elif class_name == "clicks":
        rate = rng.uniform(3, 9)
        x = np.zeros(n)
        ring = np.exp(-np.arange(int(0.08 * sr)) / (0.015 * sr))
        ring = ring * np.sin(
            2 * np.pi * rng.uniform(800, min(2500, 0.8 * nyq)) * np.arange(ring.size) / sr
        )
        for start in (np.arange(0, t[-1], 1 / rate) * sr).astype(int):
            seg = x[start : start + ring.size]
            seg += ring[: seg.size]
    elif class_name == "warble":
        fc, fm = rng.uniform(400, 1000), rng.uniform(5, 12)
        x = np.sin(2 * np.pi * fc * t + rng.uniform(3, 8) * np.sin(2 * np.pi * fm * t))
    elif class_name == "buzz":
        f0 = rng.uniform(80, 160)
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 20) if k * f0 < 0.9 * nyq)
    else:
        raise ValueError(f"unknown synthetic class {class_name!r}; known: {SYNTH_CLASSES}")
    x = np.asarray(x, dtype=np.float64) * _envelope(rng, n, sr)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-9)).astype(np.float32)


def _read_mono(path: Path, sr: int) -> np.ndarray:
    data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = data.mean(axis=1)
    if file_sr != sr:  # band-limited resampling in the frequency domain (no aliasing)
        n_out = int(round(x.size * sr / file_sr))
        spec = np.fft.rfft(x.astype(np.float64))
        bins = n_out // 2 + 1
        spec = spec[:bins] if spec.size >= bins else np.pad(spec, (0, bins - spec.size))
        x = np.fft.irfft(spec, n_out) * (n_out / max(1, data.shape[0]))
    return x.astype(np.float32)


class SoundBank:
    """Real recordings organised as ``<root>/<class>/<file>``; classes are the folder names
    (all but ``exclude``; only those of ``include`` where it is given)."""

    EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")

    def __init__(
        self,
        root: str | Path,
        sample_rate: int,
        exclude: tuple[str, ...] = (),
        include: tuple[str, ...] | None = None,
    ):
        self.root = Path(root)
        if not self.root.is_dir():
            raise ValueError(f"sound bank folder {self.root} does not exist")
        self.sample_rate = sample_rate
        self.files: dict[str, list[Path]] = {}
        # Decoded recordings by path: a scene is built several times (video, stems, records)
        # and decoding plus resampling a recording costs more than the rest of the scene.
        self._decoded: dict[Path, np.ndarray | None] = {}
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name not in exclude):
            if include is not None and d.name not in include:
                continue
            files = sorted(f for f in d.iterdir() if f.suffix.lower() in self.EXTENSIONS)
            if files:
                self.files[d.name] = files
        if not self.files:
            raise ValueError(f"sound bank {self.root} has no <class>/<audio file> recordings")
        self.classes = list(self.files)

    def sound(self, class_name: str, rng: np.random.Generator, n: int) -> np.ndarray:
        """A random excerpt of a random file of the class, looped if short, unit RMS."""
        files = self.files[class_name]
        for _ in range(len(files)):
            path = files[rng.integers(len(files))]
            x = self._read(path)
            if x is None:
                continue  # an unreadable recording: try another one of the class
            if x.size and np.sqrt(np.mean(x**2)) > 1e-4:
                break
        else:
            raise ValueError(f"no readable, non-silent recording in {self.root / class_name}")
        if x.size < n:
            x = np.tile(x, int(np.ceil(n / x.size)))
        start = rng.integers(0, x.size - n + 1)
        x = x[start : start + n].astype(np.float64)
        return (x / (np.sqrt(np.mean(x**2)) + 1e-9)).astype(np.float32)

    def _read(self, path: Path) -> np.ndarray | None:
        """The recording decoded at the bank's rate (read-only; callers copy), None if
        unreadable."""
        if path not in self._decoded:
            try:
                self._decoded[path] = _read_mono(path, self.sample_rate)
            except (RuntimeError, sf.LibsndfileError):
                self._decoded[path] = None
        return self._decoded[path]


@dataclass(frozen=True)
class SceneConfig:
    sample_rate: int = 16000
    duration: float = 5.0
    fps: float = 15.0
    width: int = 96
    height: int = 96
    level_range_db: tuple[float, float] = (-6.0, 6.0)
    background_noise_db: float = -35.0  # relative to a unit-RMS source
    # Visible objects per scene (sounding + silent), drawn uniformly from this range whatever
    # the scene's sounds; silent objects fill up. With a minimum of at least the most sounding
    # objects a scene has, the count says nothing about what is heard.
    visible_objects: tuple[int, int] = (2, 3)
    camera_pan: float = 0.06  # amplitude of the camera's slow random pan, fraction of frame size
    camera_shake: float = 0.012  # std of its frame-to-frame shake, fraction of frame size
    clutter: int = 10  # static background shapes (they move with the camera)
    # Gate recordings of a sound bank with the same on/off events as the synthetic sounds
    # (2 to 5 per clip): a recording looped or cut from a long file is often steady, and a
    # steady sound gives its object nothing to move with. Off by default (the default demo).
    sound_events: bool = False

    def __post_init__(self) -> None:
        lo, hi = self.visible_objects
        if not 0 <= lo <= hi:
            raise ValueError(f"visible_objects must be (min, max) with 0 <= min <= max: {lo, hi}")
        if self.camera_pan < 0 or self.camera_shake < 0 or self.clutter < 0:
            raise ValueError("camera_pan, camera_shake and clutter must not be negative")


def make_scene(
    seed: int,
    n_on: int,
    n_off: int,
    config: SceneConfig,
    bank: SoundBank | None = None,
) -> Scene:
    """Build one scene from its seed; the same seed and settings give the same scene.

    ``max(n_on, v)`` objects are visible, ``v`` drawn from ``config.visible_objects``: the
    ``n_on`` sounding ones and silent distractors. Distractors take classes that are not heard
    in the scene where there are enough classes, so that a look seen with its sound heard means
    that object is sounding.
    """
    rng = np.random.default_rng(seed)
    sr, n = config.sample_rate, int(round(config.duration * config.sample_rate))
    classes = bank.classes if bank is not None else SYNTH_CLASSES
    n_visible = max(
        n_on, int(rng.integers(config.visible_objects[0], config.visible_objects[1] + 1))
    )
    n_silent = n_visible - n_on
    # Sounds get distinct classes so that each look stands for one sound; so do distractors,
    # from the classes left over.
    order = rng.permutation(len(classes))
    if n_on + n_off + n_silent > len(classes):
        order = np.concatenate([order, rng.integers(len(classes), size=n_on + n_off + n_silent)])
    chosen, silent = order[: n_on + n_off], order[n_on + n_off : n_on + n_off + n_silent]
    positions = _spread_positions(rng, n_visible)
    sources: list[Source] = []
    for i, c in enumerate(chosen):
        name = classes[c]
        audio = _sound(name, rng, n, sr, bank, config.sound_events)
        audio *= 10 ** (rng.uniform(*config.level_range_db) / 20)
        if i < n_on:
            sources.append(Source("on_screen", name, audio, look_of_class(int(c)), positions[i]))
        else:
            sources.append(Source("off_screen", name, audio))
    noise = rng.standard_normal(n).astype(np.float32) * 10 ** (config.background_noise_db / 20)
    sources.append(Source("background", "noise", noise))
    peak = np.abs(np.sum([s.audio for s in sources], axis=0)).max()
    if peak > 0.9:  # scale every stem alike so they still sum to the mixture
        for s in sources:
            s.audio *= 0.9 / peak
    distractors = [
        Distractor(
            classes[c],
            look_of_class(int(c)),
            positions[n_on + j],
            _sound(classes[c], rng, n, sr, bank, config.sound_events),
        )
        for j, c in enumerate(silent)
    ]
    return Scene(sr, config.duration, sources, distractors, int(rng.integers(2**31)))


def _sound(
    name: str,
    rng: np.random.Generator,
    n: int,
    sr: int,
    bank: SoundBank | None,
    events: bool = False,
) -> np.ndarray:
    if bank is None:
        return synth_sound(name, rng, n, sr)
    x = bank.sound(name, rng, n)
    if not events:
        return x
    for _ in range(8):
        gated = x.astype(np.float64) * _envelope(rng, n, sr)
        # Events that fall on the recording's own pauses leave (almost) nothing: a sound
        # that is never heard, an object that never moves. Draw the excerpt and events again.
        if np.sqrt(np.mean(gated**2)) > 0.05:  # the excerpt has unit RMS: -26 dB of it
            break
        x = bank.sound(name, rng, n)
    return (gated / (np.sqrt(np.mean(gated**2)) + 1e-9)).astype(np.float32)


def _spread_positions(rng: np.random.Generator, k: int) -> list[tuple[float, float]]:
    """k object centres spread over the frame (a jittered grid, so objects rarely overlap)."""
    cells = [(x, y) for x in (0.25, 0.5, 0.75) for y in (0.3, 0.7)]
    order = rng.permutation(len(cells))
    return [
        (
            cells[order[i % len(cells)]][0] + rng.uniform(-0.05, 0.05),
            cells[order[i % len(cells)]][1] + rng.uniform(-0.05, 0.05),
        )
        for i in range(k)
    ]


# ---------------------------------------------------------------- frames


def loudness_track(audio: np.ndarray, sr: int, fps: float, num_frames: int) -> np.ndarray:
    """RMS of the audio around each frame time, normalised to [0, 1] by the clip's peak."""
    hop = sr / fps
    out = np.empty(num_frames)
    for k in range(num_frames):
        a, b = int(k * hop), int((k + 1) * hop)
        seg = audio[a:b]
        out[k] = np.sqrt(np.mean(seg.astype(np.float64) ** 2)) if seg.size else 0.0
    return out / (out.max() + 1e-9)


def _texture_mask(texture: str, ys: slice, xs: slice, centre: tuple[int, int], phase: int):
    """The texture over the pixels ``ys, xs`` of an object centred at ``centre`` (it moves
    with the object); stripes also drift by one pixel per frame."""
    yy, xx = np.mgrid[ys, xs]
    yy, xx = yy - centre[1], xx - centre[0]
    if texture == "stripes":
        return (((xx + yy + phase) // 3) % 2).astype(np.float32) * 0.6 + 0.4
    if texture == "checker":
        return (((xx // 4) + (yy // 4)) % 2).astype(np.float32) * 0.6 + 0.4
    return np.ones(yy.shape, np.float32)


def _draw_shape(mask: np.ndarray, shape: str, cx: int, cy: int, r: int) -> None:
    if shape == "circle":
        cv2.circle(mask, (cx, cy), r, 1.0, -1, cv2.LINE_AA)
    elif shape == "ring":
        cv2.circle(mask, (cx, cy), r, 1.0, max(2, r // 3), cv2.LINE_AA)
    elif shape == "square":
        cv2.rectangle(mask, (cx - r, cy - r), (cx + r, cy + r), 1.0, -1, cv2.LINE_AA)
    elif shape == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(mask, [pts], 1.0, cv2.LINE_AA)
    elif shape == "diamond":
        pts = np.array([[cx, cy - r], [cx - r, cy], [cx, cy + r], [cx + r, cy]], np.int32)
        cv2.fillPoly(mask, [pts], 1.0, cv2.LINE_AA)
    elif shape == "cross":
        t = max(2, r // 3)
        cv2.rectangle(mask, (cx - r, cy - t), (cx + r, cy + t), 1.0, -1, cv2.LINE_AA)
        cv2.rectangle(mask, (cx - t, cy - r), (cx + t, cy + r), 1.0, -1, cv2.LINE_AA)
    else:
        raise ValueError(f"unknown shape {shape!r}")


@dataclass
class Backdrop:
    """What is behind the objects: a cluttered canvas larger than the frame, and the camera's
    path over it (the frame's top-left corner on the canvas, one per video frame)."""

    canvas: np.ndarray  # float32 [H + 2 margin, W + 2 margin, 3]
    offsets: np.ndarray  # int [F, 2]: (x, y), each in [0, 2 margin]
    margin: int  # the camera's rest position is (margin, margin)


def pan_and_shake(
    rng: np.random.Generator, num_frames: int, fps: float, pan: float, shake: float
) -> np.ndarray:
    """The camera's offset per frame (pixels, ``[F, 2]``): a slow pan (two random sinusoids
    per axis, amplitude ``pan``) and a shake (independent per frame, std ``shake``, clipped
    at 3 std). Shared by the drawn and the realistic scenes."""
    t = np.arange(num_frames) / fps
    path = np.zeros((num_frames, 2))
    for axis in range(2):
        for _ in range(2):
            f, phase = rng.uniform(0.05, 0.4), rng.uniform(0, 2 * np.pi)
            path[:, axis] += 0.5 * pan * np.sin(2 * np.pi * f * t + phase)
    return path + np.clip(rng.normal(0, 1, size=path.shape), -3, 3) * shake


def make_backdrop(seed: int, config: SceneConfig, num_frames: int) -> Backdrop:
    """The background and camera path of a scene: a vertical gradient of a random dark colour,
    soft colour blobs and ``config.clutter`` muted rectangles, ellipses and lines; the camera
    pans slowly (two random sinusoids per axis) and shakes (independent per frame)."""
    rng = np.random.default_rng(seed)
    h, w, size = config.height, config.width, min(config.height, config.width)
    pan, shake = config.camera_pan * size, config.camera_shake * size
    margin = int(np.ceil(pan + 3 * shake))
    ch, cw = h + 2 * margin, w + 2 * margin
    colour = rng.integers(10, 60, size=3).astype(np.float32)
    yy = np.linspace(0, 1, ch, dtype=np.float32)[:, None, None]
    canvas = colour * (0.6 + 0.8 * yy) * np.ones((1, cw, 1), np.float32)
    blobs = rng.normal(0, 8, size=(4, 4, 3)).astype(np.float32)
    canvas += cv2.resize(blobs, (cw, ch), interpolation=cv2.INTER_CUBIC)
    for _ in range(config.clutter):
        tone = tuple(float(v) for v in colour * rng.uniform(0.5, 1.8) + rng.uniform(-10, 25))
        x, y = int(rng.uniform(0, cw)), int(rng.uniform(0, ch))
        a, b = (int(size * rng.uniform(0.04, 0.2)) for _ in range(2))
        kind = rng.integers(3)
        if kind == 0:
            cv2.rectangle(canvas, (x - a, y - b), (x + a, y + b), tone, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.ellipse(
                canvas, (x, y), (a, b), float(rng.uniform(0, 180)), 0, 360, tone, -1, cv2.LINE_AA
            )
        else:
            end = (x + int(rng.normal(0, size / 4)), y + int(rng.normal(0, size / 4)))
            cv2.line(canvas, (x, y), end, tone, max(1, size // 48), cv2.LINE_AA)
    path = pan_and_shake(rng, num_frames, config.fps, pan, shake)
    offsets = np.clip(np.round(margin + path), 0, 2 * margin).astype(int)
    return Backdrop(np.clip(canvas, 0, 255), offsets, margin)


def render_frames(scene: Scene, config: SceneConfig) -> np.ndarray:
    """uint8 RGB frames [F, H, W, 3]: each visible object grows, brightens and bounces with
    its sound's loudness (a silent one with that of its own unheard sound), over a cluttered
    background seen by a panning, shaking camera; off-screen sounds draw nothing."""
    h, w = config.height, config.width
    num_frames = int(round(scene.duration * config.fps))
    backdrop = make_backdrop(scene.backdrop_seed, config, num_frames)
    margin = backdrop.margin
    frames = np.stack([backdrop.canvas[y : y + h, x : x + w] for x, y in backdrop.offsets])
    size = min(h, w)
    for look, (px, py), audio in scene.visible:
        loud = loudness_track(audio, scene.sample_rate, config.fps, num_frames)
        colour = np.asarray(look.colour, np.float32)
        for k in range(num_frames):
            dx, dy = margin - backdrop.offsets[k]  # the camera moves, the world stays
            r = int(size * (0.08 + 0.10 * loud[k]))
            cx, cy = int(px * w) + dx, int(py * h - 0.08 * size * loud[k]) + dy
            # Draw into the object's bounding box only: a full-frame mask per object and
            # frame costs most of the rendering time.
            x0, y0 = max(0, cx - r - 2), max(0, cy - r - 2)
            x1, y1 = min(w, cx + r + 3), min(h, cy + r + 3)
            if x1 <= x0 or y1 <= y0:
                continue
            mask = np.zeros((y1 - y0, x1 - x0), np.float32)
            _draw_shape(mask, look.shape, cx - x0, cy - y0, r)
            mask *= _texture_mask(look.texture, slice(y0, y1), slice(x0, x1), (cx, cy), k)
            bright = 0.35 + 0.65 * loud[k]
            roi = frames[k, y0:y1, x0:x1]
            roi[:] = roi * (1 - mask[..., None]) + (colour * bright) * mask[..., None]
    return np.clip(frames, 0, 255).astype(np.uint8)


__all__ = [
    "SYNTH_CLASSES",
    "Backdrop",
    "Distractor",
    "Scene",
    "SceneConfig",
    "SoundBank",
    "Source",
    "look_of_class",
    "loudness_track",
    "make_backdrop",
    "make_scene",
    "render_frames",
    "synth_sound",
]
