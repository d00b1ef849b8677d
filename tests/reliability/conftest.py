"""Fixtures of the reliability tests: the media corpus (tests/reliability/media_corpus.py),
generated once per session, and what ingest and ``audioscope separate`` made of it, each run
once over the whole corpus as one batch (so that every case is also checked not to stop the
others)."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from audioscope_kedro.command import main
from audioscope_kedro.data.store import ClipStore, ShardBatch, build_clip_store, plan_shards
from audioscope_kedro.evaluation.calibration import Calibration, OperatingPoint, PointKind
from audioscope_kedro.media import MediaFormat
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.models.persistence import weights_fingerprint
from audioscope_kedro.release import ReleasedModel
from tests.helpers import TINY_DECODE, tiny_config
from tests.reliability.media_corpus import CASES, Corpus, SeparateOutcome, generate, in_batch


@pytest.fixture(scope="session")
def media_corpus(tmp_path_factory) -> Corpus:
    """Every case of the corpus written under one root (the video_root of ingest). Read-only."""
    return generate(tmp_path_factory.mktemp("media_corpus"))


@pytest.fixture(scope="session")
def media_store(media_corpus, tmp_path_factory) -> ClipStore:
    """The clip store of one ingest over the whole corpus, the one-hour file included (the
    ``test`` environment's decode settings: 8 kHz, 4 fps, 16x16; shards of 8 clips)."""
    cases = [c for c in CASES if in_batch(c) or "long" in c.tags]
    table = media_corpus.clip_table(cases)
    root = tmp_path_factory.mktemp("media_store") / "store"
    plans = plan_shards(table, str(media_corpus.root), TINY_DECODE, 8)
    build_clip_store(ShardBatch(plans, 1, TINY_DECODE), root)
    return ClipStore(root)


# The model of the separate runs: the tests' tiny network (tests/helpers.py: tiny_config) on
# 1 s windows of 8 kHz audio and two 16x16 frames (2 fps): the cheapest that is still the real
# AudioScope, as some thirty inputs go through it.
RELEASE_MEDIA = MediaFormat(sample_rate=8000, fps=2.0, frame_height=16, frame_width=16)


@pytest.fixture(scope="session")
def media_release(tmp_path_factory) -> Path:
    """A released model folder (weights, config.json, calibration.json for these weights) of
    an untrained, seeded tiny model: every check here (output invariants, refusals, messages)
    holds for any weights, and training would only cost time. Read-only."""
    torch.manual_seed(0)
    model = AudioScope(tiny_config(clip_seconds=1.0, media=RELEASE_MEDIA)).eval()
    calibration = Calibration(
        point=OperatingPoint(PointKind.AFFINE, temperature=0.5, bias=-0.5),
        target_suppression_db=15.0,
        reached=True,
        split="validate",
        model_fingerprint=weights_fingerprint(model),
    )
    folder = tmp_path_factory.mktemp("media_model") / "model"
    ReleasedModel.assemble(model, calibration).save(folder)
    return folder


@dataclass(frozen=True)
class CommandRun:
    """One ``audioscope separate`` over many inputs: exit code, output, the out folder."""

    code: int
    stdout: str
    stderr: str
    out: Path
    inputs: list[Path]


@pytest.fixture(scope="session")
def media_separated(media_corpus, media_release, tmp_path_factory) -> CommandRun:
    """``audioscope separate`` on every file of the corpus at once (those separate reads)."""
    cases = [c for c in CASES if c.separate is not SeparateOutcome.NOT_APPLICABLE and in_batch(c)]
    inputs = [media_corpus.path(c) for c in cases]
    out = tmp_path_factory.mktemp("media_separated") / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny windows: a second thread only waits on a busy machine
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            args = ["separate", *map(str, inputs), "--model", str(media_release), "--out", str(out)]
            code = main([*args, "--device", "cpu"])
    finally:
        torch.set_num_threads(threads)
    return CommandRun(code, stdout.getvalue(), stderr.getvalue(), out, inputs)


@pytest.fixture
def world_readable() -> Path:
    """An empty folder that every user may enter and write in (pytest's own temporary folders
    are root's alone), for a run as another user; removed after the test."""
    folder = Path(tempfile.mkdtemp(prefix="audioscope-reliability-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
