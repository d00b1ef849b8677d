import itertools

import numpy as np
import pytest
import torch

from audioscope_kedro.metrics import (
    auc_roc,
    off_screen_suppression,
    oracle_selection_si_snr,
    roc_curve,
    si_snr,
    si_snr_improvement,
)

torch.manual_seed(0)


@pytest.mark.parametrize("shape", [(100,), (3, 100), (2, 3, 100)])
def test_si_snr_shapes(shape):
    assert si_snr(torch.randn(shape), torch.randn(shape)).shape == shape[:-1]


def test_si_snr_closed_form():
    # est = ref + orthogonal noise with ||noise|| = ||ref|| / 10 -> exactly 20 dB
    t = torch.arange(1000, dtype=torch.float64)
    ref = torch.sin(2 * torch.pi * 5 * t / 1000)
    noise = torch.sin(2 * torch.pi * 13 * t / 1000)  # orthogonal, zero mean
    noise = noise * ref.norm() / noise.norm() / 10
    assert si_snr(ref + noise, ref).item() == pytest.approx(20.0, abs=1e-6)


@pytest.mark.parametrize("gain", [0.01, 0.5, 3.0, 100.0])
def test_si_snr_scale_invariant(gain):
    ref, est = torch.randn(4, 500, dtype=torch.float64), torch.randn(4, 500, dtype=torch.float64)
    est = ref + 0.3 * est
    # equal up to the 1e-8 energy floor that keeps silent inputs finite
    torch.testing.assert_close(si_snr(gain * est, ref), si_snr(est, ref), atol=1e-4, rtol=0)
    torch.testing.assert_close(si_snr(est + 5.0, ref), si_snr(est, ref))  # zero-mean


def test_silent_inputs_are_finite():
    zeros, x = torch.zeros(2, 100), torch.randn(2, 100)
    for value in (
        si_snr(zeros, x),
        si_snr(x, zeros),
        si_snr(zeros, zeros),
        off_screen_suppression(zeros, zeros),
        off_screen_suppression(x, zeros),
        oracle_selection_si_snr(torch.zeros(2, 3, 100), zeros),
    ):
        assert torch.isfinite(value).all()


def test_silent_estimate_is_a_failure_not_a_draw():
    ref = torch.randn(3, 200)
    assert (si_snr(torch.zeros(3, 200), ref) == -30.0).all()
    assert (si_snr(1e-12 * torch.randn(3, 200), ref) == -30.0).all()


def test_improvement_is_difference():
    ref, mix = torch.randn(3, 200), torch.randn(3, 200)
    est = ref + 0.1 * mix
    torch.testing.assert_close(
        si_snr_improvement(est, ref, mix), si_snr(est, ref) - si_snr(mix, ref)
    )


def test_suppression_of_constant_half_is_six_db():
    mix = torch.randn(5, 300)
    assert off_screen_suppression(mix, 0.5 * mix) == pytest.approx(20 * np.log10(2), abs=1e-4)


def test_oracle_selection_matches_brute_force():
    sources, ref = (
        torch.randn(3, 4, 200, dtype=torch.float64),
        torch.randn(3, 200, dtype=torch.float64),
    )
    got = oracle_selection_si_snr(sources, ref)
    for b in range(3):
        best = max(
            si_snr(
                sources[b][list(sel)].sum(0) if sel else torch.zeros(200, dtype=torch.float64),
                ref[b],
            ).item()
            for r in range(5)
            for sel in itertools.combinations(range(4), r)
        )
        assert got[b].item() == pytest.approx(best)
    # perfect sources: the bound is reached exactly
    exact = oracle_selection_si_snr(
        torch.stack([ref, torch.randn(3, 200, dtype=torch.float64)], 1), ref
    )
    assert (exact > 60).all()


def test_auc_against_pairwise_definition():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, 60).astype(float)  # many ties
    labels = rng.integers(0, 2, 60)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairwise = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auc_roc(scores, labels) == pytest.approx(pairwise)
    assert auc_roc([0.1, 0.9], [0, 1]) == 1.0 and auc_roc([0.9, 0.1], [0, 1]) == 0.0
    assert np.isnan(auc_roc([0.3, 0.4], [1, 1]))


@pytest.mark.parametrize("levels", [None, 5, 1])  # continuous, few tied levels, all equal
def test_roc_curve_area_equals_auc(levels):
    rng = np.random.default_rng(1)
    scores, labels = rng.random(200), rng.integers(0, 2, 200)
    if levels is not None:
        scores = np.floor(scores * levels) / levels
    fpr, tpr = roc_curve(scores, labels)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(auc_roc(scores, labels))
