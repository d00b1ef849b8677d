"""The evaluation report: what a researcher reads, checked as figures and in a real browser."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from matplotlib.collections import QuadMesh

from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.evaluation import report
from audioscope_kedro.evaluation.calibration import Calibration, OperatingPoint
from audioscope_kedro.evaluation.runner import evaluate
from tests.evaluation.test_runner import OracleModel
from tests.helpers import TINY_CLIP_SECONDS, TINY_MEDIA, tiny_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def evaluated(tiny_data):
    moms = MoMSet.from_table(tiny_data.store, tiny_data.mom_table, TINY_CLIP_SECONDS, "test")
    model = OracleModel(moms, tiny_config(clip_seconds=TINY_CLIP_SECONDS, media=TINY_MEDIA))
    point = OperatingPoint("affine", temperature=0.1, bias=0.0)
    targets = {6.0: OperatingPoint("affine", temperature=1.0, bias=1.0), 15.0: point}
    result = evaluate(model, moms, point, 4, 1, targets, bootstrap=50)
    calibration = Calibration(point, 15.0, True, "validate", "x", {}, targets)
    return model, result, calibration


def test_one_colour_scale_per_example_and_silence_looks_silent():
    sr = 8000
    t = np.arange(sr) / sr
    loud = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    example = {
        "mom_id": "m",
        "kind": "off_off",
        "mixture": loud,
        "reference": None,
        "calibrated_on_screen": np.zeros_like(loud),  # everything removed
        "figure_name": "suppression",
        "figure_db": 60.0,
        "frame": np.zeros((8, 8, 3), np.uint8),
    }
    fig = report.examples_figure([example], sr)
    panels = [a for a in fig.axes if a.get_xlabel() == "time (s)"]  # not the colour bar
    meshes = [c for a in panels for c in a.collections if isinstance(c, QuadMesh)]
    assert len(meshes) == 2
    assert meshes[0].get_clim() == meshes[1].get_clim()  # one scale per example
    low = meshes[1].get_clim()[0]
    assert np.asarray(meshes[1].get_array()).max() < low  # the silent estimate is all "below"
    labels = {a.get_xlabel() for a in fig.axes} | {a.get_ylabel() for a in fig.axes}
    assert {"time (s)", "frequency (Hz)"} <= labels


def test_report_reads_like_a_results_section(evaluated):
    model, result, calibration = evaluated
    run = report.RunInfo("2026-01-01 00:00 UTC", "abc1234", {"train": {"seed": 0}})
    page = report.evaluation_report(result, calibration, model, "test", run=run)
    for text in (
        "on-screen SI-SNR improvement over the mixture",  # labelled, not raw keys
        "95% CI",
        "oracle selection SI-SNR",
        "mixture SI-SNR",
        "sigmoid(logit / 0.1",  # the operating point in words
        "equals 15 dB",
        "validation target",  # the table at several targets
        "abc1234",
        "2026-01-01",
        "Configuration",
    ):
        assert text in page, text
    for kind in set(result.per_mom["kind"]):
        assert f"{kind} MoM" in page  # an example of every kind
    assert "operating point: OperatingPoint(" not in page


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium: install Debian's `chromium` (apt-get install chromium) to run it",
)
def test_report_renders_in_a_headless_browser(evaluated, tmp_path):
    model, result, calibration = evaluated
    page = tmp_path / "report.html"
    page.write_text(report.evaluation_report(result, calibration, model, "test"))
    shot = tmp_path / "report.png"
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [*common, "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert "Results" in dom and dom.count("<audio") >= 2 and dom.count("<img") >= 3
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] > 1000 and pixels[..., :3].std() > 0.05  # not a blank page
