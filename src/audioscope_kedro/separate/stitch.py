"""Stitching overlapping windows into one seamless stream (pure NumPy, no I/O).

A long input is cut into windows of ``window`` samples every ``hop`` samples; each window is
separated on its own. Three things make the windows one signal again:

- **cross-fade**: every window's output is weighted by a raised-cosine window that is never
  zero, and the overlap-add is divided by the sum of the weights, so the weights form an exact
  partition of unity at every sample (also at the first and last samples and for any hop, where
  plain Hann windows would not sum to one);
- **permutation alignment**: a separator outputs its sources in an arbitrary order in each
  window; each window's sources are permuted to best match the previous window's on their
  overlap, so that ``source_k`` is the same sound from start to end;
- **smooth decisions**: a window's on-screen weights are placed at its centre and interpolated
  linearly between centres, so that a source switched on or off by a hard threshold fades over
  one hop instead of jumping at a seam.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

MAX_BRUTE_FORCE_SOURCES = 8  # 8! = 40320 permutations: exact search, still milliseconds


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a stream of ``length`` samples (at one sample rate) lie."""

    window: int  # samples per window
    hop: int  # samples between window starts, 0 < hop <= window

    def __post_init__(self) -> None:
        if not 0 < self.hop <= self.window:
            raise ValueError(f"need 0 < hop <= window, got window={self.window}, hop={self.hop}")

    def start(self, k: int) -> int:
        return k * self.hop

    def centre(self, k: int) -> float:
        return k * self.hop + self.window / 2

    def is_last(self, k: int, length: int) -> bool:
        """True when window ``k`` reaches the end of a stream of ``length`` samples."""
        return self.start(k) + self.window >= length

    def count(self, length: int) -> int:
        """Number of windows that cover ``length`` samples (at least one; the last one may run
        past the end and is zero-padded)."""
        if length <= self.window:
            return 1
        return 1 + math.ceil((length - self.window) / self.hop)


@functools.cache
def fade(n: int) -> np.ndarray:
    """Raised-cosine weights ``[n]`` sampled at bin centres: like a Hann window, but never
    exactly zero, so that a sample covered by one window only keeps that window's value after
    normalisation. Cached (every window of a stream has the same length) and read-only."""
    weights = (0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(n) + 0.5) / n)).astype(np.float64)
    weights.flags.writeable = False
    return weights


class OverlapAdd:
    """Streaming weighted overlap-add of ``[channels, n]`` pieces with normalisation.

    ``add(start, piece)`` adds ``fade(n) * piece`` at absolute sample ``start``; ``pop(until)``
    returns the finished samples ``[done, until)`` divided by the sum of the weights there.
    Only the samples not yet popped are held: memory is about one window, whatever the length.
    """

    def __init__(self, channels: int):
        self.channels = channels
        self.offset = 0  # absolute index of buf[:, 0]
        self.buf = np.zeros((channels, 0), np.float64)
        self.weight = np.zeros(0, np.float64)

    def add(self, start: int, piece: np.ndarray, weights: np.ndarray | None = None) -> None:
        """``piece [channels, n]`` at absolute sample ``start`` (not before what was popped)."""
        if start < self.offset:
            raise ValueError(f"piece starts at {start}, before the popped samples ({self.offset})")
        n = piece.shape[-1]
        w = fade(n) if weights is None else weights
        end = start + n - self.offset
        if end > self.weight.size:
            grow = end - self.weight.size
            self.buf = np.concatenate([self.buf, np.zeros((self.channels, grow))], axis=1)
            self.weight = np.concatenate([self.weight, np.zeros(grow)])
        a = start - self.offset
        self.buf[:, a:end] += piece * w
        self.weight[a:end] += w

    def pop(self, until: int) -> np.ndarray:
        """The finished samples from the last pop up to ``until`` (absolute): ``[channels, m]``."""
        m = max(0, min(until - self.offset, self.weight.size))
        out = self.buf[:, :m] / np.maximum(self.weight[:m], 1e-300)
        self.buf, self.weight = self.buf[:, m:], self.weight[m:]
        self.offset += m
        return out


def best_permutation(previous: np.ndarray, current: np.ndarray) -> np.ndarray:
    """The order of ``current``'s sources that best matches ``previous`` on their overlap.

    ``previous [M, L]`` (already aligned) and ``current [M, L]``: the same ``L`` samples seen by
    two windows. Returns ``perm [M]`` such that ``current[perm]`` is aligned: ``current[perm[m]]``
    is the source that continues ``previous[m]``. Maximises the summed correlation (for
    mixture-consistent sources, the same as minimising the summed squared difference);
    exact up to ``MAX_BRUTE_FORCE_SOURCES`` sources, greedy above.
    """
    m = previous.shape[0]
    score = previous.astype(np.float64) @ current.astype(np.float64).T  # [M prev, M cur]
    if m <= MAX_BRUTE_FORCE_SOURCES:
        perms = np.array(list(itertools.permutations(range(m))))
        return perms[np.argmax(score[np.arange(m), perms].sum(1))]
    perm = np.full(m, -1)
    free = np.ones(m, bool)
    for i in np.argsort(-score.max(1)):
        j = int(np.argmax(np.where(free, score[i], -np.inf)))
        perm[i], free[j] = j, False
    return perm


def interpolate_weights(centres: np.ndarray, weights: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Per-source weights at ``times [T]`` from weights ``[K, M]`` at window ``centres [K]``:
    linear between centres, constant before the first and after the last. Returns ``[M, T]``."""
    return np.stack([np.interp(times, centres, weights[:, m]) for m in range(weights.shape[1])])
