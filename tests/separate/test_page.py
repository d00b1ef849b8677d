"""The two figures of ``audioscope separate``, drawn with NumPy and OpenCV: read back from their
PNG bytes, the pixels follow the data (no model, no files)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from audioscope_kedro.separate import page

RATE = 16000
# OpenCV's magma (BGR), built here independently of the module, and each colour's level
MAGMA = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_MAGMA)[:, 0]
_KEYS = MAGMA.astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
_ORDER = np.argsort(_KEYS)
# matplotlib's tab10 blue and orange (sources 0 and 1), BGR
BLUE, ORANGE = (180, 119, 31), (14, 127, 255)


def decode(png: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None, "not a PNG OpenCV can read"
    return img


def panel_levels(img: np.ndarray, k: int) -> np.ndarray:
    """The colour-map level (0-255) of every pixel of spectrogram panel ``k``; fails on a pixel
    that is not a magma colour."""
    box = page.SPECTROGRAM_PANELS[k]
    keys = img[box.y0 : box.y1, box.x0 : box.x1].astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
    at = np.clip(np.searchsorted(_KEYS[_ORDER], keys), 0, 255)
    assert np.array_equal(_KEYS[_ORDER][at], keys), "a pixel inside a panel is not a magma colour"
    return _ORDER[at]


def filled(mixture: np.ndarray, on: np.ndarray, off: np.ndarray, rate: int = RATE):
    acc = page.SpectrogramAccumulator(rate)
    for s in range(0, mixture.size, 4000):  # in chunks, as the command feeds it
        acc.push(mixture[s : s + 4000], on[s : s + 4000], off[s : s + 4000])
    return acc


def noise(seconds: float, seed: int, rate: int = RATE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * rate)).astype(np.float32)


def probability_png(probabilities, weights, duration=None):
    windows = len(probabilities)
    starts = np.arange(windows) * 1.0
    return page.probability_png(
        starts, starts + 2.0, np.asarray(probabilities), np.asarray(weights), duration
    )


def test_both_figures_decode_to_their_sizes():
    x = noise(10, seed=0)
    spectrogram = decode(page.spectrogram_png(filled(x, x / 2, x / 2)))
    assert spectrogram.shape == (750, 1000, 3) == (*page.SPECTROGRAM_SIZE[::-1], 3)
    rng = np.random.default_rng(1)
    probabilities = decode(probability_png(rng.uniform(size=(20, 4)), rng.uniform(size=(20, 4))))
    assert probabilities.shape == (300, 1000, 3) == (*page.PROBABILITY_SIZE[::-1], 3)
    uri = page.png_data_uri(page.spectrogram_png(filled(x, x, x)))
    assert uri.startswith("data:image/png;base64,iVBORw0KGgo")  # the PNG signature


def test_a_tone_is_brightest_at_its_frequency_and_silence_is_darkest():
    """The tone's row on the image's frequency axis (0 Hz at the bottom, Nyquist at the top),
    at the top of the scale; the silent on-screen track all at the bottom of it."""
    t = np.arange(3 * RATE) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 3000.0 * t)).astype(np.float32)
    quiet = 1e-3 * noise(3, seed=2)  # -54 dB under the tone: inside the 80 dB range
    img = decode(page.spectrogram_png(filled(tone + quiet, np.zeros_like(t), tone + quiet)))
    box = page.SPECTROGRAM_PANELS[0]
    for k in (0, 2):
        levels = panel_levels(img, k)
        y = int(np.argmax(levels.mean(axis=1)))
        hz = (box.height - 0.5 - y) / box.height * RATE / 2
        # a row of the spectrogram is 62.5 Hz here, a pixel 39 Hz
        assert abs(hz - 3000) < 100, (k, y, hz)
        assert levels[y].max() == 255
        assert np.median(levels) < 160  # the quiet noise is not at the top of the scale
    assert np.all(panel_levels(img, 1) == 0)


def test_the_three_panels_share_one_scale():
    """Turning the off-screen track down by 40 dB darkens its panel by 40 of the 80 dB (128 of
    the 256 levels) and leaves the other two exactly as they were."""
    x = noise(5, seed=3)
    same = decode(page.spectrogram_png(filled(x, x, x)))
    quieter = decode(page.spectrogram_png(filled(x, x, x / 100)))
    for k in (0, 1):
        assert np.array_equal(panel_levels(same, k), panel_levels(quieter, k))
    drop = panel_levels(same, 2).astype(float).mean() - panel_levels(quieter, 2).mean()
    assert 118 < drop < 138, drop


def test_a_long_input_spans_the_whole_time_axis():
    """More frames than MAX_COLUMNS (columns merged): a tone in the last quarter of the input
    lights only the right quarter of the panel."""
    rate = 8000
    acc = page.SpectrogramAccumulator(rate)
    n = 5 * page.MAX_COLUMNS * acc.n_fft
    t = np.arange(n) / rate
    x = 1e-3 * noise(n / rate, seed=4, rate=rate)
    x[3 * n // 4 :] += np.sin(2 * np.pi * 1000.0 * t[3 * n // 4 :]).astype(np.float32)
    acc = filled(x, x, x, rate)
    assert acc.frames_per_column > 1 and acc.power.shape[-1] <= page.MAX_COLUMNS
    loud = (panel_levels(decode(page.spectrogram_png(acc)), 0) > 200).any(axis=0)
    width = page.SPECTROGRAM_PANELS[0].width
    lit = np.flatnonzero(loud) / width
    assert lit.size and 0.73 < lit.min() < 0.77 and lit.max() > 0.99, (lit.min(), lit.max())


def test_one_column_and_an_empty_accumulator_render():
    x = noise(1, seed=5)
    acc = page.SpectrogramAccumulator(RATE)
    acc.push(x[: acc.n_fft], x[: acc.n_fft], x[: acc.n_fft])
    assert acc.power.shape[-1] == 1
    levels = panel_levels(decode(page.spectrogram_png(acc)), 0)
    assert np.all(levels == levels[:, :1]) and levels.max() == 255  # one column, all across
    # nothing pushed: digital silence, drawn dark (not at the top of its own scale)
    empty = decode(page.spectrogram_png(page.SpectrogramAccumulator(RATE)))
    assert all(np.all(panel_levels(empty, k) == 0) for k in range(3))


def _rows_of(img: np.ndarray, colour, box) -> np.ndarray:
    area = img[box.y0 : box.y1, box.x0 : box.x1].astype(int)
    near = np.abs(area - np.array(colour)).max(axis=-1) <= 12
    return np.nonzero(near)[0] + box.y0


def test_each_source_is_drawn_at_its_probability():
    """Source 0 at probability 1 near the top of the plot area, source 1 at 0 near the bottom."""
    windows = 20
    probabilities = np.tile([1.0, 0.0], (windows, 1))
    img = decode(probability_png(probabilities, probabilities))
    box = page.PROBABILITY_AREA
    lo, hi = page.PROBABILITY_RANGE
    y_of = {p: box.y1 - 1 - (p - lo) / (hi - lo) * (box.height - 1) for p in (0.0, 1.0)}
    blue, orange = _rows_of(img, BLUE, box), _rows_of(img, ORANGE, box)
    assert blue.size > 500 and orange.size > 500  # a line across the plot, not a few dots
    assert np.all(np.abs(blue - y_of[1.0]) <= 4), (blue.min(), blue.max(), y_of)
    assert np.all(np.abs(orange - y_of[0.0]) <= 4), (orange.min(), orange.max(), y_of)


def test_the_weights_are_dashed_lines():
    """A constant weight of 0.5 is a lighter line at 0.5, with gaps: about 8 px of 12 drawn."""
    windows = 20
    probabilities = np.tile([1.0, 0.0], (windows, 1))
    img = decode(probability_png(probabilities, np.full((windows, 2), 0.5)))
    box = page.PROBABILITY_AREA
    lo, hi = page.PROBABILITY_RANGE
    y = round(box.y1 - 1 - (0.5 - lo) / (hi - lo) * (box.height - 1))
    row = img[y, box.x0 : box.x1].astype(int)
    drawn = (255 - row).max(axis=-1) > 60  # not white
    inside = drawn[np.argmax(drawn) : len(drawn) - np.argmax(drawn[::-1])]
    assert inside.size > 400
    assert 0.5 < inside.mean() < 0.8, inside.mean()
    starts = np.flatnonzero(np.diff(inside.astype(int)) == 1)
    assert len(starts) > 30  # many dashes, not one line


def test_one_window_renders_and_bad_shapes_are_refused():
    img = decode(probability_png([[0.3, 0.9]], [[0.0, 1.0]], duration=2.0))
    assert img.shape == (300, 1000, 3)
    with pytest.raises(ValueError, match=r"\[windows, sources\]"):
        page.probability_png(np.zeros(3), np.ones(3), np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="one start and one end per window"):
        page.probability_png(np.zeros(2), np.ones(2), np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not finite"):
        probability_png([[0.3, np.nan]], [[0.0, 1.0]])


def test_the_colour_map_is_matplotlibs_magma():
    """The figures use OpenCV's magma table: the one matplotlib drew them with before, every
    entry (a new OpenCV with another table would silently change every page)."""
    matplotlib = pytest.importorskip("matplotlib", reason="matplotlib absent: nothing to compare")
    reference = matplotlib.colormaps["magma"](np.arange(256))[:, :3] * 255
    drawn = page._magma(np.arange(256, dtype=np.uint8)[:, None])[:, 0, ::-1]  # BGR -> RGB
    assert np.abs(drawn - reference).max() <= 0.5
