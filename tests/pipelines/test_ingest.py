"""Pipeline slice: ``demo_data`` then ``ingest`` on the ``test`` environment, through Kedro."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from audioscope_kedro.data.lists import find_lists, read_clip_list, read_mom_list
from audioscope_kedro.data.store import ClipStore
from tests.helpers import TEST_DATA

pytestmark = pytest.mark.slow


def run(project: Path, pipeline: str, **runtime_params) -> None:
    bootstrap_project(project)
    with KedroSession.create(
        project_path=project, env="test", runtime_params=runtime_params or None
    ) as session:
        session.run(pipeline_names=[pipeline])


@pytest.fixture
def demo_project(kedro_project):
    run(kedro_project, "demo_data", demo_root=str(TEST_DATA / "01_raw/demo"))
    return kedro_project


def test_demo_data_writes_release_layout(demo_project):
    root = demo_project / TEST_DATA / "01_raw/demo"
    lists = {str(k): v for k, v in find_lists(root, "filtered").items()}
    assert set(lists) == {
        "train",
        "train_onscreen",
        "train_offscreen",
        "validate",
        "validate_onscreen",
        "validate_offscreen",
        "validate_on_off_mom",
        "validate_off_off_mom",
        "test",
        "test_onscreen",
        "test_offscreen",
        "test_on_off_mom",
        "test_off_off_mom",
    }
    # No header, positional columns, as in the public release.
    first = lists["train"].read_text().splitlines()[0].split(",")
    assert first[0].startswith("videos/train/") and float(first[2]) == 1.0
    assert len(read_clip_list(lists["test_offscreen"])) == 3
    moms = read_mom_list(lists["test_off_off_mom"])
    assert len(moms) == 3 and (moms.video_path_1 != moms.video_path_2).all()
    assert all(p.startswith("videos/test/offscreen") for p in moms.video_path_1)
    manifest = pd.read_csv(root / "stems.csv")
    on_only = manifest[manifest.video_path.str.contains("onscreen")]
    assert not (on_only.role == "off_screen").any()
    off_only = manifest[manifest.video_path.str.contains("offscreen")]
    assert not (off_only.role == "on_screen").any()


def test_ingest_after_demo(demo_project):
    run(
        demo_project,
        "ingest",
        demo_root=str(TEST_DATA / "01_raw/demo"),
        lists_dir=str(TEST_DATA / "01_raw/demo"),
        video_root=str(TEST_DATA / "01_raw/demo"),
    )
    store = ClipStore(demo_project / TEST_DATA / "03_primary/clip_store")
    assert len(store) == 21 and len(store.quarantine) == 0
    assert store.settings.sample_rate == 8000
    counts = store.index.groupby(["split", "label"]).size().to_dict()
    assert (
        counts[("train", "")] == 6
        and counts[("test", "offscreen")] == 3
        and counts[("validate", "onscreen")] == 2
    )
    for i in range(len(store)):
        assert store.audio(i).shape == (8000,) and store.audio(i).dtype == np.float32
        assert store.frames(i).shape == (4, 16, 16, 3)
    # The ground-truth stems sum to the clip's soundtrack (up to AAC coding and resampling).
    manifest = pd.read_csv(demo_project / TEST_DATA / "01_raw/demo/stems.csv")
    for row in store.index.itertuples():
        paths = manifest.loc[manifest.video_path == row.video_path, "stem_path"]
        stems = [
            sf.read(demo_project / TEST_DATA / "01_raw/demo" / p, dtype="float32")[0] for p in paths
        ]
        reference = _to_8k(np.sum(stems, axis=0))
        got = store.audio(row.clip_id)
        snr = 10 * np.log10(np.sum(reference**2) / np.sum((reference - got) ** 2))
        assert snr > 15, (row.video_path, snr)
    moms = pd.read_parquet(demo_project / TEST_DATA / "02_intermediate/mom_table.parquet")
    assert len(moms) == 12 and set(moms.kind) == {"on_off", "off_off"}
    assert set(moms.clip_id_1) | set(moms.clip_id_2) <= set(store.index.clip_id)

    # A second run finds every shard current and rebuilds nothing.
    shard_dir = demo_project / TEST_DATA / "03_primary/clip_store/shards"
    before = {p.name: p.stat().st_mtime_ns for p in shard_dir.iterdir()}
    run(demo_project, "ingest")
    assert {p.name: p.stat().st_mtime_ns for p in shard_dir.iterdir()} == before


def _to_8k(x16: np.ndarray) -> np.ndarray:
    """Band-limited 16 kHz -> 8 kHz by the FFT (the store used FFmpeg's resampler)."""
    spec = np.fft.rfft(x16)[: x16.size // 4 + 1]
    return (np.fft.irfft(spec, x16.size // 2) / 2).astype(np.float32)
