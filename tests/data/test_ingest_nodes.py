"""Ingest across machines and by appending: disjoint shards per node merged into the store one
machine would build, and added clips that only add shards."""

from __future__ import annotations

import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner

from audioscope_kedro.data.decode import DecodeSettings, decode_clip
from audioscope_kedro.data.ingest import IngestParams
from audioscope_kedro.data.shard_format import StoreFormat, TarCodec
from audioscope_kedro.data.store import (
    LAYOUT_FILE,
    SHARD_DIR,
    ClipStore,
    IngestIncompleteError,
    IngestJob,
    build_clip_store,
    clip_id,
    merge_clip_store,
)
from audioscope_kedro.datasets.clip_store_dataset import ClipStoreDataset
from audioscope_kedro.parameters import ParameterError, parse
from audioscope_kedro.pipelines.ingest import create_pipeline
from audioscope_kedro.run_lock import RunLock
from tests.helpers import conf_parameters, run_in_memory

SETTINGS = DecodeSettings(sample_rate=8000, fps=4.0, frame_height=8, frame_width=8)
CODECS = {"npy": None, "webdataset": TarCodec()}


def clip_table(paths: list[str]) -> pd.DataFrame:
    rows = [(clip_id(p, 0.0, 1.5), p, 0.0, 1.5, "train", "") for p in paths]
    return pd.DataFrame(
        rows, columns=["clip_id", "video_path", "start_time", "end_time", "split", "label"]
    )


def job(video_root, paths, fmt="webdataset", node_rank=0, num_nodes=1) -> IngestJob:
    return IngestJob(
        clip_table(paths), str(video_root), SETTINGS, 2, CODECS[fmt], 1, node_rank, num_nodes
    )


def shard_files(root: Path) -> dict[str, tuple[str, int]]:
    """Every file of every shard: content hash and modification time."""
    return {
        str(p.relative_to(root)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted((root / SHARD_DIR).rglob("*"))
        if p.is_file()
    }


def assert_same_store(a: Path, b: Path) -> None:
    sa, sb = ClipStore(a), ClipStore(b)
    pd.testing.assert_frame_equal(sa.index, sb.index)
    pd.testing.assert_frame_equal(sa.quarantine, sb.quarantine)
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / LAYOUT_FILE), pd.read_parquet(b / LAYOUT_FILE)
    )
    hashes = {k: h for k, (h, _) in shard_files(a).items()}
    assert hashes == {k: h for k, (h, _) in shard_files(b).items()}  # byte for byte


PATHS = ["v0.mp4", "empty.mp4", "v1.mp4", "v2.mp4", "missing.mp4", "v3.mp4", "v4.mp4"]


@pytest.mark.parametrize("fmt", ["webdataset", "npy"])
def test_two_machines_then_merge_equal_one(video_root, tmp_path, fmt):
    """Two processes build disjoint halves of the plan at the same time; merged, the store is
    the one a single process builds, index, quarantine and shard bytes."""
    one = tmp_path / "one"
    build_clip_store(job(video_root, PATHS, fmt), one)
    two = tmp_path / "two"
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx) as pool:
        futures = [
            pool.submit(build_clip_store, job(video_root, PATHS, fmt, r, 2), two) for r in (0, 1)
        ]
        summaries = [f.result() for f in futures]
    # 7 clips in shards of 2: node 0 builds shards 0 and 2, node 1 shards 1 and 3
    assert [s["shards_built"] for s in summaries] == [2, 2]
    assert sum(s["clips_ingested"] for s in summaries) == 5
    assert sum(s["clips_quarantined"] for s in summaries) == 2
    assert sum(s["merged"] for s in summaries) == 1  # the last node to finish merged
    assert merge_clip_store(two)["clips_ingested"] == 5  # merging again changes nothing
    assert_same_store(one, two)
    assert ClipStore(two).format == StoreFormat(fmt)


