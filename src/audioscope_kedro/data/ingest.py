"""The ``ingest`` parameter block, and the small command that merges a store built by several
machines or converts an npy store to the streaming format.

    python -m audioscope_kedro.data.ingest merge ROOT
    python -m audioscope_kedro.data.ingest convert NPY_ROOT TARGET [--audio flac] [--frames jpeg]

Both hold the lock of the stores they write (``run_lock.store_lock_path``), the lock an
``ingest`` run holds too: while either is running, the other is refused with a message naming
it, and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd

from audioscope_kedro.data.decode import DecodeSettings
from audioscope_kedro.data.lists import Split
from audioscope_kedro.data.shard_format import AudioCodec, FrameCodec, StoreFormat, TarCodec
from audioscope_kedro.data.store import (
    IngestIncompleteError,
    IngestJob,
    convert_store,
    merge_clip_store,
)
from audioscope_kedro.run_lock import AlreadyRunningError, RunLock, store_lock_path

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v")


class ClipSource(StrEnum):
    LISTS = "lists"  # the AudioScope lists
    SCAN = "scan"  # every video under video_root, cut into clips


@dataclass(frozen=True)
class ScanParams:
    hop_seconds: float = 5.0
    min_clip_seconds: float = 1.0
    extensions: tuple[str, ...] = VIDEO_EXTENSIONS
    split: Split = Split.TRAIN


@dataclass(frozen=True)
class IngestParams:
    """``ingest`` in ``conf/base/parameters_ingest.yml``."""

    video_root: str
    source: ClipSource = ClipSource.LISTS
    scan: ScanParams = field(default_factory=ScanParams)
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    shard_size: int = 128
    num_workers: int = 2
    format: StoreFormat = StoreFormat.NPY
    webdataset: TarCodec = field(default_factory=TarCodec)
    # this machine's part of a store built by several (shards with shard_id % num_nodes ==
    # node_rank); set per machine with `kedro run --params ingest.node_rank=...`
    node_rank: int = 0
    num_nodes: int = 1

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be at least 1, not {self.shard_size}")
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be at least 1, not {self.num_workers}")
        if self.num_nodes < 1 or not 0 <= self.node_rank < self.num_nodes:
            raise ValueError(
                f"node_rank must be in 0..num_nodes-1 (node_rank={self.node_rank}, "
                f"num_nodes={self.num_nodes})"
            )

    @property
    def codec(self) -> TarCodec | None:
        return self.webdataset if self.format == StoreFormat.WEBDATASET else None

    def job(self, clips: pd.DataFrame) -> IngestJob:
        return IngestJob(
            clips,
            self.video_root,
            self.decode,
            self.shard_size,
            self.codec,
            self.num_workers,
            self.node_rank,
            self.num_nodes,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audioscope_kedro.data.ingest")
    commands = parser.add_subparsers(dest="command", required=True)
    merge = commands.add_parser(
        "merge", help="merge the shards that ingest nodes built into the store's index"
    )
    merge.add_argument("root", help="the clip store folder")
    convert = commands.add_parser(
        "convert", help="write an npy clip store as a WebDataset (tar) store"
    )
    convert.add_argument("source", help="the npy clip store folder")
    convert.add_argument("target", help="the new store's folder")
    convert.add_argument("--audio", choices=[c.value for c in AudioCodec], default="flac")
    convert.add_argument("--frames", choices=[c.value for c in FrameCodec], default="jpeg")
    convert.add_argument("--jpeg-quality", type=int, default=90)
    args = parser.parse_args(argv)
    what = f"{parser.prog} {' '.join(argv if argv is not None else sys.argv[1:])}"
    # convert locks its source exclusively too: the source must not change while it is read,
    # and the node runs of a multi-node ingest hold a store's lock shared
    stores = [args.root] if args.command == "merge" else [args.source, args.target]
    try:
        with ExitStack() as held:
            for store in stores:
                held.enter_context(RunLock(store_lock_path(store), what))
            if args.command == "merge":
                summary = merge_clip_store(args.root)
            else:
                codec = TarCodec(AudioCodec(args.audio), FrameCodec(args.frames), args.jpeg_quality)
                summary = convert_store(args.source, args.target, codec)
    except (AlreadyRunningError, IngestIncompleteError) as error:
        # a message for the user, not a traceback: both say what to do
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
