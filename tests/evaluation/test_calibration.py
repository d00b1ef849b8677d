import pytest
import torch

from audioscope_kedro.evaluation.calibration import (
    RAW,
    OperatingPoint,
    SelectionStats,
    calibrate,
    candidate_points,
    weighted_si_snr,
    weighted_suppression,
)
from audioscope_kedro.metrics import off_screen_suppression, si_snr


def test_stats_match_direct_computation():
    g = torch.Generator().manual_seed(0)
    sources, ref = (
        torch.randn(5, 4, 300, generator=g, dtype=torch.float64),
        torch.randn(5, 300, generator=g, dtype=torch.float64),
    )
    mix = sources.sum(1)
    w = torch.rand(5, 4, generator=g, dtype=torch.float64)
    stats = SelectionStats.from_audio(sources, mix, ref)
    est = (w.unsqueeze(-1) * sources).sum(1)
    torch.testing.assert_close(weighted_si_snr(stats, w), si_snr(est, ref), atol=1e-6, rtol=0)
    torch.testing.assert_close(
        weighted_suppression(stats, w), off_screen_suppression(mix, est), atol=1e-6, rtol=0
    )
    # batched over operating points
    assert weighted_si_snr(stats, torch.stack([w, w, w])).shape == (3, 5)


def test_suppression_cap():
    sources = torch.randn(2, 3, 100)
    stats = SelectionStats.from_audio(sources, sources.sum(1))
    assert (weighted_suppression(stats, torch.zeros(2, 3), cap_db=60) == 60).all()


def constructed_case(n=40, seed=0):
    """Two sources per mixture: an on-screen one and an off-screen one. The classifier is
    right on average but noisy, so stricter thresholds trade on-screen SI-SNR for suppression."""
    g = torch.Generator().manual_seed(seed)
    t = 400
    on_src, off_src = torch.randn(n, t, generator=g), torch.randn(n, t, generator=g)
    on_sources = torch.stack([on_src, off_src], 1)
    on_logits = torch.stack(
        [1.0 + torch.randn(n, generator=g), -1.0 + torch.randn(n, generator=g)], 1
    )
    off_sources = torch.randn(n, 2, t, generator=g)
    off_logits = -1.0 + 1.5 * torch.randn(n, 2, generator=g)
    on_stats = SelectionStats.from_audio(on_sources, on_sources.sum(1), on_src)
    off_stats = SelectionStats.from_audio(off_sources, off_sources.sum(1))
    return on_logits, on_stats, off_logits, off_stats


@pytest.mark.parametrize("kind", ["threshold", "affine"])
@pytest.mark.parametrize("target", [10.0, 20.0, 30.0])
def test_calibration_hits_target_and_is_best_among_those_that_do(kind, target):
    on_logits, on_stats, off_logits, off_stats = constructed_case()
    point, curve, reached = calibrate(on_logits, on_stats, off_logits, off_stats, target, kind)
    assert reached
    w_off = point.weights(off_logits.double())
    assert weighted_suppression(off_stats, w_off).mean() >= target
    chosen = weighted_si_snr(on_stats, point.weights(on_logits.double())).mean()
    for p in candidate_points(kind):
        if weighted_suppression(off_stats, p.weights(off_logits.double())).mean() >= target:
            assert weighted_si_snr(on_stats, p.weights(on_logits.double())).mean() <= chosen + 1e-9
    assert len(curve) == len(candidate_points(kind))


def test_calibration_reports_unreachable_target():
    on_logits, on_stats, off_logits, off_stats = constructed_case()
    _, _, reached = calibrate(on_logits, on_stats, off_logits, off_stats, 100.0)
    assert not reached


def test_constant_half_gives_six_db():
    _, _, off_logits, off_stats = constructed_case()
    half = RAW.weights(torch.zeros_like(off_logits, dtype=torch.float64))
    torch.testing.assert_close(
        weighted_suppression(off_stats, half).mean().item(), 6.0206, atol=1e-3, rtol=0
    )


def test_bad_kind():
    with pytest.raises(ValueError):
        OperatingPoint("magic").weights(torch.zeros(1, 2))
    with pytest.raises(ValueError):
        candidate_points("magic")
