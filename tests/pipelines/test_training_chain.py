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

from audioscope_kedro.command import main as cli_main
from audioscope_kedro.data.lists import read_clip_list
from audioscope_kedro.evaluation.metric_names import Metric
from audioscope_kedro.models.audioscope import AudioScope
from tests.helpers import PROJECT_ROOT, TEST_DATA, kedro_process_args

pytestmark = pytest.mark.slow
# every figure of metrics.json, raw and at the calibrated point (names from one place)
FIGURES = [
    Metric.ON_SCREEN_SI_SNR,
    Metric.ON_SCREEN_SI_SNRI,
    Metric.OFF_SCREEN_SUPPRESSION,
    Metric.AUC_ROC,
]
METRIC_KEYS = {
    *map(str, FIGURES),
    *(m.calibrated for m in FIGURES),
    str(Metric.MIXTURE_SI_SNR),
    str(Metric.ORACLE_SI_SNR),
}


def test_chain_outputs(chain):
    reporting = chain / TEST_DATA / "08_reporting"
    metrics = json.loads((reporting / "metrics.json").read_text())
    assert set(metrics) >= METRIC_KEYS
    assert all(math.isfinite(metrics[k]) for k in METRIC_KEYS - {"auc_roc", "calibrated_auc_roc"})
    assert metrics["oracle_si_snr"] >= metrics["calibrated_on_screen_si_snr"] - 1e-6
    model_dir = chain / TEST_DATA / "06_models/audioscope"
    assert {"model.pt", "config.json", "calibration.json"} <= {p.name for p in model_dir.iterdir()}
    calibration = json.loads((model_dir / "calibration.json").read_text())
    assert calibration["target_suppression_db"] == 15.0 and calibration["point"]["kind"] == "affine"
    curve = pd.read_csv(reporting / "train_curve.csv")
    assert curve["step"].tolist() == [4, 8] and {
        "train_mixit",
        "val_auc_roc",
        "val_on_screen_si_snr",
    } <= set(curve)
    report = (reporting / "report.html").read_text()
    # one example per MoM kind: (on, off) with mixture, estimate and reference, (off, off)
    # with mixture and estimate
    assert report.count("<audio controls") == 3 + 2 and "data:image/png;base64" in report
    for png in ("trade_off.png", "roc.png", "examples.png"):
        assert (reporting / png).stat().st_size > 1000
    coincidence = json.loads((reporting / "coincidence_report.json").read_text())
    # the V1 filter at threshold 0 in the test env: every training clip is kept
    assert coincidence["filter"] is True and coincidence["folds"] == 2
    assert coincidence["train_clips"] == 8 and coincidence["train_clips_kept"] == 8
    assert coincidence["train_clips_labelled"] == 2  # train_onscreen + train_offscreen
    assert 0 <= coincidence["held_out_auc_roc"] <= 1
    assert sorted(coincidence["held_out_auc_roc_per_fold"]) == ["fold_0", "fold_1"]
    features = chain / TEST_DATA / "04_feature"
    assert len(read_clip_list(features / "coincidence_filtered_train_clips.csv")) == 8
    scores = pd.read_parquet(features / "coincidence_scores.parquet")
    assert scores["coincidence_score"].between(0, 1).all()
    assert sorted(scores.loc[scores["split"] == "train", "fold"].unique()) == [0, 1]
    assert (scores.loc[scores["split"] != "train", "fold"] == -1).all()
    models = chain / TEST_DATA / "06_models/coincidence"
    assert sorted(p.name for p in models.iterdir()) == ["fold_0_model", "fold_1_model"]
    coincidence_curve = pd.read_csv(reporting / "coincidence_curve.csv")
    assert {"step", "val_auc_roc", "val_auc_roc_fold_0", "val_auc_roc_fold_1"} <= set(
        coincidence_curve
    )
    assert (chain / TEST_DATA / "06_models/pretrained_separator/config.json").exists()


def test_cli_evaluate_and_separate(chain, tmp_path, capsys):
    demo, model = chain / TEST_DATA / "01_raw/demo", chain / TEST_DATA / "06_models/audioscope"
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
    pipeline_metrics = json.loads((chain / TEST_DATA / "08_reporting/metrics.json").read_text())
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

    from audioscope_kedro.data.decode import DecodeSettings, decode_clip
    from audioscope_kedro.separate import output_folder

    folder = output_folder(tmp_path / "sep", video)
    on, sr = sf.read(folder / "on_screen.wav", always_2d=True)
    off, _ = sf.read(folder / "off_screen.wav", always_2d=True)
    # written at the input's own rate: compare with the input decoded at that rate
    mixture = decode_clip(
        video,
        0,
        on.shape[0] / sr,
        DecodeSettings(sample_rate=sr, fps=4.0, frame_height=16, frame_width=16),
    ).audio
    np.testing.assert_allclose((on + off)[:, 0], mixture[: on.shape[0]], atol=1e-4)  # exact split


def test_stale_calibration_is_refused(chain, tmp_path):
    """`train` and `calibrate` write their own outputs; a released folder whose calibration was
    made for other weights (train rerun, calibrate not) is refused, by the command too."""
    from audioscope_kedro.evaluation.calibration import CalibrationMismatchError
    from audioscope_kedro.release import ReleasedModel

    released = chain / TEST_DATA / "06_models/audioscope"
    assert ReleasedModel.load(released).calibration is not None
    stale = tmp_path / "stale"
    shutil.copytree(released, stale)
    model = AudioScope.load(stale)
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # "retrained"
    model.save(stale)
    with pytest.raises(CalibrationMismatchError, match="made for another model"):
        ReleasedModel.load(stale)
    video = chain / TEST_DATA / "01_raw/demo/videos/test/onscreen_00000.mp4"
    code = cli_main(["separate", str(video), "--model", str(stale), "--out", str(tmp_path / "o")])
    assert code == 2 and not (tmp_path / "o").exists()


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
        Metric.ON_SCREEN_SI_SNR.calibrated in outputs
        and "image/png" in outputs
        and "<audio" in outputs
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
            ignore=shutil.ignore_patterns("checkpoints", "audioscope", "trained_audioscope"),
        )
    kedro, env = kedro_process_args("train", params)
    ckpt = copies["killed"] / TEST_DATA / "06_models/checkpoints/train"
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
    assert not (copies["killed"] / TEST_DATA / "06_models/trained_audioscope/model.pt").exists()
    for name in ("killed", "straight"):
        subprocess.run(kedro, cwd=copies[name], env=env, check=True, capture_output=True)
    a = AudioScope.load(copies["killed"] / TEST_DATA / "06_models/trained_audioscope").state_dict()
    b = AudioScope.load(
        copies["straight"] / TEST_DATA / "06_models/trained_audioscope"
    ).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    curve_a = pd.read_csv(copies["killed"] / TEST_DATA / "08_reporting/train_curve.csv").drop(
        columns="steps_per_s"
    )
    curve_b = pd.read_csv(copies["straight"] / TEST_DATA / "08_reporting/train_curve.csv").drop(
        columns="steps_per_s"
    )
    pd.testing.assert_frame_equal(curve_a, curve_b)