def test_a_store_missing_a_node_is_not_merged(video_root, tmp_path):
    root = tmp_path / "store"
    summary = build_clip_store(job(video_root, PATHS, num_nodes=3), root)
    assert summary["merged"] is False and summary["shards_built"] == 2  # shards 0 and 3
    with pytest.raises(IngestIncompleteError, match=r"2 of 4 shards .* not built.*shard-00001"):
        merge_clip_store(root)
    with pytest.raises(DatasetError, match="not merged yet"):
        ClipStoreDataset(str(root)).load()
    # a node of another plan (other clips) is not merged with this one
    other = build_clip_store(job(video_root, PATHS[:5], node_rank=1, num_nodes=3), root)
    assert other["merged"] is False
    with pytest.raises(IngestIncompleteError, match="wrote different plans"):
        merge_clip_store(root)
    (root / "plans" / "plan-0001-of-0003.json").unlink()
    build_clip_store(job(video_root, PATHS, node_rank=2, num_nodes=3), root)
    # another node holds the merge lock (it finished at the same moment): this one leaves it
    other_node = RunLock(root / "nodes" / "merging.lock", what="another node's merge").acquire()
    held = build_clip_store(job(video_root, PATHS, node_rank=1, num_nodes=3), root)
    assert held["merged"] is False
    other_node.release()
    # the lock file a killed merging node left behind is no lock: the next node merges
    assert (root / "nodes" / "merging.lock").exists()
    last = build_clip_store(job(video_root, PATHS, node_rank=1, num_nodes=3), root)
    assert last["merged"] is True and last["shards_built"] == 0
    assert len(ClipStoreDataset(str(root)).load()) == 5


@pytest.mark.parametrize("fmt", ["webdataset", "npy"])
def test_appending_clips_adds_shards_and_rewrites_none(video_root, tmp_path, fmt):
    root = tmp_path / "store"
    first = build_clip_store(job(video_root, ["v0.mp4", "v2.mp4", "v4.mp4"], fmt), root)
    assert first["shards_built"] == 2
    before = shard_files(root)
    # two new clips that sort between the old ones in the table
    every = ["v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4", "v4.mp4"]
    again = build_clip_store(job(video_root, every, fmt), root)
    assert again == {
        "shards_built": 1,
        "shards_skipped": 2,
        "clips_ingested": 5,
        "clips_quarantined": 0,
    }
    after = shard_files(root)
    assert {k: after[k] for k in before} == before  # same bytes, never rewritten
    assert set(after) - set(before) == {
        f"{SHARD_DIR}/shard-00002/{name}" for name in {k.rsplit("/", 1)[1] for k in before}
    }
    store = ClipStore(root)
    assert sorted(store.index["video_path"]) == every
    assert store.index.set_index("video_path")["shard"].to_dict() == {
        "v0.mp4": 0,
        "v2.mp4": 0,
        "v4.mp4": 1,
        "v1.mp4": 2,
        "v3.mp4": 2,
    }
    expected = decode_clip(video_root / "v3.mp4", 0.0, 1.5, SETTINGS).audio
    tolerance = 0 if fmt == "npy" else 1 / 32768  # 16-bit samples in the tar
    np.testing.assert_allclose(store.audio(clip_id("v3.mp4", 0.0, 1.5)), expected, atol=tolerance)


def test_ingest_parameters_are_checked():
    base = {"video_root": "videos"}
    assert parse(IngestParams, {**base, "format": "webdataset"}, "ingest").codec == TarCodec()
    with pytest.raises(ParameterError, match="ingest.num_node"):
        parse(IngestParams, {**base, "num_node": 2}, "ingest")
    with pytest.raises(ParameterError, match="node_rank must be in 0..num_nodes-1"):
        parse(IngestParams, {**base, "node_rank": 2, "num_nodes": 2}, "ingest")
    with pytest.raises(ParameterError, match="'tar' is not one of"):
        parse(IngestParams, {**base, "format": "tar"}, "ingest")


def test_pipeline_nodes_share_one_store(tiny_data, tmp_path):
    """`decode_clips` run as node 0 and node 1 of 2 (as `kedro run --nodes decode_clips --params
    ingest.node_rank=...,ingest.num_nodes=2` on two machines), then `summarise_ingest`."""
    params = conf_parameters("test")
    store = ClipStoreDataset(str(tmp_path / "store"))
    for rank in (0, 1):
        ingest = {
            **params["ingest"],
            "video_root": str(tiny_data.video_root),
            "format": "webdataset",
            "node_rank": rank,
            "num_nodes": 2,
        }
        catalog = DataCatalog(
            {
                "clip_table": MemoryDataset(tiny_data.clip_table),
                "params:ingest": MemoryDataset(ingest),
                "clip_store": store,
            }
        )
        SequentialRunner().run(create_pipeline().filter(node_names=["decode_clips"]), catalog)
        if rank == 0:  # node 1 has not run: the store is not there to read yet
            with pytest.raises(DatasetError, match="not merged yet"):
                store.load()
    summary = run_in_memory(
        create_pipeline().filter(node_names=["summarise_ingest"]), {"clip_store": store}
    )["ingest_summary"]
    assert summary["format"] == "webdataset" and summary["clips_ingested"] == 12
