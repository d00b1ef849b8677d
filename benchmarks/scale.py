"""Data at scale: the data pipeline's memory and throughput against the store's size, the bytes a
clip takes in each format, and the streaming readers people run, on this machine.

    .venv/bin/python benchmarks/scale.py sizes [--sizes 1000 20000 200000] [--examples 20000]
    .venv/bin/python benchmarks/scale.py real            # bytes per V2 clip, from ../shared videos
    .venv/bin/python benchmarks/scale.py training DATA [--steps 60] [--repeats 2]
    /tmp/fmtvenv/bin/python benchmarks/scale.py formats [--clips 20000]   # + LitData, MosaicML

``sizes``: for each size a store of small generated clips (TINY below: 0.5 s at 8 kHz, two
16x16 frames, so that 200 thousand clips fit the disk) is written straight in the store format
(no video decoding) in both formats; then, each in a fresh process, the training data path
reads ``--examples`` mixtures of mixtures (2 clips each) with 0 and 2 DataLoader workers:
the npy store by random access (``random_mom_batch``, the path training uses today) and the
WebDataset store by the streaming reader (``MoMStream``). Printed: MoMs/s and the peak RSS
(sampled while reading) of the main process and of the largest worker. Goal: streaming memory flat with store size (within
10% from 1k to 200k clips).

``formats``: the same clips written by each format tried (npy, our WebDataset tars, LitData,
MosaicML Streaming; the last two only where importable: see docs/scale.md for the scratch
environment) and read back as single decoded clips in a shuffled order: clips/s with 0 and 2
workers, peak RSS, bytes per clip, and the time to write.

``real``: bytes per 5 s clip at the default V2 format (16 kHz, 8 fps, 64x64) of each coding,
from the real videos of ``../shared/data/real_videos`` (skipped when absent), and the total for
AudioScopeV2's 4.8 million clips.

``training DATA``: ``train`` steps/s with the demo configuration in three layouts, 1 process
on 1 thread (the baseline), 2 DDP processes on 1 thread each, 1 process on 2 threads, each in a
fresh process, ``--repeats`` times; DATA holds the demo's ``clip_store/``,
``mom_table.parquet``, ``coincidence_scores.parquet`` and ``pretrained_separator/`` (e.g.
links into ``data/demo/``). The loader's share of a step is not measured yet.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

from audioscope_kedro.data.decode import DecodeSettings
from audioscope_kedro.data.shard_format import (
    AudioCodec,
    FrameCodec,
    TarCodec,
    decode_audio,
    decode_frames,
    encode_clip,
    to_pcm16,
    write_tar,
)
from audioscope_kedro.data.store import clip_id, write_clip_store

ROOT = Path(__file__).resolve().parents[1]

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_videos"
TINY = DecodeSettings(sample_rate=8000, fps=4.0, frame_height=16, frame_width=16)
TINY_SECONDS = 0.5
V2 = DecodeSettings(sample_rate=16000, fps=8.0, frame_height=64, frame_width=64)
V2_CLIPS = 4_800_000
SHARD_SIZE = 128  # the ingest default
BATCH = 16
CODINGS = {
    "int16+raw": TarCodec(AudioCodec.INT16, FrameCodec.RAW),
    "flac+jpeg": TarCodec(AudioCodec.FLAC, FrameCodec.JPEG),
    "flac+raw": TarCodec(AudioCodec.FLAC, FrameCodec.RAW),
    "int16+jpeg": TarCodec(AudioCodec.INT16, FrameCodec.JPEG),
}


# ------------------------------------------------------------------------ generated tiny clips


def tiny_media(i: int) -> tuple[np.ndarray, np.ndarray]:
    """A clip that looks like one to the codecs: a decaying tone in a little noise, and a
    coloured square on a plain background (seeded by ``i``)."""
    rng = np.random.default_rng(i)
    n = TINY.num_samples(TINY_SECONDS)
    t = np.arange(n) / TINY.sample_rate
    tone = np.sin(2 * np.pi * rng.uniform(100, 1500) * t) * np.exp(-t * rng.uniform(0.5, 4))
    audio = (0.3 * tone + 0.01 * rng.standard_normal(n)).astype(np.float32)
    frames = np.empty((TINY.num_frames(TINY_SECONDS), 16, 16, 3), np.uint8)
    frames[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    for k in range(len(frames)):
        y, x = rng.integers(0, 10, 2)
        frames[k, y : y + 6, x : x + 6] = rng.integers(0, 256, 3, dtype=np.uint8)
    return audio, frames


def tiny_table(n: int) -> pd.DataFrame:
    paths = [f"gen/{i:07d}.mp4" for i in range(n)]
    return pd.DataFrame(
        {
            "clip_id": [clip_id(p, 0.0, TINY_SECONDS) for p in paths],
            "video_path": paths,
            "start_time": 0.0,
            "end_time": TINY_SECONDS,
            "split": "train",
            "label": "",
        }
    )


def write_tiny_store(root: Path, n: int, codec: TarCodec | None) -> float:
    """Seconds to write a store of ``n`` generated clips (``codec`` None: npy)."""
    table = tiny_table(n)
    number = dict(zip(table["clip_id"], range(n), strict=True))
    start = time.perf_counter()
    write_clip_store(root, table, lambda cid: tiny_media(number[cid]), TINY, SHARD_SIZE, codec)
    return time.perf_counter() - start


def folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())


def shard_bytes(root: Path) -> int:
    """Bytes of the clips' data (shards; for LitData/MosaicML their chunk files)."""
    shards = Path(root) / "shards"
    return folder_bytes(shards if shards.exists() else root)


