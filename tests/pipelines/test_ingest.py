"""The `ingest` pipeline: on in-memory lists (a catalog of ``MemoryDataset``s run by the
``SequentialRunner``), and after `demo_data` in a Kedro session on the ``test`` environment."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioscope_kedro.data.store import ClipStore
from audioscope_kedro.datasets.clip_store_dataset import ClipStoreDataset
from audioscope_kedro.pipelines.ingest import create_pipeline
from tests.helpers import (
    TEST_DATA,
    TINY_CLIP_SECONDS,
    conf_parameters,
    run,
    run_in_memory,
    tiny_lists,
    tiny_video_paths,
)

TABLE_NODES = ["build_clip_table", "build_mom_table"]


def ingest_inputs(**ingest) -> dict:
    """The pipeline's inputs: the tiny dataset's lists and the `test` environment's parameters
    (with ``ingest`` overriding keys of the ``ingest`` block)."""
    params = conf_parameters("test")
    return {
        "audioscope_lists": tiny_lists(),
        "params:ingest": {**params["ingest"], **ingest},
        "params:clip_seconds": params["clip_seconds"],
    }


def test_tables_from_in_memory_lists():
    out = run_in_memory(create_pipeline().filter(node_names=TABLE_NODES), ingest_inputs())
    assert set(out) == {"clip_table", "mom_table"}
    clips, moms = out["clip_table"], out["mom_table"]
    # every video named by a list, once, with the split and label of the lists naming it
    expected = {
        path: (split, label)
        for (split, label), paths in tiny_video_paths().items()
        for path in paths
    }
    assert len(clips) == len(expected) == 12 and clips["clip_id"].is_unique
    assert {r.video_path: (r.split, r.label) for r in clips.itertuples()} == expected
    assert (clips["start_time"] == 0.0).all() and (clips["end_time"] == TINY_CLIP_SECONDS).all()
    # one MoM per row of each MoM list, of clips of the table, of its split and kind
    assert moms["mom_id"].is_unique
    assert moms.groupby(["split", "kind"]).size().to_dict() == {
        ("test", "off_off"): 3,
        ("test", "on_off"): 2,
        ("validate", "off_off"): 3,
        ("validate", "on_off"): 2,
    }
    label = clips.set_index("clip_id")["label"]
    split = clips.set_index("clip_id")["split"]
    for m in moms.itertuples():
        first = "onscreen" if m.kind == "on_off" else "offscreen"
        assert (label[m.clip_id_1], label[m.clip_id_2]) == (first, "offscreen")
        assert split[m.clip_id_1] == split[m.clip_id_2] == m.split
        assert m.clip_id_1 != m.clip_id_2


def test_scan_source_needs_no_lists(tiny_data):
    """``ingest.source: scan`` cuts every video of ``video_root`` into clips of ``clip_seconds``:
    a folder of videos without any list gives a clip table and no MoMs."""
    inputs = {
        **ingest_inputs(source="scan", video_root=str(tiny_data.video_root)),
        "audioscope_lists": {},
    }
    out = run_in_memory(create_pipeline().filter(node_names=TABLE_NODES), inputs)
    clips = out["clip_table"]
    every_video = {p for paths in tiny_video_paths().values() for p in paths}
    assert set(clips["video_path"]) == every_video and len(clips) == len(every_video)
    assert set(clips["split"]) == {"train"} and set(clips["label"]) == {""}
    assert (clips["end_time"] - clips["start_time"] == 1.0).all()  # clip_seconds of conf/test
    assert out["mom_table"].empty
    # with `source: lists`, the same empty folder is an error that says where to look
    with pytest.raises(ValueError, match="no AudioScope list was found"):
        run_in_memory(
            create_pipeline().filter(node_names=TABLE_NODES),
            {**ingest_inputs(), "audioscope_lists": {}},
        )


def test_whole_pipeline_with_the_clip_store_dataset(tiny_data, tmp_path):
    """All of `ingest` without a session: memory for the lists and tables, the project's
    clip-store dataset for the store (decoded with conf/test's settings)."""
    inputs = {
        **ingest_inputs(video_root=str(tiny_data.video_root)),
        "clip_store": ClipStoreDataset(str(tmp_path / "store")),
    }
    out = run_in_memory(create_pipeline(), inputs)
    assert set(out) == {"mom_table", "ingest_summary"}
    summary = out["ingest_summary"]
    assert summary["clips_ingested"] == 12 and summary["clips_quarantined"] == 0
    assert summary["per_split_label"] == {
        "test/offscreen": 3,
        "test/onscreen": 2,
        "train/unlabelled": 2,
        "validate/offscreen": 3,
        "validate/onscreen": 2,
    }
    store = ClipStore(tmp_path / "store")
    decode = conf_parameters("test")["ingest"]["decode"]
    assert (
        store.settings.sample_rate == decode["sample_rate"] and store.settings.fps == decode["fps"]
    )
    assert store.audio(0).shape == (int(TINY_CLIP_SECONDS * decode["sample_rate"]),)
    assert set(out["mom_table"].clip_id_1) | set(out["mom_table"].clip_id_2) <= set(
        store.index.clip_id
    )


@pytest.mark.slow
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
