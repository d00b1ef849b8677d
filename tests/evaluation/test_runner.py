"""Evaluation figures from a model run over fixed MoMs (here an oracle on the tiny dataset)."""

from __future__ import annotations

import pytest
import torch

from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.data.lists import MomKind
from audioscope_kedro.evaluation.calibration import OperatingPoint
from audioscope_kedro.evaluation.runner import evaluate
from audioscope_kedro.metrics import si_snr
from audioscope_kedro.models.audioscope import AudioScopeOutput
from tests.helpers import TINY_CLIP_SECONDS, TINY_MEDIA, tiny_config


class OracleModel(torch.nn.Module):
    """Separates every MoM of a set perfectly: sources (clip 1, clip 2, silence, silence),
    on-screen logits (+10, -10, -10, -10) for on+off MoMs and all -10 for off+off."""

    def __init__(self, moms: MoMSet, config):
        super().__init__()
        self.config = config
        self.table = {}
        for _, batch in moms.batches(1000):
            for k in range(len(batch.mix1)):
                on = bool(batch.label[k])
                self.table[batch.mixture[k].numpy().tobytes()] = (batch.mix1[k], batch.mix2[k], on)

    def forward(self, mixture, frames):
        sources, logits = [], []
        for row in mixture:
            a, b, on = self.table[row.numpy().tobytes()]
            sources.append(torch.stack([a, b, torch.zeros_like(a), torch.zeros_like(a)]))
            logits.append(torch.tensor([10.0 if on else -10.0, -10.0, -10.0, -10.0]))
        sources, logits = torch.stack(sources), torch.stack(logits)
        on_screen = (torch.sigmoid(logits).unsqueeze(-1) * sources).sum(1)
        return AudioScopeOutput(sources, logits, on_screen, mixture - on_screen)


def test_evaluate_perfect_estimates(tiny_data):
    moms = MoMSet.from_table(tiny_data.store, tiny_data.mom_table, TINY_CLIP_SECONDS, "test")
    assert len(moms) == 5
    model = OracleModel(moms, tiny_config(clip_seconds=TINY_CLIP_SECONDS, media=TINY_MEDIA))
    result = evaluate(model, moms, OperatingPoint("threshold", threshold=0.5))
    m = result.metrics
    assert m["calibrated_on_screen_si_snr"] > 60 and m["oracle_si_snr"] > 60
    assert m["calibrated_off_screen_suppression"] == pytest.approx(60.0)  # the cap: nothing kept
    assert m["auc_roc"] == 1.0
    # raw weights sigmoid(10) and sigmoid(-10): leakage of e^-10 of clip 2 into the estimate
    assert 75 < m["on_screen_si_snr"] < 100
    # at the threshold 0.5 the selection is exact: no leakage at all
    assert m["calibrated_on_screen_si_snr"] > m["on_screen_si_snr"] + 10
    # mixture SI-SNR: clip 1 against clip 1 + clip 2, computed directly
    direct = []
    for _, batch in moms.batches(100, MomKind.ON_OFF):
        direct.append(si_snr(batch.mixture, batch.mix1))
    assert m["mixture_si_snr"] == pytest.approx(float(torch.cat(direct).mean()), abs=1e-5)
    assert m["calibrated_on_screen_si_snri"] == pytest.approx(
        m["calibrated_on_screen_si_snr"] - m["mixture_si_snr"], abs=1e-6
    )


def test_per_mom_table_intervals_and_kinds(tiny_data):
    moms = MoMSet.from_table(tiny_data.store, tiny_data.mom_table, TINY_CLIP_SECONDS, "test")
    model = OracleModel(moms, tiny_config(clip_seconds=TINY_CLIP_SECONDS, media=TINY_MEDIA))
    result = evaluate(model, moms, OperatingPoint("threshold", threshold=0.5), bootstrap=200)
    m, table = result.metrics, result.per_mom
    assert sorted(table["mom_id"]) == sorted(moms.mom_ids)
    on = table[table["on_screen_mom"]]
    assert on["calibrated_on_screen_si_snr"].mean() == pytest.approx(
        m["calibrated_on_screen_si_snr"]
    )
    for key in ("calibrated_on_screen_si_snr", "mixture_si_snr", "oracle_si_snr"):
        low, high = m[f"{key}_ci95_low"], m[f"{key}_ci95_high"]
        assert low <= m[key] + 1e-9 and m[key] <= high + 1e-9 and low < high
    assert m["calibrated_share_at_cap"] == 1.0  # nothing kept on any off-screen MoM
    assert m["auc_roc_on_screen_moms"] == 1.0
    assert m["mixture_si_snr_on_off"] == pytest.approx(m["mixture_si_snr"])
    assert {ex["kind"] for ex in result.examples} == set(moms.kind)  # every kind shown


class GatingModel(torch.nn.Module):
    """Separates nothing: one source is the whole mixture, kept on on-screen clips and
    dropped on off-screen ones (a clip-level gate, e.g. a motion detector)."""

    def __init__(self, moms: MoMSet, config):
        super().__init__()
        self.config = config
        self.on = {}
        for _, batch in moms.batches(1000):
            for k in range(len(batch.mix1)):
                self.on[batch.mixture[k].numpy().tobytes()] = bool(batch.label[k])

    def forward(self, mixture, frames):
        zeros = torch.zeros_like(mixture)
        sources = torch.stack([mixture, zeros, zeros, zeros], 1)
        gate = [10.0 if self.on[row.numpy().tobytes()] else -10.0 for row in mixture]
        logits = torch.tensor([[g, -10.0, -10.0, -10.0] for g in gate])
        on_screen = (torch.sigmoid(logits).unsqueeze(-1) * sources).sum(1)
        return AudioScopeOutput(sources, logits, on_screen, mixture - on_screen)


def test_a_clip_gate_is_visible_for_what_it_is(tiny_data):
    """Perfect suppression, but the on-screen estimate is the mixture: the per-kind figures
    show the calibrated on-screen SI-SNR equal to the mixture's, and SI-SNRi 0."""
    moms = MoMSet.from_table(tiny_data.store, tiny_data.mom_table, TINY_CLIP_SECONDS, "test")
    model = GatingModel(moms, tiny_config(clip_seconds=TINY_CLIP_SECONDS, media=TINY_MEDIA))
    m = evaluate(model, moms, OperatingPoint("threshold", threshold=0.5), bootstrap=50).metrics
    assert m["calibrated_off_screen_suppression"] == pytest.approx(60.0)
    assert m["calibrated_on_screen_si_snr_on_off"] == pytest.approx(
        m["mixture_si_snr_on_off"], abs=1e-4
    )
    assert m["calibrated_on_screen_si_snri"] == pytest.approx(0.0, abs=1e-4)
