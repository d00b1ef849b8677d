"""Carrying a split made on the model's mono downmix back to the input's channels and rate.

The model hears a mono downmix at its own sample rate; the user's file may be 44.1 kHz stereo.
The on-screen estimate of a window is turned into a time-frequency mask, the complex ratio
``ON X* / |X|^2`` of the on-screen estimate to the mono mixture (its magnitude capped at one),
on an STFT grid of the same frame duration as the input's; the mask is interpolated onto the
input's STFT grid and applied to every input channel. Above the model's Nyquist frequency the
model heard nothing, so those bins get the frame's broadband on-screen share. The off-screen
part is always ``input - on_screen``, so the two sum back to the input exactly.

For a mono input at the model's rate the grids coincide and the result is the model's own
on-screen estimate, except where the mask is capped.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FRAME_SECONDS = 0.032  # STFT frame of the mask (512 samples at 16 kHz)


def _grid(sample_rate: int, model_rate: int, model_fft: int) -> tuple[int, int]:
    """STFT size and hop at ``sample_rate`` whose frames last about as long as the model's.

    The size is rounded up to a product of 2, 3 and 5: the exact ratio can be a size with
    large prime factors (1411 = 17 * 83 at 44.1 kHz against 512 at 16 kHz), which the FFT
    computes several times slower than 1440 = 2^5 * 3^2 * 5. The mask is interpolated onto
    the input's grid whatever its size."""
    n_fft = _smooth_at_least(max(16, int(round(model_fft * sample_rate / model_rate))))
    return n_fft, max(1, n_fft // 4)


def _smooth_at_least(n: int) -> int:
    """The smallest integer >= ``n`` whose only prime factors are 2, 3 and 5."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


# NumPy's FFT, not torch's: these are many small transforms per window, and torch's
# intra-op threads made them 50x slower on a busy 2-core machine.


def stft(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``x [..., N] -> [..., frames, n_fft // 2 + 1]``, centred frames (padded by reflection)
    of a periodic Hann window."""
    pad = n_fft // 2
    mode = "reflect" if x.shape[-1] > pad else "constant"
    xp = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad, pad)], mode=mode)
    frames = sliding_window_view(xp, n_fft, axis=-1)[..., ::hop, :]
    return np.fft.rfft(frames * _hann(n_fft), axis=-1)


def istft(spec: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """The inverse of :func:`stft` (weighted overlap-add): ``[..., frames, bins] -> [..., length]``."""
    window = _hann(n_fft)
    frames = np.fft.irfft(spec, n=n_fft, axis=-1) * window
    count = frames.shape[-2]
    total = (count - 1) * hop + n_fft
    out = np.zeros((*frames.shape[:-2], total), np.float32)
    norm = np.zeros(total, np.float32)
    # Overlap-add in ceil(n_fft / hop) strided passes instead of one add per frame: frames
    # r, r + R, r + 2R, ... do not overlap, so each pass lays them end to end (zero-padded to
    # R * hop) and adds them at once.
    phases = -(-n_fft // hop)
    stride = phases * hop
    for r in range(min(phases, count)):
        chosen = frames[..., r::phases, :]  # [..., m, n_fft]
        m = chosen.shape[-2]
        laid = np.zeros((*chosen.shape[:-2], m, stride), np.float32)
        laid[..., :n_fft] = chosen
        start = r * hop
        span = min(m * stride, total - start)
        out[..., start : start + span] += laid.reshape(*laid.shape[:-2], m * stride)[..., :span]
        tiled = np.zeros((m, stride), np.float32)
        tiled[:, :n_fft] = window**2
        norm[start : start + span] += tiled.reshape(-1)[:span]
    out /= np.where(norm > 1e-10, norm, 1.0)
    pad = n_fft // 2
    out = out[..., pad : pad + length]
    if out.shape[-1] < length:
        out = np.pad(out, [(0, 0)] * (out.ndim - 1) + [(0, length - out.shape[-1])])
    return out


@functools.cache
def _hann(n: int) -> np.ndarray:
    # float32, so that NumPy's FFT runs in single precision (half the work of double): the
    # masks and the audio files are float32 anyway
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)
    window.flags.writeable = False  # cached and shared
    return window


def _interp(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``values [..., N]`` (at 0..N-1) at fractional ``positions``
    (clamped to the ends)."""
    n = values.shape[-1]
    p = np.clip(positions, 0, n - 1)
    lo = np.minimum(np.floor(p).astype(int), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = p - lo
    return values[..., lo] * (1 - frac) + values[..., hi] * frac


def on_screen_channels(
    original: np.ndarray,
    sample_rate: int,
    mixture: np.ndarray,
    on_screen: np.ndarray,
    model_rate: int,
) -> np.ndarray:
    """The on-screen part of ``original [C, N]`` (at ``sample_rate``) given the model's split
    of the same span: ``mixture [W]`` and its on-screen estimate ``on_screen [W]`` at
    ``model_rate``. Returns ``[C, N]`` float32; the off-screen part is ``original - result``."""
    model_fft = 1 << int(round(np.log2(FRAME_SECONDS * model_rate)))
    model_hop = model_fft // 4
    x_m = stft(np.asarray(mixture, np.float32), model_fft, model_hop).T  # [Fm, Tm]
    on_m = stft(np.asarray(on_screen, np.float32), model_fft, model_hop).T
    power = np.abs(x_m) ** 2
    eps = 1e-8 * power.mean() + 1e-12  # no division blow-up in silent bins
    cross = on_m * np.conj(x_m)
    mask = cross / (power + eps)  # [Fm, Tm]
    mask /= np.maximum(np.abs(mask), 1.0)  # never more of a bin than the mixture has
    broadband = np.clip(cross.real.sum(0) / (power.sum(0) + eps), 0, 1)  # [Tm]

    n_fft, hop = _grid(sample_rate, model_rate, model_fft)
    n = original.shape[-1]
    spec = stft(np.asarray(original, np.float32), n_fft, hop)  # [C, To, Fo]
    if sample_rate == model_rate and n_fft == model_fft and spec.shape[-2] == mask.shape[-1]:
        mask_o = mask.T  # the same grid: no interpolation
    else:
        # input frame j is at j * hop / sample_rate s: model frame (that * model_rate / model_hop)
        times = np.arange(spec.shape[-2]) * hop / sample_rate
        mask_t = _interp(mask, times * model_rate / model_hop)  # [Fm, To]
        band_t = _interp(broadband, times * model_rate / model_hop)  # [To]
        freqs = np.arange(spec.shape[-1]) * sample_rate / n_fft
        bins = freqs * model_fft / model_rate  # fractional model bin of each input bin
        inside = bins <= mask.shape[0] - 1
        mask_o = np.empty(spec.shape[-2:], dtype=mask.dtype)  # [To, Fo]
        mask_o[:, inside] = _interp(mask_t.T, bins[inside])
        mask_o[:, ~inside] = band_t[:, None]
    return istft(spec * mask_o, n_fft, hop, n).astype(np.float32)
