"""The streaming engine with a fake separator whose outputs are known: a 60-second input is
stitched without seams and its sources keep their identity; memory does not grow with length;
a split made in mono at the model's rate is carried back to the input's channels and rate."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from audioscope_kedro.evaluation.calibration import OperatingPoint, PointKind
from audioscope_kedro.media import MediaFormat
from audioscope_kedro.separate.channels import on_screen_channels
from audioscope_kedro.separate.engine import Geometry, Separated, Stitcher, Windower
from audioscope_kedro.separate.page import SpectrogramAccumulator
from audioscope_kedro.separate.reader import Block

SR = 8000
MEDIA = MediaFormat(sample_rate=SR, fps=4.0, frame_height=8, frame_width=8)
HARD = OperatingPoint(PointKind.THRESHOLD, threshold=0.5)


def known_sources(seconds: float) -> np.ndarray:
    """Three sources ``[3, T]`` that a window can tell apart: two slow tones (150 and 230 Hz:
    a jump at a seam would stand far above their sample-to-sample variation) and a 900 Hz
    tone with noise."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(0)
    return np.stack(
        [
            0.4 * np.sin(2 * np.pi * 150 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.13 * t)),
            0.5 * np.sin(2 * np.pi * 230 * t + 1.0),
            0.3 * np.sin(2 * np.pi * 900 * t) + 0.05 * rng.standard_normal(t.size),
        ]
    ).astype(np.float32)


def blocks(mixture: np.ndarray, block: int = 3000):
    """The stream a reader would give for a mono input at the model's rate, 8x8 frames."""
    frame = np.zeros((8, 8, 3), np.uint8)
    k = 0
    for start in range(0, mixture.size, block):
        piece = mixture[start : start + block]
        frames = []
        while k / MEDIA.fps < (start + piece.size) / SR:
            frames.append((k, frame))
            k += 1
        yield Block(audio=piece[None], model_audio=piece, frames=frames)


class ShufflingSeparator:
    """Returns each window's true sources in a fresh random order, with logits that say
    source 0 is on-screen, and source 1 too in every third window (a hard decision that flips
    at seams)."""

    def __init__(self, sources: np.ndarray, plan):
        self.sources, self.plan = sources, plan
        self.rng = np.random.default_rng(1)

    def __call__(self, windows):
        outs, logits = [], []
        for w in windows:
            a = self.plan.start(w.index)
            true = np.zeros((3, self.plan.window), np.float32)
            piece = self.sources[:, a : a + self.plan.window]
            true[:, : piece.shape[1]] = piece
            lg = np.array([4.0, 4.0 if w.index % 3 == 0 else -4.0, -4.0], np.float32)
            perm = self.rng.permutation(3)
            outs.append(true[perm])
            logits.append(lg[perm])
        return np.stack(outs), np.stack(logits)


def run_engine(mixture, separator_for, point=HARD, window=2.0, hop=1.0, spectrogram=None):
    g = Geometry.create(MEDIA, SR, window, hop)
    separator = separator_for(g.plan)
    windower, stitcher = Windower(g, 1, (8, 8)), Stitcher(g, point, 1)
    chunks = []

    def feed(windows):
        if windows:
            for w, s, lg in zip(windows, *separator(windows), strict=True):
                chunks.extend(stitcher.push(Separated(w, s, lg)))

    for b in blocks(mixture):
        feed(windower.push(b))
        if spectrogram is not None:
            for c in chunks:
                spectrogram.push(c.original[0], c.on_screen[0], c.off_screen[0])
            chunks.clear()
    feed(windower.finish())
    chunks.extend(stitcher.finish(windower.input_total, windower.model_total))
    return g, stitcher, chunks


@pytest.fixture(scope="module")
def sixty_seconds():
    sources = known_sources(60.0)
    mixture = sources.sum(0)
    g, stitcher, chunks = run_engine(mixture, lambda plan: ShufflingSeparator(sources, plan))
    return sources, mixture, g, stitcher, chunks


def test_sources_keep_their_identity_across_windows(sixty_seconds):
    sources, _, g, stitcher, chunks = sixty_seconds
    stitched = np.concatenate([c.sources for c in chunks], axis=1)
    assert stitched.shape == sources.shape
    # the first window's order is kept from start to end: stitched source j is one true source
    first = [int(np.argmax(np.abs(stitched[j, :SR] @ sources[:, :SR].T))) for j in range(3)]
    np.testing.assert_allclose(stitched, sources[first], atol=1e-5)
    assert len(stitcher.records) == g.plan.count(sources.shape[1]) == 59