# ----------------------------------------------------------------------------- the readers


class _RandomAccessMoMs:
    """The npy store as training reads it today: batch ``s`` = ``random_mom_batch(seed, s)``
    (map-style, so DataLoader workers can make the batches)."""

    def __init__(self, root: str, steps: int):
        from audioscope_kedro.data.batches import ClipSet
        from audioscope_kedro.data.store import ClipStore

        self.clips = ClipSet.select(ClipStore(root), TINY_SECONDS, splits=("train",))
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int):
        from audioscope_kedro.data.batches import random_mom_batch

        return random_mom_batch(self.clips, BATCH, 0, step)


def make_loader(root: str, reader: str, workers: int, examples: int):
    """The DataLoader of one reader; yields batches of ``BATCH`` MoMs (the training loop's
    input). Also the loader a training benchmark times (:func:`training_steps`)."""
    from torch.utils.data import DataLoader

    if reader == "npy-random":
        steps = -(-examples // BATCH)
        return DataLoader(_RandomAccessMoMs(root, steps), batch_size=None, num_workers=workers)
    from audioscope_kedro.data.streaming import MoMStream, collate_moms

    stream = MoMStream(root, seconds=TINY_SECONDS, seed=0, splits=["train"], shuffle_buffer=128)
    return DataLoader(stream, batch_size=BATCH, num_workers=workers, collate_fn=collate_moms)


class RssSampler(threading.Thread):
    """Peak resident memory (MB) of this process and of its largest child (a DataLoader
    worker), sampled every 20 ms from when it starts: the reader's memory, not the transient
    peak of importing torch (which ``ru_maxrss`` would report)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.process = psutil.Process()
        self.start_mb = self.process.memory_info().rss / 2**20
        self.main_mb = self.worker_mb = 0.0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.main_mb = max(self.main_mb, self.process.memory_info().rss / 2**20)
            for child in self.process.children():
                with contextlib.suppress(psutil.Error):  # a worker that just ended
                    self.worker_mb = max(self.worker_mb, child.memory_info().rss / 2**20)

    def stop(self) -> dict:
        self._done.set()
        self.join()
        return {
            "rss_main_mb": self.main_mb,
            "rss_worker_mb": self.worker_mb,
            "rss_after_imports_mb": self.start_mb,
        }


def measure_moms(root: str, reader: str, workers: int, examples: int) -> dict:
    """MoMs/s after the first batch (worker start-up excluded) and peak RSS."""
    sampler = RssSampler()
    sampler.start()
    loader = make_loader(root, reader, workers, examples)
    iterator = iter(loader)
    next(iterator)
    count, start = 0, time.perf_counter()
    for batch in iterator:
        count += len(batch.batch.mix1 if hasattr(batch, "clip_ids_1") else batch.mix1)
        if count >= examples:
            break
    seconds = time.perf_counter() - start
    memory = sampler.stop()
    return {"per_s": count / seconds, "count": count, **memory}


def measure_clips(root: str, fmt: str, workers: int, examples: int) -> dict:
    """Single decoded clips (float32 audio, uint8 frames) in a shuffled order: clips/s, RSS."""
    sampler = RssSampler()
    sampler.start()
    import torch
    from torch.utils.data import DataLoader

    def to_float(pcm):
        return pcm.astype(np.float32) / 32768

    if fmt == "npy":
        from audioscope_kedro.data.store import ClipStore

        class Clips(torch.utils.data.Dataset):
            def __init__(self):
                self.store = ClipStore(root)

            def __len__(self):
                return len(self.store)

            def __getitem__(self, i):
                return self.store.audio(i), self.store.frames(i)

        generator = torch.Generator().manual_seed(0)
        loader = DataLoader(
            Clips(), batch_size=BATCH, shuffle=True, num_workers=workers, generator=generator
        )
    elif fmt.startswith("webdataset"):
        from audioscope_kedro.data.streaming import ClipStream

        class Stream(ClipStream):
            def __iter__(self):
                for e in super().__iter__():
                    yield e["audio"], e["frames"]

        loader = DataLoader(
            Stream(root, seed=0, shuffle_buffer=128), batch_size=BATCH, num_workers=workers
        )
    elif fmt == "litdata":
        import litdata

        class Lit(litdata.StreamingDataset):
            def __getitem__(self, index):
                item = super().__getitem__(index)
                return to_float(np.asarray(item["audio"])), np.asarray(item["frames"])

        loader = litdata.StreamingDataLoader(
            Lit(root, shuffle=True, seed=0), batch_size=BATCH, num_workers=workers
        )
    elif fmt == "mosaicml":
        from streaming import StreamingDataset
        from streaming.base.util import clean_stale_shared_memory

        clean_stale_shared_memory()

        class Mosaic(StreamingDataset):
            def __getitem__(self, index):
                item = super().__getitem__(index)
                return to_float(item["audio"]), item["frames"]

        dataset = Mosaic(local=root, shuffle=True, shuffle_seed=0, batch_size=BATCH)
        loader = DataLoader(dataset, batch_size=BATCH, num_workers=workers)
    else:
        raise ValueError(fmt)
    iterator = iter(loader)
    next(iterator)
    count, start = 0, time.perf_counter()
    for audio, _frames in iterator:
        count += len(audio)
        if count >= examples:
            break
    seconds = time.perf_counter() - start
    memory = sampler.stop()
    return {"per_s": count / seconds, "count": count, **memory}


def in_fresh_process(*args: str) -> dict:
    """Run ``_measure`` in a new interpreter (peak RSS is per process)."""
    out = subprocess.run(
        [sys.executable, __file__, "_measure", *args], capture_output=True, text=True, check=False
    )
    if out.returncode:
        raise RuntimeError(f"measurement {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------- the reports


def measured_row(m: dict, workers: int, root: Path, n: int, write_s: float) -> dict:
    """The columns every read measurement reports: peak RSS of the main process and of the
    largest worker, the RSS after imports (the baseline), bytes per clip, write speed."""
    return {
        "rss_main_mb": round(m["rss_main_mb"]),
        "rss_worker_mb": round(m["rss_worker_mb"]) if workers else 0,
        "rss_after_imports_mb": round(m["rss_after_imports_mb"]),
        "bytes_per_clip": round(shard_bytes(root) / n),
        "write_clips_per_s": round(n / write_s),
    }


def run_sizes(sizes: list[int], examples: int, folder: Path) -> list[dict]:
    rows = []
    for n in sizes:
        # int16+raw: the cheapest coding to write; what memory does with the store's size
        # does not depend on the coding (see `formats` and `real` for the others)
        for fmt, codec in (("npy", None), ("webdataset", CODINGS["int16+raw"])):
            root = folder / f"{fmt}-{n}"
            write_s = write_tiny_store(root, n, codec)
            reader = "npy-random" if fmt == "npy" else "stream"
            for workers in (0, 2):
                m = in_fresh_process("moms", str(root), reader, str(workers), str(min(examples, n)))
                row = {
                    "clips": n,
                    "format": fmt,
                    "reader": reader,
                    "workers": workers,
                    "moms_per_s": round(m["per_s"]),
                    **measured_row(m, workers, root, n, write_s),
                    "index_mb": round(folder_bytes(root) / 2**20 - shard_bytes(root) / 2**20, 1),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
            shutil.rmtree(root)  # 200k npy clips are 3.5 GB: one store on disk at a time
    return rows


def write_litdata(root: Path, n: int) -> float:
    from litdata.streaming.writer import BinaryWriter

    start = time.perf_counter()
    writer = BinaryWriter(str(root), chunk_bytes="64MB")
    for i in range(n):
        audio, frames = tiny_media(i)
        writer.add_item(i, {"audio": to_pcm16(audio), "frames": frames})
    writer.done()
    writer.merge()
    return time.perf_counter() - start


def write_mosaicml(root: Path, n: int) -> float:
    from streaming import MDSWriter

    start = time.perf_counter()
    columns = {"audio": "ndarray:int16", "frames": "ndarray:uint8"}
    with MDSWriter(out=str(root), columns=columns, size_limit="64mb") as writer:
        for i in range(n):
            audio, frames = tiny_media(i)
            writer.write({"audio": to_pcm16(audio), "frames": frames})
    return time.perf_counter() - start


def run_formats(n: int, folder: Path) -> list[dict]:
    writers = {
        "npy": lambda root: write_tiny_store(root, n, None),
        "webdataset int16+raw": lambda root: write_tiny_store(root, n, CODINGS["int16+raw"]),
        "webdataset flac+jpeg": lambda root: write_tiny_store(root, n, CODINGS["flac+jpeg"]),
        "litdata": lambda root: write_litdata(root, n),
        "mosaicml": lambda root: write_mosaicml(root, n),
    }
    rows = []
    for fmt, write in writers.items():
        root = folder / fmt.replace(" ", "-").replace("+", "_")
        try:
            write_s = write(root)
        except ImportError as err:
            print(json.dumps({"format": fmt, "skipped": f"not importable here: {err}"}), flush=True)
            continue
        for workers in (0, 2):
            m = in_fresh_process("clips", str(root), fmt, str(workers), str(n))
            row = {
                "format": fmt,
                "workers": workers,
                "clips_per_s": round(m["per_s"]),
                **measured_row(m, workers, root, n, write_s),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
        shutil.rmtree(root)
    return rows


def run_real() -> list[dict]:
    """Bytes per 5 s V2 clip of each coding, from the real videos (their first 5 s)."""
    from audioscope_kedro.data.decode import BadClipError, decode_clip

    if not SHARED.is_dir():
        print(json.dumps({"skipped": f"{SHARED} is absent"}))
        return []
    settings = DecodeSettings.for_media(V2.media, short_audio="pad")
    clips = []
    for path in sorted(SHARED.glob("*.mp4")):
        try:
            d = decode_clip(path, 0.0, 5.0, settings)
        except BadClipError as err:
            print(f"skipping {path.name}: {err.reason}", file=sys.stderr)
            continue
        clips.append((path.stem, d.audio, d.frames))
    rows = [
        {
            "coding": "npy float32+raw (the current store)",
            "clips": len(clips),
            "bytes_per_clip": round(np.mean([a.nbytes + f.nbytes for _, a, f in clips])),
        }
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, codec in CODINGS.items():
            coded = [
                encode_clip(clip_id(s, 0, 5), a, f, V2.sample_rate, V2.fps, codec)
                for s, a, f in clips
            ]
            path = Path(tmp) / f"{name}.tar"
            write_tar(path, coded, codec)
            # decoding cost of one clip (audio and frames), the work a loader worker does
            start = time.perf_counter()
            for _ in range(5):
                for c in coded:
                    decode_audio(c.audio, codec.audio_member, c.meta["num_samples"])
                    shape = (c.meta["num_frames"], V2.frame_height, V2.frame_width, 3)
                    decode_frames(c.frames, codec.frames_member, c.meta["num_frames"], shape)
            decode_ms = (time.perf_counter() - start) / (5 * len(coded)) * 1000
            error = max(
                float(
                    np.abs(
                        decode_frames(c.frames, codec.frames_member, len(f)).astype(int) - f
                    ).mean()
                )
                for c, (_, _, f) in zip(coded, clips, strict=True)
            )
            rows.append(
                {
                    "coding": f"webdataset {name}",
                    "clips": len(clips),
                    "bytes_per_clip": round(path.stat().st_size / len(clips)),
                    "decode_ms_per_clip": round(decode_ms, 2),
                    "frame_mean_abs_error_max": round(error, 2),
                }
            )
    for row in rows:
        row["v2_total_tb"] = round(row["bytes_per_clip"] * V2_CLIPS / 1e12, 2)
        print(json.dumps(row), flush=True)
    return rows


# ------------------------------------------------------------------------- training steps/s

# (processes, torch threads per process) of each layout measured, the first is the baseline
TRAIN_LAYOUTS = [(1, 1), (2, 1), (1, 2)]


def training_steps(data: str, processes: int, steps: int) -> dict:
    """Steps/s of ``train`` (the demo configuration, global batch 16) with ``processes`` DDP
    ranks (gloo) over the demo's store and tables in ``data`` (``clip_store/``,
    ``mom_table.parquet``, ``coincidence_scores.parquet``, ``pretrained_separator/``); the
    threads per process come from ``OMP_NUM_THREADS``, set by :func:`run_training`."""
    from kedro.config import OmegaConfigLoader

    from audioscope_kedro.data.store import ClipStore
    from audioscope_kedro.models.persistence import load_model
    from audioscope_kedro.parameters import merge
    from audioscope_kedro.settings import CONFIG_LOADER_ARGS
    from audioscope_kedro.training.audioscope import fit_audioscope, training_setup
    from audioscope_kedro.training.checkpoints import CheckpointStore
    from audioscope_kedro.training.launch import DistributedSettings, run

    conf = OmegaConfigLoader(str(ROOT / "conf"), env="demo", **CONFIG_LOADER_ARGS)
    params = conf["parameters"]
    store = ClipStore(f"{data}/clip_store")
    loop = {"steps": steps, "validate_every": steps, "checkpoint_every": steps}
    train = merge(params["train"], {"loop": loop})
    settings, config = training_setup(train, params["model"], {}, store, params["clip_seconds"])
    scores = pd.read_parquet(f"{data}/coincidence_scores.parquet")
    with tempfile.TemporaryDirectory() as folder:
        _, curve = run(
            DistributedSettings(processes),
            fit_audioscope,
            store,
            pd.read_parquet(f"{data}/mom_table.parquet"),
            scores,
            load_model(f"{data}/pretrained_separator", "separator"),
            CheckpointStore(folder),
            settings,
            config,
        )
    steps_per_s = float(curve["steps_per_s"].iloc[-1])
    loader = loader_seconds(store, scores, settings, params["clip_seconds"], processes, steps)
    return {"steps_per_s": steps_per_s, "loader_s": loader, "loader_share": loader * steps_per_s}


def loader_seconds(store, scores, settings, clip_seconds: float, processes: int, steps: int):
    """Seconds per step that a rank spends reading its rows of the batch (``random_mom_batch``
    for the same steps, after the run: the store in the page cache, as in a steady run), timed
    alone in this process: the reader runs in the training process, so this is its share of a
    step."""
    from audioscope_kedro.data.batches import random_mom_batch
    from audioscope_kedro.training.audioscope import training_clips

    clips = training_clips(store, scores, clip_seconds)
    rows = slice(0, settings.batch_size // processes)  # rank 0's share of the global batch
    start = time.perf_counter()
    for step in range(steps):
        random_mom_batch(
            clips, settings.batch_size, settings.seed, step, settings.crop_seconds, rows=rows
        )
    return (time.perf_counter() - start) / steps


def run_training(data: str, steps: int, repeats: int) -> list[dict]:
    """Every layout of :data:`TRAIN_LAYOUTS`, ``repeats`` times in turn, each in a fresh
    interpreter; prints steps/s and the ratio to 1 process on 1 thread (for 2 processes on 2
    cores, the ratio / 2 is the scaling efficiency)."""
    rows = []
    for repeat in range(repeats):
        for processes, threads in TRAIN_LAYOUTS:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            out = subprocess.run(
                [sys.executable, __file__, "_train", data, str(processes), str(steps)],
                capture_output=True,
                text=True,
                check=False,
                env=env,
                cwd=ROOT,
            )
            if out.returncode:
                raise RuntimeError(f"training {processes}x{threads} failed:\n{out.stderr[-3000:]}")
            result = json.loads(out.stdout.strip().splitlines()[-1])
            value = result["steps_per_s"]
            rows.append(
                {
                    "processes": processes,
                    "threads": threads,
                    "repeat": repeat,
                    "steps_per_s": value,
                    "loader_share": result["loader_share"],
                    "load": os.getloadavg()[0],
                }
            )
            print(
                f"{processes} process(es) x {threads} thread(s): {value:.2f} steps/s, loader "
                f"{1000 * result['loader_s']:.1f} ms a step ({100 * result['loader_share']:.1f}% "
                f"of it) (load average {rows[-1]['load']:.1f})",
                flush=True,
            )
    table = pd.DataFrame(rows)
    means = table.groupby(["processes", "threads"], sort=False)["steps_per_s"].mean()
    base = means.loc[TRAIN_LAYOUTS[0]]
    print("\nmean steps/s (global batch 16) and ratio to 1 process x 1 thread:")
    shares = table.groupby(["processes", "threads"], sort=False)["loader_share"].max()
    for (processes, threads), value in means.items():
        share = shares.loc[(processes, threads)]
        print(
            f"  {processes} x {threads}: {value:.2f}  ({value / base:.2f}x); loader at most "
            f"{100 * share:.1f}% of a step (goal: 5%)"
        )
    return rows


def main() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sizes = commands.add_parser("sizes")
    sizes.add_argument("--sizes", type=int, nargs="+", default=[1000, 20000, 200000])
    sizes.add_argument("--examples", type=int, default=20000)
    sizes.add_argument(
        "--out", type=Path, default=None, help="scratch folder (default: a temp dir)"
    )
    formats = commands.add_parser("formats")
    formats.add_argument("--clips", type=int, default=20000)
    formats.add_argument("--out", type=Path, default=None)
    commands.add_parser("real")
    training = commands.add_parser("training")
    training.add_argument(
        "data",
        help="a folder with the demo's clip_store/, mom_table.parquet, "
        "coincidence_scores.parquet and pretrained_separator/",
    )
    training.add_argument("--steps", type=int, default=60)
    training.add_argument("--repeats", type=int, default=2)
    train_one = commands.add_parser("_train")  # one layout in a fresh process
    train_one.add_argument("data")
    train_one.add_argument("processes", type=int)
    train_one.add_argument("steps", type=int)
    measure = commands.add_parser("_measure")  # one measurement in a fresh process
    measure.add_argument("what", choices=["moms", "clips"])
    measure.add_argument("root")
    measure.add_argument("reader")
    measure.add_argument("workers", type=int)
    measure.add_argument("examples", type=int)
    args = parser.parse_args()
    if args.command == "_measure":
        # what every reader imports: the peak RSS before opening a store is the baseline
        import torch  # noqa: F401

        import audioscope_kedro.data.batches  # noqa: F401
        import audioscope_kedro.data.streaming  # noqa: F401

        fn = measure_moms if args.what == "moms" else measure_clips
        print(json.dumps(fn(args.root, args.reader, args.workers, args.examples)))
        return
    if args.command == "real":
        run_real()
        return
    if args.command == "_train":
        print(json.dumps(training_steps(args.data, args.processes, args.steps)))
        return
    if args.command == "training":
        run_training(args.data, args.steps, args.repeats)
        return
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        if args.command == "sizes":
            run_sizes(args.sizes, args.examples, Path(tmp))
        else:
            run_formats(args.clips, Path(tmp))


if __name__ == "__main__":
    main()
