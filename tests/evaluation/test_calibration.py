import json

import pytest
import torch

from audioscope_kedro.evaluation.calibration import (
    RAW,
    Calibration,
    CalibrationMismatchError,
    OperatingPoint,
    SelectionStats,
    bias_sweep,
    calibrate,
    trade_off_curve,
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


@pytest.mark.parametrize("target", [6.0, 10.0, 15.0, 20.0, 30.0])
def test_calibration_equals_the_target(target):
    """AudioScopeV2: the suppression at the calibrated point equals the target (here within
    0.01 dB; the issue asks 0.25), not merely reaches it."""
    on_logits, on_stats, off_logits, off_stats = constructed_case()
    result = calibrate(on_logits, on_stats, off_logits, off_stats, target)
    assert result.reached
    w_off = result.point.weights(off_logits.double())
    achieved = weighted_suppression(off_stats, w_off).mean().item()
    assert achieved == pytest.approx(target, abs=0.01) and result.suppression_db == achieved
    chosen = weighted_si_snr(on_stats, result.point.weights(on_logits.double())).mean().item()
    assert result.on_screen_si_snr == pytest.approx(chosen)


def test_the_temperature_chosen_is_the_best_at_equal_suppression():
    on_logits, on_stats, off_logits, off_stats = constructed_case()
    temperatures = (1.0, 0.5, 0.25, 0.1)
    best = calibrate(on_logits, on_stats, off_logits, off_stats, 15.0, temperatures)
    for t in temperatures:
        one = calibrate(on_logits, on_stats, off_logits, off_stats, 15.0, (t,))
        assert one.reached and one.on_screen_si_snr <= best.on_screen_si_snr + 1e-9
    assert best.point.temperature in temperatures


def test_suppression_falls_as_the_bias_rises():
    """The family is monotone on this case: what makes bisection find the one crossing."""
    on_logits, on_stats, off_logits, off_stats = constructed_case()
    curve = trade_off_curve(bias_sweep(0.5), on_logits, on_stats, off_logits, off_stats)
    values = [row["off_screen_suppression"] for row in curve]
    assert all(a >= b - 1e-9 for a, b in zip(values, values[1:], strict=False))


def test_calibration_reports_unreachable_target():
    on_logits, on_stats, off_logits, off_stats = constructed_case()
    result = calibrate(on_logits, on_stats, off_logits, off_stats, 100.0)  # above the 60 dB cap
    assert not result.reached


def test_constant_half_gives_six_db():
    _, _, off_logits, off_stats = constructed_case()
    half = RAW.weights(torch.zeros_like(off_logits, dtype=torch.float64))
    torch.testing.assert_close(
        weighted_suppression(off_stats, half).mean().item(), 6.0206, atol=1e-3, rtol=0
    )


def test_bad_kind():
    with pytest.raises(ValueError):
        OperatingPoint("magic").weights(torch.zeros(1, 2))


def test_calibration_json_round_trip_and_refuses_other_weights():
    point = OperatingPoint("affine", temperature=0.25, bias=-1.5)
    calibration = Calibration(
        point,
        15.0,
        True,
        "validate",
        "abc123",
        {"on_screen_si_snr": 3.0},
        {6.0: OperatingPoint("affine", temperature=1.0, bias=2.0), 15.0: point},
    )
    again = Calibration.from_json(json.loads(json.dumps(calibration.to_json())))
    assert again == calibration
    again.check_model("abc123")
    with pytest.raises(CalibrationMismatchError, match="made for another model"):
        again.check_model("def456")
    with pytest.raises(ValueError, match="lacks"):
        Calibration.from_json({"point": point.to_dict()})
