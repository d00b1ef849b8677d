"""Cross-fade, permutation alignment and weight interpolation (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from audioscope_kedro.separate.stitch import (
    OverlapAdd,
    WindowPlan,
    best_permutation,
    fade,
    interpolate_weights,
)


@pytest.mark.parametrize(("window", "hop"), [(100, 50), (100, 33), (64, 64), (10, 1)])
def test_overlap_add_is_a_partition_of_unity(window, hop):
    """Any hop, first and last samples included: the stitched signal is the signal."""
    rng = np.random.default_rng(0)
    plan = WindowPlan(window, hop)
    length = 7 * window + 3
    signal = rng.standard_normal((2, plan.start(plan.count(length) - 1) + window))
    ola, out = OverlapAdd(2), []
    count = plan.count(length)
    for k in range(count):
        ola.add(plan.start(k), signal[:, plan.start(k) : plan.start(k) + window])
        # what no later window touches; after the last one, everything up to the end
        out.append(ola.pop(plan.start(k + 1) if k + 1 < count else length))
    np.testing.assert_allclose(np.concatenate(out, axis=1), signal[:, :length], atol=1e-12)
    assert fade(window).min() > 0  # never zero: a sample seen by one window keeps its value


def test_window_count_covers_the_stream():
    plan = WindowPlan(10, 5)
    assert [plan.count(n) for n in (1, 10, 11, 15, 16)] == [1, 1, 2, 2, 3]
    assert all(plan.is_last(plan.count(n) - 1, n) for n in range(1, 40))
    with pytest.raises(ValueError):
        WindowPlan(10, 11)


@pytest.mark.parametrize("m", [2, 4, 8, 9])
def test_best_permutation_recovers_a_shuffle(m):
    rng = np.random.default_rng(m)
    previous = rng.standard_normal((m, 400))
    perm = rng.permutation(m)
    current = np.empty_like(previous)
    current[perm] = previous + 0.1 * rng.standard_normal(
        previous.shape
    )  # current[perm[i]] ~ prev[i]
    found = best_permutation(previous, current)
    np.testing.assert_array_equal(found, perm)
    np.testing.assert_allclose(current[found], previous, atol=0.5)


def test_weights_are_interpolated_between_window_centres():
    centres = np.array([10.0, 20.0])
    weights = np.array([[1.0, 0.0], [0.0, 1.0]])
    w = interpolate_weights(centres, weights, np.array([0.0, 10.0, 15.0, 20.0, 30.0]))
    np.testing.assert_allclose(w[0], [1, 1, 0.5, 0, 0])
    np.testing.assert_allclose(w[1], [0, 0, 0.5, 1, 1])
