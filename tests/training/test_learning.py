"""Does training learn? Audio pre-training then AudioScope training, on a small world in which
the task is learnable within a test's budget, must give an on-screen estimate that beats the
mixture at a calibrated operating point and a classifier that beats a constant.

The world (``learnable_clip``): every sound is a tone whose pitch is fixed by its class, with
its own loudness envelope; every video shows two blobs on a dark frame, each in its class's
colour, one moving with (its brightness following) the loudness of a sound heard in the clip
(on-screen) or of an unheard one (a silent blob). Unlabelled training clips hold one on-screen
sound; validation has on-screen-only clips (one on-screen sound and one silent blob) and
off-screen-only clips (one unseen sound and two silent blobs). So nothing about a clip's frames
alone or its soundtrack alone says whether a sound is on screen; which blob colour is visible
and which blob moves with which sound do. Tones separate easily, so that the few hundred steps
a test can afford go to the audio-visual part, which is what this test is about.

Checked by breaking it: with ``classification_weight: 0`` (the classifier never trained) the
calibrated on-screen SI-SNR stays at the mixture's and the AUC near 0.5, and the test fails.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.data.clip_table import assemble_clip_table, assemble_mom_table
from audioscope_kedro.data.decode import DecodeSettings
from audioscope_kedro.data.lists import MOM_COLUMNS, ListKey
from audioscope_kedro.data.store import ClipStore, ShardBatch, build_clip_store, plan_shards
from audioscope_kedro.data.video_io import write_mp4
from audioscope_kedro.evaluation.calibration import calibrate
from audioscope_kedro.evaluation.metric_names import Metric
from audioscope_kedro.evaluation.runner import baselines, run_on_moms, source_scores_and_labels
from audioscope_kedro.media import MediaFormat
from audioscope_kedro.metrics import auc_roc
from audioscope_kedro.models.audioscope import AudioScopeConfig
from audioscope_kedro.parameters import parse
from audioscope_kedro.training.audioscope import TrainParams, fit_audioscope
from audioscope_kedro.training.checkpoints import CheckpointStore
from audioscope_kedro.training.separator import PretrainParams, pretrain_separator

SECONDS = 2.0  # clip length; the videos are written 0.5 s longer (the codec trims their ends)
WRITE_SR, FPS, SIZE = 16000, 8.0, 16
MEDIA = MediaFormat(sample_rate=8000, fps=FPS, frame_height=SIZE, frame_width=SIZE)
PITCH_HZ = (250.0, 450.0, 800.0, 1400.0, 2200.0, 3000.0)  # one tone per class
COLOUR = np.array(
    [(255, 40, 40), (40, 255, 40), (40, 40, 255), (255, 255, 40), (255, 40, 255), (40, 255, 255)],
    np.float32,
)
BLOB_CENTRES = ((4, 4), (11, 11), (4, 11), (11, 4))
# Smaller than conf/base's model and larger than conf/test's (whose 16-wide embeddings did not
# learn the association in 600 steps); the cross-modal separable variant learned it fastest.
LEARNABLE_MODEL = {
    "separator": {
        "num_sources": 4,
        "basis_size": 128,
        "window": 128,
        "hop": 32,
        "bottleneck": 32,
        "hidden": 64,
        "blocks": 5,
    },
    "embedding": {
        "dim": 32,
        "audio_window": 64,
        "audio_hop": 32,
        "audio_channels": 32,
        "image_channels": [16, 32],
    },
    "attention": {"variant": "sep_cma", "dim": 32, "heads": 2, "layers": 1},
}
COUNTS = {"train": 96, "validate_onscreen": 16, "validate_offscreen": 16}

# What "learns" means here, at the point calibrated to TARGET_DB of off-screen suppression on
# the validation MoMs. Measured at these settings: +1.97 dB and AUC 0.771 on one 2-core AMD
# EPYC; +2.51 dB and 0.641 on another with AVX-512 (the same code and seed: float rounding of
# the CPU's kernels steers 1000 steps of training elsewhere; +2.20 dB and 0.645 there with MKL
# and oneDNN held to AVX2). With the classifier untrained (classification_weight 0): -0.00 dB
# and 0.488, and the test fails. The AUC bound sits between the two.
TARGET_DB = 10.0
MIN_SI_SNR_GAIN_DB = 1.0  # calibrated on-screen SI-SNR minus the mixture's
MIN_AUC = 0.6  # a constant scores 0.5


def _envelope(rng: np.random.Generator, n: int) -> np.ndarray:
    """2 to 4 smooth loudness events over ``n`` samples, peak 1."""
    control = np.zeros(n // 80 + 1)  # 200 Hz control rate at 16 kHz
    for _ in range(rng.integers(2, 5)):
        start, length = rng.integers(control.size), rng.integers(20, control.size // 2)
        control[start : start + length] = rng.uniform(0.5, 1.0)
    control = np.convolve(control, np.hanning(15) / np.hanning(15).sum(), mode="same")
    env = np.interp(np.arange(n) / 80, np.arange(control.size), control)
    return env / (env.max() + 1e-9)


def learnable_clip(rng: np.random.Generator, label: str) -> tuple[np.ndarray, np.ndarray]:
    """``(frames [F, H, W, 3] uint8, audio [T] float32)`` of one clip; ``label`` is
    ``onscreen`` (also the unlabelled training clips) or ``offscreen``."""
    n = int((SECONDS + 0.5) * WRITE_SR)
    num_frames = int((SECONDS + 0.5) * FPS)
    classes = rng.permutation(len(PITCH_HZ))[:3]
    t = np.arange(n) / WRITE_SR
    envelopes = [_envelope(rng, n) for _ in classes]
    tones = [
        0.14 * np.sin(2 * np.pi * PITCH_HZ[c] * rng.uniform(0.97, 1.03) * t + rng.uniform(0, 6.3))
        for c in classes
    ]
    heard = [0] if label == "onscreen" else [2]  # class index 2 is never shown
    # a faint noise floor: AAC drops stretches of digital silence, and ingest would quarantine
    # the clip as shorter than its list says
    floor = 1e-3 * rng.standard_normal(n)
    audio = (np.sum([tones[k] * envelopes[k] for k in heard], axis=0) + floor).astype(np.float32)
    # per-frame loudness of the two visible objects: classes[0] (heard when on-screen) and [1]
    per_frame = n // num_frames
    frames = np.full((num_frames, SIZE, SIZE, 3), 30.0, np.float32)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    for k, centre in zip((0, 1), rng.permutation(len(BLOB_CENTRES))[:2], strict=True):
        loudness = envelopes[k][: num_frames * per_frame].reshape(num_frames, per_frame).mean(1)
        cy, cx = BLOB_CENTRES[centre]
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
        frames += loudness[:, None, None, None] * blob[None, :, :, None] * COLOUR[classes[k]]
    return frames.clip(0, 255).astype(np.uint8), audio


def _clips(paths: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"video_path": paths, "start_time": 0.0, "end_time": SECONDS})


def _moms(pairs) -> pd.DataFrame:
    return pd.DataFrame([(a, 0.0, SECONDS, b, 0.0, SECONDS) for a, b in pairs], columns=MOM_COLUMNS)


@pytest.fixture(scope="module")
def learnable_world(tmp_path_factory) -> tuple[ClipStore, pd.DataFrame, pd.DataFrame]:
    """The clip store, clip table and MoM table of the world above (V1 list names)."""
    root = tmp_path_factory.mktemp("learnable")
    rng = np.random.default_rng(0)
    lists, paths = {}, {}
    for name, count in COUNTS.items():
        paths[name] = [f"videos/{name}_{i}.mp4" for i in range(count)]
        label = "offscreen" if name.endswith("offscreen") else "onscreen"
        for path in paths[name]:
            frames, audio = learnable_clip(rng, label)
            write_mp4(root / "videos" / path, frames, FPS, audio, WRITE_SR)
        lists[ListKey.parse(name)] = _clips(paths[name])
    on, off = paths["validate_onscreen"], paths["validate_offscreen"]
    lists[ListKey.parse("validate")] = _clips(on + off)
    lists[ListKey.parse("validate_on_off_mom")] = _moms(zip(on, off, strict=True))
    lists[ListKey.parse("validate_off_off_mom")] = _moms(zip(off, off[1:] + off[:1], strict=True))
    clip_table, mom_table = assemble_clip_table(lists), assemble_mom_table(lists)
    decode = DecodeSettings.for_media(MEDIA)
    plans = plan_shards(clip_table, str(root / "videos"), decode, 32)
    build_clip_store(ShardBatch(plans, 1, decode), root / "store")
    store = ClipStore(root / "store")
    assert len(store) == len(clip_table), store.quarantine
    return store, clip_table, mom_table


def train_on_world(world, tmp_path: Path, **train_overrides):
    """Pre-train the separator, then train AudioScope; returns the model."""
    store, clip_table, mom_table = world
    config = replace(
        parse(AudioScopeConfig, LEARNABLE_MODEL, "model"),
        media=store.settings.media,
        clip_seconds=SECONDS,
    )
    no_checkpoints = {"checkpoint_every": 10**6}
    pretrain = parse(
        PretrainParams,
        {"batch_size": 8, "loop": {"steps": 200, "learning_rate": 3e-3, **no_checkpoints}},
        "pretrain_audio",
    )
    separator, _ = pretrain_separator(
        store,
        mom_table,
        CheckpointStore(tmp_path / "pretrain"),
        pretrain,
        config.separator,
        SECONDS,
    )
    train = parse(
        TrainParams,
        {
            "batch_size": 8,
            "validation_target_db": None,
            # the pre-trained separator frozen: the association is learned within the budget
            # (jointly at one rate it was not, in 600 steps: docs/model.md, "Training recipe")
            "separator_learning_rate_scale": 0.0,
            "loop": {
                "steps": 1000,
                "learning_rate": 1e-3,
                "validate_every": 10**6,
                **no_checkpoints,
            },
            **train_overrides,
        },
        "train",
    )
    kept = clip_table[["clip_id", "split"]].assign(kept=True, coincidence_score=1.0)
    model, _ = fit_audioscope(
        store, mom_table, kept, separator, CheckpointStore(tmp_path / "train"), train, config
    )
    return model


def test_training_learns_on_screen_separation(learnable_world, tmp_path):
    store, _, mom_table = learnable_world
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same numbers on any machine with the same seed
    try:
        model = train_on_world(learnable_world, tmp_path)
        outputs = run_on_moms(model, MoMSet.from_table(store, mom_table, SECONDS, "validate"))
    finally:
        torch.set_num_threads(threads)
    mixture = baselines(outputs)
    point = calibrate(
        outputs.on_logits, outputs.on_stats, outputs.off_logits, outputs.off_stats, TARGET_DB
    )
    scores, labels = source_scores_and_labels(outputs)
    auc = auc_roc(scores, labels)
    gain = point.on_screen_si_snr - mixture[Metric.MIXTURE_SI_SNR]
    summary = f"calibrated on-screen SI-SNR gain {gain:.2f} dB, AUC {auc:.3f}, {mixture}"
    assert point.reached, summary
    assert gain >= MIN_SI_SNR_GAIN_DB, summary
    assert auc >= MIN_AUC, summary
