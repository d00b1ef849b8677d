"""Ingestion speed against raw decoding of the same files through PyAV alone.

    .venv/bin/python benchmarks/ingest.py [--demo-clips 60] [--workers 2]

Prints clips per second for (a) raw decode: every audio and video frame of each file decoded
by PyAV and thrown away, one process; (b) `ingest` (decode, resample, pick and resize frames,
write shards and index) with one worker and with `--workers`. The ratio (b)/(a) is the
figure of merit; goal: at least 0.5 with one worker.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from audioscope_kedro.data.clip_table import assemble_clip_table
from audioscope_kedro.data.decode import DecodeSettings, decode_all
from audioscope_kedro.data.lists import ListKey, Split, read_clip_list
from audioscope_kedro.data.store import ShardBatch, build_clip_store, plan_shards
from audioscope_kedro.data.video_io import write_mp4
from audioscope_kedro.demo.dataset import plan_scenes, release_lists, video_partitions

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_videos"
SETTINGS = DecodeSettings(sample_rate=16000, fps=8.0, frame_height=64, frame_width=64)


def raw_decode_rate(root: Path, table: pd.DataFrame) -> float:
    start = time.perf_counter()
    for path in table["video_path"]:
        decode_all(root / path)
    return len(table) / (time.perf_counter() - start)


def ingest_rate(root: Path, table: pd.DataFrame, workers: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        batch = ShardBatch(plan_shards(table, str(root), SETTINGS, 16), workers, SETTINGS)
        start = time.perf_counter()
        build_clip_store(batch, out)
        return len(table) / (time.perf_counter() - start)


def make_demo(folder: Path, n_clips: int) -> pd.DataFrame:
    params = {
        "seed": 0,
        "sample_rate": 16000,
        "duration": 5.0,
        "fps": 15.0,
        "width": 96,
        "height": 96,
        "max_on_screen": 2,
        "max_off_screen": 2,
        "counts": {"train": n_clips},
        "moms_per_list": 0,
    }
    plan = plan_scenes(params)
    for partition, render in video_partitions(plan, params).items():
        clip = render()
        write_mp4(folder / f"{partition}.mp4", clip.frames, clip.fps, clip.audio, clip.sample_rate)
    return assemble_clip_table(release_lists(plan, params))


def report(name: str, root: Path, table: pd.DataFrame, workers: int) -> None:
    decode_all(root / table["video_path"].iat[0])  # warm the codecs and the page cache
    raw = raw_decode_rate(root, table)
    one = ingest_rate(root, table, 1)
    many = ingest_rate(root, table, workers)
    print(
        f"{name:<14} {len(table):>5} clips | raw decode {raw:7.1f} clips/s | ingest 1 worker "
        f"{one:7.1f} clips/s ({one / raw:4.2f}x raw) | ingest {workers} workers {many:7.1f} clips/s "
        f"({many / raw:4.2f}x raw)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-clips", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(
        f"decode settings: {SETTINGS.sample_rate} Hz, {SETTINGS.fps} fps, {SETTINGS.frame_height}x{SETTINGS.frame_width}"
    )
    if (SHARED / "labels.csv").exists():
        labels = read_clip_list(SHARED / "labels.csv")
        labels = labels[labels["label"] != "no_audio"]
        report(
            "real videos", SHARED, assemble_clip_table({ListKey(Split.TEST): labels}), args.workers
        )
    else:
        print("real videos: ../shared/data/real_videos not found, skipped")
    with tempfile.TemporaryDirectory() as demo:
        table = make_demo(Path(demo), args.demo_clips)
        report("demo set", Path(demo), table, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