def test_no_discontinuity_at_the_seams(sixty_seconds):
    sources, mixture, g, _, chunks = sixty_seconds
    on = np.concatenate([c.on_screen[0] for c in chunks])
    off = np.concatenate([c.off_screen[0] for c in chunks])
    np.testing.assert_allclose(on + off, mixture, atol=1e-5)  # the split sums back
    # the signal's own sample-to-sample variation: what the on-screen sound can do at most
    own = np.abs(np.diff(sources[0] + sources[1])).max()
    seams = [g.plan.start(k) for k in range(1, 59)] + [
        g.plan.start(k) + g.plan.window for k in range(58)
    ]
    jumps = np.abs(on[np.array(seams)] - on[np.array(seams) - 1])
    assert jumps.max() <= own, (jumps.max(), own)
    # the hard decision (source 1 on in every third window) is the window's own at its
    # centre and fades in between: window 3 (centre 4 s) keeps it, window 4 (centre 5 s) not
    for centre, expected in ((4 * SR, sources[0] + sources[1]), (5 * SR, sources[0])):
        near = slice(centre - 20, centre + 20)
        np.testing.assert_allclose(on[near], expected[near], atol=0.02)
    middle = int(4.5 * SR)  # halfway: half of source 1
    np.testing.assert_allclose(on[middle], sources[0, middle] + 0.5 * sources[1, middle], atol=0.02)


def test_short_input_is_one_padded_window():
    sources = known_sources(0.7)
    _, stitcher, chunks = run_engine(sources.sum(0), lambda plan: ShufflingSeparator(sources, plan))
    assert len(stitcher.records) == 1
    assert sum(c.on_screen.shape[1] for c in chunks) == sources.shape[1]


class CheapSeparator:
    def __init__(self, plan):
        pass

    def __call__(self, windows):
        mix = np.stack([w.mixture for w in windows])
        return np.stack([0.7 * mix, 0.3 * mix], axis=1), np.zeros((len(windows), 2), np.float32)


def peak_memory(seconds: float) -> int:
    """Peak NumPy/Python heap of the engine (and the spectrogram accumulator) on a stream of
    ``seconds`` of noise, generated block by block (never whole)."""
    rng = np.random.default_rng(0)

    class Noise:  # the input itself is generated lazily, like a decoder would give it
        size = int(seconds * SR)

        def __getitem__(self, s):
            return (0.1 * rng.standard_normal(len(range(*s.indices(self.size))))).astype(np.float32)

    tracemalloc.start()
    try:
        run_engine(
            Noise(), CheapSeparator, window=4.0, hop=2.0, spectrogram=SpectrogramAccumulator(SR)
        )
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_length():
    short, long = peak_memory(60.0), peak_memory(1200.0)
    assert long <= 1.2 * short, (short, long)


def test_split_goes_back_to_the_input_channels_and_rate():
    """A tone panned left and another panned right in 44.1 kHz stereo; the model heard their
    mono downmix at 8 kHz and called the left one on-screen: the on-screen output is the left
    channel's tone, in the left channel."""
    rate, seconds = 44100, 1.0
    t_in = np.arange(int(rate * seconds)) / rate
    t_m = np.arange(int(SR * seconds)) / SR
    left, right = np.sin(2 * np.pi * 300 * t_in), np.sin(2 * np.pi * 1700 * t_in)
    original = 0.4 * np.stack([left, right]).astype(np.float32)
    mixture = (0.2 * (np.sin(2 * np.pi * 300 * t_m) + np.sin(2 * np.pi * 1700 * t_m))).astype(
        np.float32
    )
    on_model = (0.2 * np.sin(2 * np.pi * 300 * t_m)).astype(np.float32)
    on = on_screen_channels(original, rate, mixture, on_model, SR)
    assert on.shape == original.shape
    inner = slice(2000, -2000)

    def snr(est, ref):
        return 10 * np.log10(np.sum(ref**2) / np.sum((est - ref) ** 2))

    assert snr(on[0, inner], original[0, inner]) > 20  # left: all of it is on-screen
    assert (
        np.sqrt(np.mean(on[1, inner] ** 2)) < 0.01 * np.sqrt(np.mean(original[1, inner] ** 2)) * 10
    )


@pytest.mark.parametrize("n_fft, hop", [(512, 128), (1411, 352), (100, 33), (16, 4)])
def test_stft_round_trip(n_fft, hop):
    """The mask's STFT and its overlap-add inverse give the signal back, for the grids of odd
    input rates too (a hop that does not divide the frame)."""
    from audioscope_kedro.separate.channels import istft, stft

    x = np.random.default_rng(n_fft).standard_normal((2, 4000)).astype(np.float32)
    np.testing.assert_allclose(istft(stft(x, n_fft, hop), n_fft, hop, 4000), x, atol=1e-5)


@pytest.mark.parametrize("n", [16, 97, 360, 1411, 1536, 2822])
def test_mask_fft_sizes_are_the_smallest_fast_ones(n):
    """Input-rate STFT sizes are rounded up to 2^a 3^b 5^c (an FFT of 17 * 83 points is
    several times slower than one of 1440)."""
    from audioscope_kedro.separate.channels import _smooth_at_least

    def smooth(k):
        for p in (2, 3, 5):
            while k % p == 0:
                k //= p
        return k == 1

    m = _smooth_at_least(n)
    assert m >= n and smooth(m) and not any(smooth(k) for k in range(n, m))
