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
