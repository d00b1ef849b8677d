"""The decoded clip store: shards of audio and frames, indexed by one parquet table.

Layout (``root`` is the store folder)::

    root/shards/shard-00000/audio.npy     float32 [sum of clip samples], clips back to back
    root/shards/shard-00000/frames.npy    uint8 [sum of clip frames, H, W, 3]
    root/shards/shard-00000/clips.parquet one row per planned clip, ok or quarantined
    root/shards/shard-00000/manifest.json fingerprint of the clips and decode settings
    root/index.parquet                    every ingested clip: ids, times, split, label, offsets
    root/quarantine.csv                   every rejected clip: file, times, reason
    root/settings.json                    decode settings

Built for collections far larger than memory: a shard is decoded by one worker, written under
a temporary name and renamed, so an interrupted run loses nothing already written and a rerun
skips every shard whose fingerprint matches. Readers memory-map the arrays.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from audioscope_kedro.atomic import atomic_path, is_temporary, write_json
from audioscope_kedro.data.decode import BadClipError, DecodeSettings, decode_clip
from audioscope_kedro.data.lists import is_safe_relative_path

INDEX_FILE = "index.parquet"
QUARANTINE_FILE = "quarantine.csv"
SETTINGS_FILE = "settings.json"
SHARD_DIR = "shards"


def clip_id(video_path: str, start_time: float, end_time: float) -> str:
    """Stable id of a clip: the same file and times give the same id in every run."""
    key = f"{video_path}|{start_time:.3f}|{end_time:.3f}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ShardPlan:
    """The clips of one shard and how to decode them: a picklable unit of work."""

    shard_id: int
    clips: pd.DataFrame  # clip_id, video_path, start_time, end_time, plus any metadata columns
    video_root: str
    settings: DecodeSettings

    @property
    def name(self) -> str:
        return f"shard-{self.shard_id:05d}"

    @property
    def fingerprint(self) -> str:
        payload = json.dumps(
            {
                "clips": self.clips[["clip_id", "video_path", "start_time", "end_time"]]
                .astype(str)
                .values.tolist(),
                "settings": self.settings.to_dict(),
            },
            sort_keys=True,
        )
        return hashlib.sha1(payload.encode()).hexdigest()


@dataclass
class ShardBatch:
    """What the ingest node hands to the clip-store dataset: the plans and the pool size."""

    plans: list[ShardPlan]
    num_workers: int = 1
    settings: DecodeSettings = field(default_factory=DecodeSettings)


def plan_shards(
    clips: pd.DataFrame, video_root: str, settings: DecodeSettings, shard_size: int
) -> list[ShardPlan]:
    """Cut a clip table into shards of ``shard_size`` clips, in table order (deterministic)."""
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    clips = clips.reset_index(drop=True)
    return [
        ShardPlan(i // shard_size, clips.iloc[i : i + shard_size].copy(), video_root, settings)
        for i in range(0, len(clips), shard_size)
    ]


def _resolve(video_root: str, video_path: str) -> Path:
    if not is_safe_relative_path(video_path):
        raise BadClipError("path escapes video_root")
    return Path(video_root) / video_path


def build_shard(plan: ShardPlan, shards_dir: str) -> dict:
    """Decode a shard's clips and write it atomically; returns counts for the progress bar.

    Runs in a worker process. A bad clip is recorded with its reason and the shard goes on.
    """
    audio_parts: list[np.ndarray] = []
    frame_parts: list[np.ndarray] = []
    rows = []
    audio_offset = frame_offset = 0
    s = plan.settings
    for clip in plan.clips.itertuples(index=False):
        row = clip._asdict()
        try:
            decoded = decode_clip(
                _resolve(plan.video_root, clip.video_path), clip.start_time, clip.end_time, s
            )
        except BadClipError as err:
            row.update(status="quarantined", reason=err.reason)
            rows.append(row)
            continue
        except Exception as err:  # noqa: BLE001 - one odd file must not stop the batch
            row.update(status="quarantined", reason=f"decode failed: {type(err).__name__}: {err}")
            rows.append(row)
            continue
        audio_parts.append(decoded.audio)
        frame_parts.append(decoded.frames)
        row.update(
            status="ok",
            reason="",
            shard=plan.shard_id,
            audio_offset=audio_offset,
            num_samples=decoded.audio.size,
            frame_offset=frame_offset,
            num_frames=len(decoded.frames),
            padded_seconds=decoded.padded_seconds,
            rms_db=float(10 * np.log10(np.mean(decoded.audio.astype(np.float64) ** 2) + 1e-20)),
        )
        audio_offset += decoded.audio.size
        frame_offset += len(decoded.frames)
        rows.append(row)
    audio = np.concatenate(audio_parts) if audio_parts else np.zeros(0, np.float32)
    shape = (0, s.frame_height, s.frame_width, 3)
    frames = np.concatenate(frame_parts) if frame_parts else np.zeros(shape, np.uint8)
    # the whole shard folder is written under a temporary name: a shard exists complete or not
    with atomic_path(Path(shards_dir) / plan.name) as tmp:
        tmp.mkdir()
        np.save(tmp / "audio.npy", audio)
        np.save(tmp / "frames.npy", frames)
        pd.DataFrame(rows).to_parquet(tmp / "clips.parquet", index=False)
        (tmp / "manifest.json").write_text(
            json.dumps({"fingerprint": plan.fingerprint, "num_clips": len(rows)})
        )
    n_bad = sum(r["status"] != "ok" for r in rows)
    return {"shard": plan.name, "ok": len(rows) - n_bad, "quarantined": n_bad}


def shard_is_current(shards_dir: Path, plan: ShardPlan) -> bool:
    manifest = shards_dir / plan.name / "manifest.json"
    if not manifest.exists():
        return False
    try:
        return json.loads(manifest.read_text()).get("fingerprint") == plan.fingerprint
    except json.JSONDecodeError:
        return False


def build_clip_store(batch: ShardBatch, root: str | Path) -> dict:
    """Write every shard of ``batch`` that is not already current, then the index.

    Returns a summary: shards built and skipped, clips ingested and quarantined.
    """
    root = Path(root)
    shards_dir = root / SHARD_DIR
    shards_dir.mkdir(parents=True, exist_ok=True)
    for leftover in filter(is_temporary, shards_dir.iterdir()):  # from an interrupted run
        shutil.rmtree(leftover, ignore_errors=True)
    wanted = {p.name for p in batch.plans}
    for old in shards_dir.glob("shard-*"):
        if old.name not in wanted:
            shutil.rmtree(old, ignore_errors=True)
    todo = [p for p in batch.plans if not shard_is_current(shards_dir, p)]
    skipped = len(batch.plans) - len(todo)
    quarantined = 0
    progress = tqdm(total=sum(len(p.clips) for p in todo), desc="ingest", unit="clip")
    if todo and batch.num_workers > 1:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=batch.num_workers, mp_context=ctx) as pool:
            futures = [pool.submit(build_shard, p, str(shards_dir)) for p in todo]
            for future in as_completed(futures):
                done = future.result()
                quarantined += done["quarantined"]
                progress.update(done["ok"] + done["quarantined"])
                progress.set_postfix(quarantined=quarantined)
    else:
        for plan in todo:
            done = build_shard(plan, str(shards_dir))
            quarantined += done["quarantined"]
            progress.update(done["ok"] + done["quarantined"])
            progress.set_postfix(quarantined=quarantined)
    progress.close()
    tables = [pd.read_parquet(shards_dir / p.name / "clips.parquet") for p in batch.plans]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    ok = table[table["status"] == "ok"].drop(columns=["status", "reason"]) if len(table) else table
    bad = table[table["status"] != "ok"] if len(table) else table
    with atomic_path(root / INDEX_FILE) as tmp:
        ok.to_parquet(tmp, index=False)
    quarantine_cols = ["video_path", "start_time", "end_time", "reason"]
    bad_out = bad[quarantine_cols] if len(bad) else pd.DataFrame(columns=quarantine_cols)
    with atomic_path(root / QUARANTINE_FILE) as tmp:
        bad_out.to_csv(tmp, index=False)
    write_json(root / SETTINGS_FILE, batch.settings.to_dict())
    return {
        "shards_built": len(todo),
        "shards_skipped": skipped,
        "clips_ingested": int(len(ok)),
        "clips_quarantined": int(len(bad)),
    }


class ClipStore:
    """Read-only view of a clip store; arrays are memory-mapped, one shard at a time."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index_path = self.root / INDEX_FILE
        if not index_path.exists():
            raise FileNotFoundError(f"no clip store at {self.root} (missing {INDEX_FILE})")
        self.index = pd.read_parquet(index_path)
        self.settings = DecodeSettings(**json.loads((self.root / SETTINGS_FILE).read_text()))
        self._row_of = {cid: i for i, cid in enumerate(self.index["clip_id"])}
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.index)

    @property
    def quarantine(self) -> pd.DataFrame:
        return pd.read_csv(self.root / QUARANTINE_FILE)

    def _shard(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        if shard not in self._arrays:
            d = self.root / SHARD_DIR / f"shard-{shard:05d}"
            self._arrays[shard] = (
                np.load(d / "audio.npy", mmap_mode="r"),
                np.load(d / "frames.npy", mmap_mode="r"),
            )
        return self._arrays[shard]

    def row(self, key: int | str) -> pd.Series:
        """Index row by position or by clip id."""
        return self.index.iloc[self._row_of[key] if isinstance(key, str) else key]

    def audio(self, key: int | str) -> np.ndarray:
        r = self.row(key)
        audio, _ = self._shard(int(r["shard"]))
        a = int(r["audio_offset"])
        return np.asarray(audio[a : a + int(r["num_samples"])])

    def frames(self, key: int | str) -> np.ndarray:
        r = self.row(key)
        _, frames = self._shard(int(r["shard"]))
        f = int(r["frame_offset"])
        return np.asarray(frames[f : f + int(r["num_frames"])])

    def __iter__(self) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """Clip id, audio and frames of every clip, shard by shard (streamed, not all loaded)."""
        for i in range(len(self.index)):
            yield self.index["clip_id"].iat[i], self.audio(i), self.frames(i)
