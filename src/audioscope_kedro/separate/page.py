"""What a person looks at: the spectrograms, the probability plot and ``index.html``.

The spectrogram is accumulated while the audio streams past, at a bounded number of columns
(pairs of columns are merged when a long input would exceed it), so a one-hour input costs the
same memory as a one-minute one.

The two figures are drawn straight into pixel arrays with NumPy and OpenCV, not with matplotlib:
a matplotlib figure cost about 0.2 s per input (and 0.3 s to import), a third of a 10-second
video's separation; these cost a few milliseconds.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass

import cv2
import numpy as np

MAX_COLUMNS = 1024
MAX_ROWS = 256
DYNAMIC_RANGE_DB = 80.0
FLOOR_DB = -120.0  # 10 log10 of the 1e-12 added to the power: digital silence
TRACKS = ("mixture", "on-screen", "off-screen")


class SpectrogramAccumulator:
    """Power spectrograms of the mono mixture, on-screen and off-screen audio, fed in chunks.

    ``push(mixture [n], on [n], off [n])``; ``power`` is ``[3, rows, columns]``; each column
    covers ``seconds_per_column`` s."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.n_fft = 1 << int(round(np.log2(0.032 * sample_rate)))
        self.window = np.hanning(self.n_fft).astype(np.float32)
        self.pending = np.zeros((3, 0), np.float32)
        self.columns: list[np.ndarray] = []  # [3, rows] each
        self.frames_per_column = 1
        self.partial: list[np.ndarray] = []
        bins = self.n_fft // 2 + 1
        self.pool = max(1, int(np.ceil(bins / MAX_ROWS)))
        self.rows = int(np.ceil(bins / self.pool))

    def _frame_power(self, frames: np.ndarray) -> np.ndarray:
        spec = np.abs(np.fft.rfft(frames * self.window, axis=-1)) ** 2  # [3, k, bins]
        pad = self.rows * self.pool - spec.shape[-1]
        spec = np.pad(spec, ((0, 0), (0, 0), (0, pad)))
        return spec.reshape(3, spec.shape[1], self.rows, self.pool).mean(-1)  # [3, k, rows]

    def push(self, mixture: np.ndarray, on: np.ndarray, off: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, np.stack([mixture, on, off])], axis=1)
        k = self.pending.shape[1] // self.n_fft
        if not k:
            return
        frames = self.pending[:, : k * self.n_fft].reshape(3, k, self.n_fft)
        self.pending = self.pending[:, k * self.n_fft :]
        for column in self._frame_power(frames).transpose(1, 0, 2):
            self.partial.append(column)
            if len(self.partial) == self.frames_per_column:
                self.columns.append(np.mean(self.partial, axis=0))
                self.partial = []
                if len(self.columns) > MAX_COLUMNS:  # halve the time resolution
                    pairs = self.columns[: len(self.columns) // 2 * 2]
                    merged = [(a + b) / 2 for a, b in zip(pairs[::2], pairs[1::2], strict=True)]
                    self.columns = merged + self.columns[len(pairs) :]
                    self.frames_per_column *= 2

    @property
    def seconds_per_column(self) -> float:
        return self.frames_per_column * self.n_fft / self.sample_rate

    @property
    def power(self) -> np.ndarray:
        cols = self.columns + ([np.mean(self.partial, axis=0)] if self.partial else [])
        if not cols:
            return np.zeros((3, self.rows, 1), np.float32)
        return np.stack(cols, axis=-1)


@dataclass(frozen=True)
class Box:
    """A rectangle of pixels, ``x0 <= x < x1``, ``y0 <= y < y1`` (y down)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


# Both figures put their plot areas between the same x pixels, so that on the page (one image
# above the other, same width) a moment in the probability plot sits under the same moment of
# the spectrograms; the colour bar's column holds the legend in the probability plot.
SPECTROGRAM_SIZE = (1000, 750)  # width, height in pixels
PROBABILITY_SIZE = (1000, 300)
_LEFT, _RIGHT = 84, 862
_PANEL_HEIGHT, _TITLE_BAND = 205, 28
SPECTROGRAM_PANELS = tuple(
    Box(_LEFT, _TITLE_BAND + k * (_PANEL_HEIGHT + _TITLE_BAND), _RIGHT,
        _TITLE_BAND + k * (_PANEL_HEIGHT + _TITLE_BAND) + _PANEL_HEIGHT)
    for k in range(len(TRACKS))
)  # fmt: skip
COLOUR_BAR = Box(888, SPECTROGRAM_PANELS[0].y0, 906, SPECTROGRAM_PANELS[-1].y1)
PROBABILITY_AREA = Box(_LEFT, 12, _RIGHT, 250)
PROBABILITY_RANGE = (-0.05, 1.05)  # the plot's y axis: 0 and 1 stay clear of the frame

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_SMALL, _LARGE = 0.45, 0.55  # font scales: tick labels, titles and axis labels
_INK = (0, 0, 0)
# matplotlib's "tab10" (its default line colours), as BGR: the same colour per source as before
_SOURCE_COLOURS = tuple(
    (int(c[4:6], 16), int(c[2:4], 16), int(c[0:2], 16))
    for c in ("1f77b4", "ff7f0e", "2ca02c", "d62728", "9467bd",
              "8c564b", "e377c2", "7f7f7f", "bcbd22", "17becf")
)  # fmt: skip
_SHIFT = 4  # fractional bits of the line coordinates: anti-aliased lines at sub-pixel places
# along the line; the round anti-aliased ends of a 2 px line lengthen a dash by about 1.5 px
# each, so a dash shows about 8 px and a gap 4 px, matplotlib's dashes at this size
_DASH, _GAP = 5.0, 7.0


def _magma(levels: np.ndarray) -> np.ndarray:
    """BGR colours of ``levels`` (2-D uint8) through the 256-colour "magma" table. OpenCV's
    table is matplotlib's, every entry equal (checked when this was written), so neither a
    matplotlib import nor a copy of the table; and its lookup is ~5x faster than indexing a
    NumPy table with the levels."""
    return cv2.applyColorMap(levels, cv2.COLORMAP_MAGMA)


def _text(
    img: np.ndarray, s: str, x: float, y: float, *, ha: str = "left", va: str = "baseline",
    scale: float = _SMALL,
) -> None:  # fmt: skip
    """``s`` anchored at ``(x, y)``: ``ha`` left/center/right, ``va`` baseline/center/top."""
    (w, h), _ = cv2.getTextSize(s, _FONT, scale, 1)
    x0 = x - {"left": 0, "center": w / 2, "right": w}[ha]
    y0 = y + {"baseline": 0, "center": h / 2, "top": h}[va]
    cv2.putText(img, s, (round(x0), round(y0)), _FONT, scale, _INK, 1, cv2.LINE_AA)


def _vertical_text(img: np.ndarray, s: str, x: int, y: int, scale: float = _LARGE) -> None:
    """``s`` read from bottom to top, centred on ``(x, y)`` (the white background assumed)."""
    (w, h), base = cv2.getTextSize(s, _FONT, scale, 1)
    canvas = np.full((h + base + 4, w + 4, 3), 255, np.uint8)
    cv2.putText(canvas, s, (2, h + 2), _FONT, scale, _INK, 1, cv2.LINE_AA)
    canvas = np.ascontiguousarray(np.rot90(canvas))  # counter-clockwise
    ch, cw = canvas.shape[:2]
    top, left = y - ch // 2, x - cw // 2
    region = img[top : top + ch, left : left + cw]
    np.minimum(region, canvas, out=region)  # dark ink over whatever is there


def _ticks(lo: float, hi: float, most: int) -> np.ndarray:
    """Round values in ``[lo, hi]``, at most about ``most`` of them, a step of 1, 2, 2.5 or 5
    times a power of ten."""
    span = hi - lo
    if not span > 0:
        return np.array([lo])
    raw = span / most
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    first = math.ceil(lo / step - 1e-9) * step
    return first + step * np.arange(math.floor((hi - first) / step + 1e-9) + 1)


def _tick_label(v: float) -> str:
    return f"{round(float(v), 6) + 0.0:.6g}"  # + 0.0: no "-0"


def _x_axis(img: np.ndarray, box: Box, lo: float, hi: float, labels: bool) -> None:
    for t in _ticks(lo, hi, 10):
        x = round(box.x0 + (t - lo) / (hi - lo) * (box.width - 1))
        cv2.line(img, (x, box.y1), (x, box.y1 + 4), _INK, 1)
        if labels:
            _text(img, _tick_label(t), x, box.y1 + 8, ha="center", va="top")


def _y_axis(img: np.ndarray, box: Box, lo: float, hi: float, most: int) -> None:
    for v in _ticks(lo, hi, most):
        y = round(box.y1 - 1 - (v - lo) / (hi - lo) * (box.height - 1))
        cv2.line(img, (box.x0 - 5, y), (box.x0 - 1, y), _INK, 1)
        _text(img, _tick_label(v), box.x0 - 8, y, ha="right", va="center")


def _frame(img: np.ndarray, box: Box) -> None:
    cv2.rectangle(img, (box.x0 - 1, box.y0 - 1), (box.x1, box.y1), _INK, 1)


def _encode(img: np.ndarray) -> bytes:
    # zlib level 1 and no PNG row filter: measured on the 30 s demo page's spectrogram, 10 ms
    # and 363 kB against 35 ms and 554 kB with OpenCV's default filters (the noisy cells gain
    # nothing from predicting a pixel from its neighbours, and unfiltered, deflate finds the
    # runs of equal pixels that the nearest-neighbour upscaling makes)
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    ok, buf = cv2.imencode(".png", img, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {img.shape} image as PNG")
    return buf.tobytes()


def spectrogram_image(acc: SpectrogramAccumulator) -> np.ndarray:
    """Mixture, on-screen and off-screen, one shared colour scale (the loudest cell of the three
    at the top, DYNAMIC_RANGE_DB below it at the bottom), axes in s and Hz up to Nyquist, a
    colour bar in dB: ``[750, 1000, 3]`` uint8, BGR.

    Cells are shown nearest-neighbour (as ``imshow(interpolation="nearest")`` did): row ``r``
    covers ``[r, r + 1) * pool * rate / n_fft`` Hz, column ``c`` ``[c, c + 1) *
    seconds_per_column`` s."""
    power = acc.power  # [3, rows, columns]; a property that stacks the columns: read it once
    db = 10 * np.log10(power + 1e-12)
    # an input of digital silence has its top at the floor: without this bound its every cell
    # would be drawn at the top of the scale, bright
    top = max(float(db.max()), FLOOR_DB + DYNAMIC_RANGE_DB)
    low = top - DYNAMIC_RANGE_DB
    # the level of a value as matplotlib's Normalize + 256-colour map gave it
    levels = np.clip(np.floor((db - low) * (256 / DYNAMIC_RANGE_DB)), 0, 255).astype(np.uint8)
    rows, columns = power.shape[1:]
    nyquist = acc.sample_rate / 2
    hz_per_row = acc.pool * acc.sample_rate / acc.n_fft  # the last row pools past Nyquist
    seconds = columns * acc.seconds_per_column

    width, height = SPECTROGRAM_SIZE
    img = np.full((height, width, 3), 255, np.uint8)
    box = SPECTROGRAM_PANELS[0]
    # the cell under the centre of every pixel of a panel (y down: high frequencies first)
    fy = (box.height - 0.5 - np.arange(box.height)) / box.height * nyquist
    row_of_y = np.clip((fy / hz_per_row).astype(np.int64), 0, rows - 1)
    tx = (np.arange(box.width) + 0.5) / box.width * columns
    column_of_x = np.clip(tx.astype(np.int64), 0, columns - 1)
    panels = _magma(levels[:, row_of_y][:, :, column_of_x].reshape(-1, box.width))
    for k, (name, box) in enumerate(zip(TRACKS, SPECTROGRAM_PANELS, strict=True)):
        img[box.y0 : box.y1, box.x0 : box.x1] = panels[k * box.height : (k + 1) * box.height]
        _frame(img, box)
        _text(img, name, (box.x0 + box.x1) / 2, box.y0 - 9, ha="center", scale=_LARGE)
        _y_axis(img, box, 0.0, nyquist, 5)
        _x_axis(img, box, 0.0, seconds, labels=box is SPECTROGRAM_PANELS[-1])
        _vertical_text(img, "frequency (Hz)", 14, (box.y0 + box.y1) // 2)
    last = SPECTROGRAM_PANELS[-1]
    _text(img, "time (s)", (last.x0 + last.x1) / 2, height - 8, ha="center", scale=_LARGE)

    bar = COLOUR_BAR
    fraction = (bar.height - 0.5 - np.arange(bar.height)) / bar.height
    bar_levels = np.clip(fraction * 256, 0, 255).astype(np.uint8)[:, None]
    img[bar.y0 : bar.y1, bar.x0 : bar.x1] = _magma(bar_levels)
    _frame(img, bar)
    for v in _ticks(low, top, 8):
        y = round(bar.y1 - 1 - (v - low) / DYNAMIC_RANGE_DB * (bar.height - 1))
        cv2.line(img, (bar.x1, y), (bar.x1 + 4, y), _INK, 1)
        _text(img, _tick_label(v), bar.x1 + 8, y, va="center")
    _vertical_text(img, "power (dB)", width - 22, (bar.y0 + bar.y1) // 2)
    return img


def spectrogram_png(acc: SpectrogramAccumulator) -> bytes:
    """:func:`spectrogram_image` as PNG bytes."""
    return _encode(spectrogram_image(acc))


def _dashes(points: np.ndarray) -> list[np.ndarray]:
    """The dashes of a dashed polyline through ``points [n, 2]`` (pixels): pieces of it
    ``_DASH`` long every ``_DASH + _GAP``, measured along the line, corners included."""
    if len(points) < 2:
        return []
    steps = np.hypot(*np.diff(points, axis=0).T)
    keep = np.concatenate([[True], steps > 0])  # np.interp needs increasing distances
    points, steps = points[keep], steps[steps > 0]
    along = np.concatenate([[0.0], np.cumsum(steps)])
    if along[-1] == 0:
        return []
    starts = np.arange(0.0, along[-1], _DASH + _GAP)
    ends = np.minimum(starts + _DASH, along[-1])
    at = [np.stack([np.interp(d, along, points[:, i]) for i in (0, 1)], -1) for d in (starts, ends)]
    first = np.searchsorted(along, starts, side="right")
    last = np.searchsorted(along, ends, side="left")
    return [np.vstack([a, points[i:j], b]) for a, b, i, j in zip(*at, first, last, strict=True)]


def _fixed(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates as OpenCV's fixed point with ``_SHIFT`` fractional bits."""
    return np.round(points * (1 << _SHIFT)).astype(np.int32)


def _fixed_dashes(points: np.ndarray) -> list[np.ndarray]:
    """:func:`_dashes` in fixed point, converted in one go (hundreds of small arrays)."""
    dashes = _dashes(points)
    if not dashes:
        return []
    ends = np.cumsum([len(d) for d in dashes])[:-1]
    return np.split(_fixed(np.concatenate(dashes)), ends)


def probability_image(
    starts: np.ndarray,
    ends: np.ndarray,
    probabilities: np.ndarray,
    weights: np.ndarray,
    duration: float | None = None,
) -> np.ndarray:
    """On-screen probability of every source over time (at the window centres, solid, a dot per
    window while there is room), and the weight the operating point gave it (dashed, lighter),
    a legend: ``[300, 1000, 3]`` uint8, BGR. Time runs from 0 to ``duration`` (or the last
    window centre, if later)."""
    starts, ends = np.asarray(starts, float), np.asarray(ends, float)
    probabilities, weights = np.asarray(probabilities, float), np.asarray(weights, float)
    if probabilities.ndim != 2 or weights.shape != probabilities.shape:
        raise ValueError(
            "probabilities and weights must both be [windows, sources]; got "
            f"{probabilities.shape} and {weights.shape}"
        )
    if starts.shape != ends.shape or starts.shape != probabilities.shape[:1]:
        raise ValueError(
            f"one start and one end per window: {starts.shape} starts, {ends.shape} ends for "
            f"{probabilities.shape[0]} windows"
        )
    if not (np.isfinite(probabilities).all() and np.isfinite(weights).all()):
        raise ValueError("a probability or weight is not finite (NaN or infinite): no line")
    centres = (starts + ends) / 2
    hi = max(duration or 0.0, float(centres.max()) if centres.size else 0.0)
    hi = hi if hi > 0 else 1.0
    y_lo, y_hi = PROBABILITY_RANGE
    box = PROBABILITY_AREA

    def pixels(values: np.ndarray) -> np.ndarray:  # [windows, 2] x, y in pixels
        x = box.x0 + centres / hi * (box.width - 1)
        y = box.y1 - 1 - (values - y_lo) / (y_hi - y_lo) * (box.height - 1)
        return np.stack([x, y], -1)

    width, height = PROBABILITY_SIZE
    img = np.full((height, width, 3), 255, np.uint8)
    sources = probabilities.shape[1]
    colours = [_SOURCE_COLOURS[m % len(_SOURCE_COLOURS)] for m in range(sources)]
    # the weights' lines are the sources' colours half-way to white (matplotlib's alpha 0.5)
    light = [tuple((c + 255) // 2 for c in colour) for colour in colours]
    for m in range(sources):  # the weights first: the probabilities are drawn over them
        dashes = _fixed_dashes(pixels(weights[:, m]))
        cv2.polylines(img, dashes, False, light[m], 2, cv2.LINE_AA, _SHIFT)
    dots = len(centres) <= box.width // 8
    for m in range(sources):
        line = _fixed(pixels(probabilities[:, m]))
        cv2.polylines(img, [line], False, colours[m], 2, cv2.LINE_AA, _SHIFT)
        if dots:
            for point in line:
                cv2.circle(
                    img, tuple(map(int, point)), 3 << _SHIFT, colours[m], -1, cv2.LINE_AA, _SHIFT
                )

    _frame(img, box)
    _x_axis(img, box, 0.0, hi, labels=True)
    _y_axis(img, box, y_lo, y_hi, 6)
    _text(img, "time (s)", (box.x0 + box.x1) / 2, height - 8, ha="center", scale=_LARGE)
    _vertical_text(img, "on-screen probability", 14, (box.y0 + box.y1) // 2)

    # the legend, in the column that holds the spectrogram's colour bar
    x0, x1 = box.x1 + 14, box.x1 + 40
    step = min(20.0, (box.height - 10) / (sources + 1))
    for m in range(sources + 1):
        y = box.y0 + 10 + m * step
        if m < sources:
            segment = _fixed(np.array([[x0, y], [x1, y]]))
            cv2.polylines(img, [segment], False, colours[m], 2, cv2.LINE_AA, _SHIFT)
            cv2.circle(img, tuple(map(int, _fixed(np.array([(x0 + x1) / 2, y])))), 3 << _SHIFT,
                       colours[m], -1, cv2.LINE_AA, _SHIFT)  # fmt: skip
            _text(img, f"source {m}", x1 + 6, y, va="center")
        else:
            dashes = _fixed_dashes(np.array([[x0, y], [x1 + 1, y]]))
            cv2.polylines(img, dashes, False, (150, 150, 150), 2, cv2.LINE_AA, _SHIFT)
            _text(img, "weight", x1 + 6, y, va="center")
    return img


def probability_png(
    starts: np.ndarray,
    ends: np.ndarray,
    probabilities: np.ndarray,
    weights: np.ndarray,
    duration: float | None = None,
) -> bytes:
    """:func:`probability_image` as PNG bytes."""
    return _encode(probability_image(starts, ends, probabilities, weights, duration))


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


@dataclass
class PageContent:
    title: str
    video: str | None  # file name of the remuxed video beside the page, None with --no-video
    on_screen: str  # file names of the soundtracks beside the page
    off_screen: str
    spectrogram_uri: str
    probability_uri: str
    point: str  # the operating point, in words
    facts: dict[str, str]


_SCRIPT = """
const video = document.getElementById('video');
const on = document.getElementById('on'), off = document.getElementById('off');
const master = video || on;
const followers = video ? [on, off] : [off];
const gains = {original: [1, 1], on: [1, 0], off: [0, 1]};
function choose(kind) {
  on.volume = gains[kind][0]; off.volume = gains[kind][1];
  document.querySelectorAll('input[name=track]').forEach(r => { r.checked = r.value === kind; });
}
document.querySelectorAll('input[name=track]').forEach(
  r => r.addEventListener('change', () => choose(r.value)));
function sync() {
  followers.forEach(a => { if (Math.abs(a.currentTime - master.currentTime) > 0.08) {
    a.currentTime = master.currentTime; } });
}
master.addEventListener('play', () => { sync(); followers.forEach(a => a.play().catch(() => {})); });
master.addEventListener('pause', () => followers.forEach(a => a.pause()));
master.addEventListener('seeked', sync);
master.addEventListener('timeupdate', sync);
function report() {
  const media = Array.from(document.querySelectorAll('video, audio'));
  document.getElementById('media-status').textContent = JSON.stringify(
    media.map(m => ({id: m.id, duration: m.duration, error: m.error ? m.error.code : null})));
}
document.querySelectorAll('video, audio').forEach(m => {
  m.addEventListener('loadedmetadata', report); m.addEventListener('error', report); });
choose('on');
report();
"""


def render_page(content: PageContent) -> str:
    """``index.html``: self-contained (no network; the figures inlined), it plays the media
    files beside it. The video is muted: its sound is the two soundtracks, mixed by the switch
    (original = on-screen + off-screen, exactly)."""
    e = html.escape
    video = (
        f'<video id="video" src="{e(content.video)}" controls muted preload="metadata" '
        "playsinline></video>"
        if content.video
        else ""
    )
    controls = "" if content.video else " controls"
    facts = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in content.facts.items())
    radios = "".join(
        f'<label><input type="radio" name="track" value="{v}"> {label}</label> '
        for v, label in (("original", "original"), ("on", "on-screen"), ("off", "off-screen"))
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(content.title)}: on-screen / off-screen</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em auto; max-width: 1000px; color: #222; }}
video {{ max-width: 100%; max-height: 60vh; background: #000; display: block; }}
img {{ max-width: 100%; }} th {{ text-align: left; padding-right: 1em; }}
.switch {{ margin: 0.6em 0; font-size: 1.1em; }} #media-status {{ display: none; }}
</style></head><body>
<h1>{e(content.title)}</h1>
{video}
<audio id="on" src="{e(content.on_screen)}" preload="metadata"{controls}></audio>
<audio id="off" src="{e(content.off_screen)}" preload="metadata"></audio>
<div class="switch">soundtrack: {radios}</div>
<p>Operating point: {e(content.point)}.</p>
<h2>Spectrograms</h2>
<img alt="spectrograms of the mixture, on-screen and off-screen sound" src="{content.spectrogram_uri}">
<h2>On-screen probability over time</h2>
<img alt="on-screen probability of each source over time" src="{content.probability_uri}">
<h2>Details</h2><table>{facts}</table>
<pre id="media-status"></pre>
<script>{_SCRIPT}</script>
</body></html>
"""
