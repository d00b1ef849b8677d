"""The whole chain on the ``test`` environment: demo_data -> ingest -> coincidence ->
pretrain_audio -> train -> calibrate -> evaluate, then the CLI and the resume-after-kill check."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import torch

from audioscope_kedro.evaluation.calibration import OperatingPoint
from audioscope_kedro.command import main as cli_main
from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.models.audioscope import AudioScope, AudioScopeOutput
from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.evaluation.runner import evaluate
from tests.conftest import PROJECT_ROOT
from tests.pipelines.conftest import kedro_process_args

pytestmark = pytest.mark.slow
METRIC_KEYS = {
    "on_screen_si_snr",
    "on_screen_si_snri",
    "off_screen_suppression",
    "auc_roc",
    "calibrated_on_screen_si_snr",
    "calibrated_on_screen_si_snri",
    "calibrated_off_screen_suppression",
    "calibrated_auc_roc",
    "mixture_si_snr",
    "oracle_si_snr",
}


def test_chain_outputs(chain):
    reporting = chain / "data/08_reporting"
    metrics = json.loads((reporting / "metrics.json").read_text())
    assert set(metrics) >= METRIC_KEYS
    assert all(math.isfinite(metrics[k]) for k in METRIC_KEYS - {"auc_roc", "calibrated_auc_roc"})
    assert metrics["oracle_si_snr"] >= metrics["calibrated_on_screen_si_snr"] - 1e-6
    model_dir = chain / "data/06_models/audioscope"
    assert {"model.pt", "config.json", "calibration.json"} <= {p.name for p in model_dir.iterdir()}
    calibration = json.loads((model_dir / "calibration.json").read_text())
    assert calibration["target_suppression_db"] == 15.0 and calibration["kind"] == "threshold"
    curve = pd.read_csv(reporting / "train_curve.csv")
    assert curve["step"].tolist() == [4, 8] and {
        "train_mixit",
        "val_auc_roc",
        "val_on_screen_si_snr",
    } <= set(curve)
    report = (reporting / "report.html").read_text()
    assert report.count("<audio controls") == 3 * 2 and "data:image/png;base64" in report
    for png in ("trade_off.png", "roc.png", "examples.png"):
        assert (reporting / png).stat().st_size > 1000
    coincidence = json.loads((reporting / "coincidence_report.json").read_text())
    assert (
        coincidence["train_clips"] == 8 and coincidence["train_clips_kept"] == 8
    )  # threshold 0 in test env
    filtered = pd.read_csv(
        chain / "data/04_feature/coincidence_filtered_train_clips.csv", header=None
    )
    assert filtered.shape == (8, 4) and filtered[3].between(0, 1).all()
    assert (chain / "data/06_models/pretrained_separator/config.json").exists()


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


def test_evaluate_perfect_estimates(chain):
    store = ClipStore(chain / "data/03_primary/clip_store")
    moms = MoMSet.from_table(
        store, pd.read_parquet(chain / "data/02_intermediate/mom_table.parquet"), 1.0, "test"
    )
    model = OracleModel(moms, AudioScope.load(chain / "data/06_models/audioscope").config)
    result = evaluate(model, moms, OperatingPoint("threshold", threshold=0.5))
    m = result.metrics
    assert m["calibrated_on_screen_si_snr"] > 60 and m["oracle_si_snr"] > 60
    assert m["calibrated_off_screen_suppression"] == pytest.approx(60.0)  # the cap: nothing kept
    assert m["auc_roc"] == 1.0
    # raw weights sigmoid(10) and sigmoid(-10): leakage of e^-10 of clip 2 into the estimate
    assert 75 < m["on_screen_si_snr"] < 100
    # mixture SI-SNR: clip 1 against clip 1 + clip 2, computed directly
    direct = []
    for _, batch in moms.batches(100, "on_off"):
        from audioscope_kedro.metrics import si_snr

        direct.append(si_snr(batch.mixture, batch.mix1))
    assert m["mixture_si_snr"] == pytest.approx(float(torch.cat(direct).mean()), abs=1e-5)
    assert m["calibrated_on_screen_si_snri"] == pytest.approx(
        m["calibrated_on_screen_si_snr"] - m["mixture_si_snr"], abs=1e-6
    )


def test_cli_evaluate_and_separate(chain, tmp_path, capsys):
    demo, model = chain / "data/01_raw/demo", chain / "data/06_models/audioscope"
    code = cli_main(
        [
            "evaluate",
            "--video-root",
            str(demo),
            "--on-mom",
            str(demo / "filtered_test_onscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv"),
            "--off-mom",
            str(demo / "filtered_test_offscreen_unanimous_plus_offscreen_unanimous_mom_clips.csv"),
            "--model",
            str(model),
            "--out",
            str(tmp_path / "eval"),
            "--workers",
            "1",
        ]
    )
    assert code == 0
    cli_metrics = json.loads((tmp_path / "eval/metrics.json").read_text())
    pipeline_metrics = json.loads((chain / "data/08_reporting/metrics.json").read_text())
    for key in METRIC_KEYS:  # same model, same MoMs, same decoding: same figures
        if not math.isnan(pipeline_metrics[key]):
            assert cli_metrics[key] == pytest.approx(pipeline_metrics[key], abs=1e-4), key
    assert (tmp_path / "eval/report.html").exists()

    video = demo / "videos/test/onscreen_00000.mp4"
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    code = cli_main(
        [
            "separate",
            str(video),
            str(tmp_path / "broken.mp4"),
            "--model",
            str(model),
            "--out",
            str(tmp_path / "sep"),
        ]
    )
    assert code == 1  # one video failed, the other was done
    assert "broken.mp4: skipped: corrupt" in capsys.readouterr().out
    import soundfile as sf

    on, sr = sf.read(tmp_path / "sep/onscreen_00000.on_screen.wav")
    off, _ = sf.read(tmp_path / "sep/onscreen_00000.off_screen.wav")
    from audioscope_kedro.data.decode import DecodeSettings, decode_clip

    mixture = decode_clip(
        video, 0, 1.0, DecodeSettings(sample_rate=sr, fps=4.0, frame_height=16, frame_width=16)
    ).audio
    np.testing.assert_allclose(on + off, mixture[: on.size], atol=1e-5)  # the split is exact


def test_notebook_runs_headless(chain):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(PROJECT_ROOT / "notebooks/explore_run.ipynb", as_version=4)
    os.environ["AUDIOSCOPE_PROJECT"], os.environ["AUDIOSCOPE_ENV"] = str(chain), "test"
    try:
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(chain)}}
        ).execute()
    finally:
        del os.environ["AUDIOSCOPE_PROJECT"], os.environ["AUDIOSCOPE_ENV"]
    outputs = "".join(
        str(o) for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )
    assert (
        "calibrated_on_screen_si_snr" in outputs and "image/png" in outputs and "<audio" in outputs
    )


def test_training_resumes_after_a_kill(chain, tmp_path):
    """A real process kill part-way through `train`, a restart, and the same final weights as
    an uninterrupted run."""
    steps = {
        "train.loop.steps": 24,
        "train.loop.checkpoint_every": 3,
        "train.loop.validate_every": 6,
    }
    params = ",".join(f"{k}={v}" for k, v in steps.items())
    copies = {}
    for name in ("killed", "straight"):
        copies[name] = tmp_path / name
        shutil.copytree(
            chain,
            copies[name],
            symlinks=True,
            ignore=shutil.ignore_patterns("checkpoints", "audioscope"),
        )
    kedro, env = kedro_process_args("train", params)
    ckpt = copies["killed"] / "data/06_models/checkpoints/train"
    proc = subprocess.Popen(
        kedro,
        cwd=copies["killed"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any(
        p.name.startswith("step-") and int(p.stem[5:]) >= 6 for p in ckpt.glob("step-*.pt")
    ):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(int(p.stem[5:]) for p in ckpt.glob("step-*.pt"))
    assert 6 <= killed_at < 24, "the kill must land part-way"
    assert not (copies["killed"] / "data/06_models/audioscope/model.pt").exists()
    for name in ("killed", "straight"):
        subprocess.run(kedro, cwd=copies[name], env=env, check=True, capture_output=True)
    a = AudioScope.load(copies["killed"] / "data/06_models/audioscope").state_dict()
    b = AudioScope.load(copies["straight"] / "data/06_models/audioscope").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    curve_a = pd.read_csv(copies["killed"] / "data/08_reporting/train_curve.csv").drop(
        columns="steps_per_s"
    )
    curve_b = pd.read_csv(copies["straight"] / "data/08_reporting/train_curve.csv").drop(
        columns="steps_per_s"
    )
    pd.testing.assert_frame_equal(curve_a, curve_b)
