"""The decoded clip store: shards of audio and frames, indexed by one parquet table.

Layout (``root`` is the store folder)::

    root/shards/shard-00000/audio.npy     float32 [sum of clip samples], clips back to back   (npy)
    root/shards/shard-00000/frames.npy    uint8 [sum of clip frames, H, W, 3]                 (npy)
    root/shards/shard-00000/data.tar      WebDataset tar of coded clips            (webdataset)
    root/shards/shard-00000/clips.parquet one row per planned clip, ok or quarantined
    root/shards/shard-00000/manifest.json fingerprint of the clips, decode settings and coding;
                                          size and mtime of the videos decoded (media)
    root/index.parquet                    every ingested clip: ids, times, split, label, offsets
    root/quarantine.csv                   every rejected clip: file, times, reason
    root/settings.json                    decode settings
    root/format.json                      "npy" or "webdataset" and its coding (absent: npy)
    root/layout.parquet                   clip id -> shard of every planned clip (the merged plan)
    root/shards.parquet                   clips per shard and split (what a streaming reader lists)
    root/plans/plan-<r>-of-<n>.parquet    the plan being built, as ingest node r of n wrote it
    root/nodes/node-<r>-of-<n>.json       ingest node r of n has built its shards (until merged)

Built for collections far larger than memory: a shard is decoded by one worker, written under
a temporary name and renamed, so an interrupted run loses nothing already written and a rerun
skips every shard whose fingerprint matches and whose videos have the size and modification
time they were decoded at (a video replaced at the same path is decoded again). Readers
memory-map the npy arrays, or read the tar members by offset (:class:`TarClipStore`), or stream
whole tar shards (:mod:`audioscope_kedro.data.streaming`).

**Appending never rewrites.** Planning keeps every clip of the merged layout in the shard it is
in; clips not in it go to new shards numbered after the last one. So adding clips to the lists
builds new shards only (a shard is rebuilt only when its own clips or the decode settings
change).

**Several machines.** The plan is a pure function of the clip table and the merged layout, so
N machines (``node_rank`` 0..N-1 of ``num_nodes``) compute the same plan and each builds the
shards ``shard_id % num_nodes == node_rank``; the last to finish, or
``python -m audioscope_kedro.data.ingest merge ROOT``, merges the shards' tables into the index.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from audioscope_kedro.atomic import atomic_path, is_temporary, write_json
from audioscope_kedro.data.decode import BadClipError, DecodeSettings, decode_clip
from audioscope_kedro.data.paths import OutsideRootError, resolve_inside
from audioscope_kedro.data.shard_format import (
    TAR_FILE,
    ShardReader,
    StoreFormat,
    TarCodec,
    decode_audio,
    decode_frames,
    encode_clip,
    is_url,
    join,
    write_tar,
)
from audioscope_kedro.run_lock import AlreadyRunningError, RunLock

INDEX_FILE = "index.parquet"
QUARANTINE_FILE = "quarantine.csv"
SETTINGS_FILE = "settings.json"
FORMAT_FILE = "format.json"
LAYOUT_FILE = "layout.parquet"
SHARDS_FILE = "shards.parquet"
PLANS_DIR = "plans"
NODES_DIR = "nodes"
MERGE_LOCK = "merging.lock"
SHARD_DIR = "shards"
# what a clip table says about a clip besides its id (the rest of the index is decoding facts)
CLIP_META_COLUMNS = ("video_path", "start_time", "end_time", "split", "label")
INTEGER_COLUMNS = (
    "shard",
    "audio_offset",
    "num_samples",
    "frame_offset",
    "num_frames",
    "audio_byte_offset",
    "audio_byte_size",
    "frames_byte_offset",
    "frames_byte_size",
)
# rows of index.parquet per parquet row group: a streaming reader reads one shard's rows by a
# filter on `shard` without reading the whole index (the index is written in shard order)
INDEX_ROW_GROUP = 2048


def clip_id(video_path: str, start_time: float, end_time: float) -> str:
    """Stable id of a clip: the same file and times give the same id in every run."""
    key = f"{video_path}|{start_time:.3f}|{end_time:.3f}"
    return hashlib.sha1(key.encode()).hexdigest()[:16]


def shard_name(shard_id: int) -> str:
    return f"shard-{shard_id:05d}"


@dataclass(frozen=True)
class ShardPlan:
    """The clips of one shard and how to decode them: a picklable unit of work."""

    shard_id: int
    clips: pd.DataFrame  # clip_id, video_path, start_time, end_time, plus any metadata columns
    video_root: str
    settings: DecodeSettings
    codec: TarCodec | None = None  # None: the npy format

    @property
    def name(self) -> str:
        return shard_name(self.shard_id)

    @property
    def fingerprint(self) -> str:
        payload = {
            "clips": self.clips[["clip_id", "video_path", "start_time", "end_time"]]
            .astype(str)
            .values.tolist(),
            "settings": self.settings.to_dict(),
        }
        if self.codec is not None:  # npy fingerprints stay as they were: no rebuild of old stores
            payload["codec"] = self.codec.to_dict()
        return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def media_signature(self) -> str:
        """Size and modification time of every video file of the shard, hashed. A video
        replaced at the same path (re-rendered, re-downloaded, re-encoded) changes it, and the
        shard is decoded again. Kept beside the fingerprint, not in it: shards written before
        it was recorded stay current rather than forcing a re-ingest of whole stores."""
        files = []
        for video_path in sorted(set(self.clips["video_path"].astype(str))):
            try:
                stat = _resolve(self.video_root, video_path).stat()
                files.append((video_path, stat.st_size, stat.st_mtime_ns))
            except (BadClipError, OSError):  # quarantined when decoded; its row says why
                files.append((video_path, None, None))
        return hashlib.sha1(json.dumps(files).encode()).hexdigest()


@dataclass
class ShardBatch:
    """What the ingest node hands to the clip-store dataset: the whole plan, the pool size, and
    which of the plan's shards this machine builds (``shard_id % num_nodes == node_rank``)."""

    plans: list[ShardPlan]
    num_workers: int = 1
    settings: DecodeSettings = field(default_factory=DecodeSettings)
    codec: TarCodec | None = None
    node_rank: int = 0
    num_nodes: int = 1

    def __post_init__(self) -> None:
        if self.num_nodes < 1 or not 0 <= self.node_rank < self.num_nodes:
            raise ValueError(
                f"node_rank must be in 0..num_nodes-1, got node_rank={self.node_rank}, "
                f"num_nodes={self.num_nodes}"
            )

    @property
    def format(self) -> StoreFormat:
        return StoreFormat.NPY if self.codec is None else StoreFormat.WEBDATASET

    def mine(self) -> list[ShardPlan]:
        return [p for p in self.plans if p.shard_id % self.num_nodes == self.node_rank]

    @property
    def fingerprint(self) -> str:
        payload = [(p.name, p.fingerprint) for p in self.plans]
        return hashlib.sha1(json.dumps([payload, self.format]).encode()).hexdigest()


def plan_shards(
    clips: pd.DataFrame,
    video_root: str,
    settings: DecodeSettings,
    shard_size: int,
    codec: TarCodec | None = None,
    layout: pd.DataFrame | None = None,
) -> list[ShardPlan]:
    """Cut a clip table into shards of ``shard_size`` clips, in table order (deterministic).

    With ``layout`` (``clip_id, shard`` of a store built before, in shard order) every clip it
    names stays in its shard, in its place; the other clips fill new shards numbered after the
    last one. Adding clips thus only adds shards.
    """
    if shard_size < 1:
        raise ValueError("shard_size must be at least 1")
    clips = clips.reset_index(drop=True)

    def plan(shard_id: int, rows: pd.DataFrame) -> ShardPlan:
        return ShardPlan(shard_id, rows.copy(), video_root, settings, codec)

    plans, first_new, new = [], 0, clips
    if layout is not None and len(layout):
        position = pd.Series(np.arange(len(clips)), index=clips["clip_id"])
        kept = layout[layout["clip_id"].isin(position.index)]
        for shard_id, group in kept.groupby("shard", sort=True):
            plans.append(plan(int(shard_id), clips.iloc[position[group["clip_id"]].to_numpy()]))
        first_new = int(layout["shard"].max()) + 1
        new = clips[~clips["clip_id"].isin(layout["clip_id"])]
    plans.extend(
        plan(first_new + i // shard_size, new.iloc[i : i + shard_size])
        for i in range(0, len(new), shard_size)
    )
    return plans


@dataclass
class IngestJob:
    """A clip table to ingest, planned against the store it goes into (its merged layout) when
    the clip-store dataset saves it: the form the ``ingest`` pipeline hands over."""

    clips: pd.DataFrame
    video_root: str
    settings: DecodeSettings
    shard_size: int
    codec: TarCodec | None = None
    num_workers: int = 1
    node_rank: int = 0
    num_nodes: int = 1

    def plan(self, layout: pd.DataFrame | None) -> ShardBatch:
        plans = plan_shards(
            self.clips, self.video_root, self.settings, self.shard_size, self.codec, layout
        )
        return ShardBatch(
            plans, self.num_workers, self.settings, self.codec, self.node_rank, self.num_nodes
        )


def _resolve(video_root: str, video_path: str) -> Path:
    """The file a clip row names, checked to lie inside ``video_root`` (symlinks followed); a
    row that would leave it is quarantined and never opened. The reason is short and fixed, so
    that the summary counts these rows together (the path is in the row)."""
    try:
        return resolve_inside(video_root, video_path)
    except OutsideRootError as err:
        how = " through a symlink" if err.symlink else ""
        raise BadClipError(f"path escapes video_root{how}") from None


@dataclass
class ShardClip:
    """A clip ready to write: its table row and, when it decoded, its media."""

    row: dict
    audio: np.ndarray | None = None  # float32 [T]
    frames: np.ndarray | None = None  # uint8 [F, H, W, 3]
    padded_seconds: float = 0.0


def _decode_plan(plan: ShardPlan) -> list[ShardClip]:
    out = []
    for clip in plan.clips.itertuples(index=False):
        row = clip._asdict()
        try:
            decoded = decode_clip(
                _resolve(plan.video_root, clip.video_path),
                clip.start_time,
                clip.end_time,
                plan.settings,
            )
        except BadClipError as err:
            out.append(ShardClip({**row, "status": "quarantined", "reason": err.reason}))
            continue
        except Exception as err:  # noqa: BLE001 - one odd file must not stop the batch
            reason = f"decode failed: {type(err).__name__}: {err}"
            out.append(ShardClip({**row, "status": "quarantined", "reason": reason}))
            continue
        out.append(ShardClip(row, decoded.audio, decoded.frames, decoded.padded_seconds))
    return out


def write_shard(
    shards_dir: str | Path,
    shard_id: int,
    fingerprint: str,
    clips: list[ShardClip],
    settings: DecodeSettings,
    codec: TarCodec | None = None,
    media: str | None = None,
) -> dict:
    """Write one shard (npy arrays, or a tar when ``codec`` is given) with its clip table and
    manifest (``fingerprint``, and ``media``: ``ShardPlan.media_signature`` of the files it was
    decoded from), atomically; returns counts for the progress bar."""
    rows = []
    audio_parts: list[np.ndarray] = []
    frame_parts: list[np.ndarray] = []
    audio_offset = frame_offset = 0
    for clip in clips:
        row = dict(clip.row)
        if clip.audio is None:
            row.setdefault("status", "quarantined")
            rows.append(row)
            continue
        row.update(status="ok", reason="", shard=shard_id)
        if codec is None:  # sample and frame offsets in the shard's arrays
            row.update(audio_offset=audio_offset, num_samples=clip.audio.size)
            row.update(frame_offset=frame_offset, num_frames=len(clip.frames))
            audio_offset += clip.audio.size
            frame_offset += len(clip.frames)
        else:  # byte offsets of the tar members are added once the tar is written
            row.update(num_samples=clip.audio.size, num_frames=len(clip.frames))
        row.update(
            padded_seconds=clip.padded_seconds,
            rms_db=float(10 * np.log10(np.mean(clip.audio.astype(np.float64) ** 2) + 1e-20)),
        )
        audio_parts.append(clip.audio)
        frame_parts.append(clip.frames)
        rows.append(row)
    name = shard_name(shard_id)
    # the whole shard folder is written under a temporary name: a shard exists complete or not
    with atomic_path(Path(shards_dir) / name) as tmp:
        tmp.mkdir()
        if codec is None:
            audio = np.concatenate(audio_parts) if audio_parts else np.zeros(0, np.float32)
            shape = (0, settings.frame_height, settings.frame_width, 3)
            frames = np.concatenate(frame_parts) if frame_parts else np.zeros(shape, np.uint8)
            np.save(tmp / "audio.npy", audio)
            np.save(tmp / "frames.npy", frames)
        else:
            ok = [r for r in rows if r["status"] == "ok"]
            coded = [
                encode_clip(r["clip_id"], a, f, settings.sample_rate, settings.fps, codec)
                for r, a, f in zip(ok, audio_parts, frame_parts, strict=True)
            ]
            for r, offsets in zip(ok, write_tar(tmp / TAR_FILE, coded, codec), strict=True):
                r.update(offsets)
        pd.DataFrame(rows).to_parquet(tmp / "clips.parquet", index=False)
        (tmp / "manifest.json").write_text(
            json.dumps({"fingerprint": fingerprint, "media": media, "num_clips": len(rows)})
        )
    n_bad = sum(r["status"] != "ok" for r in rows)
    return {"shard": name, "ok": len(rows) - n_bad, "quarantined": n_bad}


def build_shard(plan: ShardPlan, shards_dir: str) -> dict:
    """Decode a shard's clips and write it atomically; returns counts for the progress bar.

    Runs in a worker process. A bad clip is recorded with its reason and the shard goes on.
    """
    media = plan.media_signature()  # before decoding: a file replaced meanwhile is redone
    return write_shard(
        shards_dir,
        plan.shard_id,
        plan.fingerprint,
        _decode_plan(plan),
        plan.settings,
        plan.codec,
        media,
    )


def _shard_current(
    shards_dir: Path, name: str, fingerprint: str, media: Callable[[], str] | None = None
) -> bool:
    """The shard's manifest has ``fingerprint`` and, when it recorded the media signature of
    its files and ``media`` gives the current one, the same signature."""
    manifest = shards_dir / name / "manifest.json"
    if not manifest.exists():
        return False
    try:
        written = json.loads(manifest.read_text())
    except json.JSONDecodeError:
        return False
    if written.get("fingerprint") != fingerprint:
        return False
    return media is None or written.get("media") is None or written["media"] == media()


def shard_is_current(shards_dir: Path, plan: ShardPlan) -> bool:
    """Written with the plan's clips and settings, from the video files as they are now."""
    return _shard_current(Path(shards_dir), plan.name, plan.fingerprint, plan.media_signature)


def read_layout(root: str | Path) -> pd.DataFrame | None:
    """``clip_id, shard`` of the store's merged plan (None for a new store)."""
    path = Path(root) / LAYOUT_FILE
    return pd.read_parquet(path) if path.exists() else None


def _node_name(rank: int, num_nodes: int) -> str:
    return f"{rank:04d}-of-{num_nodes:04d}"


def _write_plan(root: Path, batch: ShardBatch) -> None:
    """The plan this node builds, for the merge: every node writes its own copy (names with
    its rank: nodes on other machines may share a pid, hence a temporary name), all equal."""
    tables = [p.clips.assign(shard=p.shard_id) for p in batch.plans]
    empty = pd.DataFrame(columns=["clip_id", "shard"])
    plan = pd.concat(tables, ignore_index=True) if tables else empty
    name = f"plan-{_node_name(batch.node_rank, batch.num_nodes)}"
    with atomic_path(root / PLANS_DIR / f"{name}.parquet") as tmp:
        plan.to_parquet(tmp, index=False)
    write_json(
        root / PLANS_DIR / f"{name}.json",
        {
            "fingerprint": batch.fingerprint,
            "format": str(batch.format),
            "codec": batch.codec.to_dict() if batch.codec else None,
            "settings": batch.settings.to_dict(),
            "num_nodes": batch.num_nodes,
            "shards": {p.name: p.fingerprint for p in batch.plans},
        },
    )


def _read_plan(root: Path) -> tuple[dict, pd.DataFrame] | None:
    """The plan the nodes wrote (None when there is none: nothing to merge)."""
    metas = sorted((root / PLANS_DIR).glob("plan-*.json")) if (root / PLANS_DIR).is_dir() else []
    if not metas:
        return None
    plans = {m.name: json.loads(m.read_text()) for m in metas}
    if len({p["fingerprint"] for p in plans.values()}) > 1:
        raise IngestIncompleteError(
            f"the ingest nodes of {root} wrote different plans ({', '.join(plans)}: other "
            "clips, settings or coding): remove the plans of the abandoned run from "
            f"{root / PLANS_DIR} and run its nodes again"
        )
    first = metas[0]
    return plans[first.name], pd.read_parquet(first.with_suffix(".parquet"))


def _own_leftover(path: Path, names: set[str]) -> bool:
    """A temporary folder left by an interrupted write of one of ``names``' shards."""
    return is_temporary(path) and path.name[1:].split(".tmp-")[0] in names


def build_clip_store(batch: ShardBatch | IngestJob, root: str | Path) -> dict:
    """Write every shard of ``batch`` (of this node's part of it) that is not already current,
    then, when every shard of the plan is there, merge them into the index.

    Returns a summary of this node's shards: built and skipped, clips ingested and quarantined
    (and, with several nodes, ``node`` and whether this call ``merged`` the store).
    """
    root = Path(root)
    if isinstance(batch, IngestJob):
        batch = batch.plan(read_layout(root))
    shards_dir = root / SHARD_DIR
    shards_dir.mkdir(parents=True, exist_ok=True)
    if batch.num_nodes == 1:  # this run owns the whole store: forget abandoned node runs
        shutil.rmtree(root / PLANS_DIR, ignore_errors=True)
        shutil.rmtree(root / NODES_DIR, ignore_errors=True)
    _write_plan(root, batch)
    mine = batch.mine()
    names = {p.name for p in mine}
    for leftover in shards_dir.iterdir():  # from an interrupted run (of this node's shards)
        if (batch.num_nodes == 1 and is_temporary(leftover)) or _own_leftover(leftover, names):
            shutil.rmtree(leftover, ignore_errors=True)
    todo = [p for p in mine if not shard_is_current(shards_dir, p)]
    quarantined = 0
    desc = "ingest" if batch.num_nodes == 1 else f"ingest {batch.node_rank}/{batch.num_nodes}"
    progress = tqdm(total=sum(len(p.clips) for p in todo), desc=desc, unit="clip")
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
    tables = [pd.read_parquet(shards_dir / p.name / "clips.parquet") for p in mine]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    n_bad = int((table["status"] != "ok").sum()) if len(table) else 0
    summary = {
        "shards_built": len(todo),
        "shards_skipped": len(mine) - len(todo),
        "clips_ingested": len(table) - n_bad,
        "clips_quarantined": n_bad,
    }
    if batch.num_nodes == 1:
        merge_clip_store(root)
        return summary
    write_json(
        root / NODES_DIR / f"node-{_node_name(batch.node_rank, batch.num_nodes)}.json",
        {"plan": batch.fingerprint, "shards": sorted(names)},
    )
    # the last node to finish finds every shard there and merges; of two that finish together
    # only the one that takes the lock merges. A flock, not a file created with O_EXCL: the
    # kernel drops it when its holder dies, so a node killed while merging leaves no stale lock
    # that would stop every later node from merging (the merge itself is atomic and idempotent).
    merged = False
    if all(shard_is_current(shards_dir, p) for p in batch.plans):
        lock = RunLock(root / NODES_DIR / MERGE_LOCK, what=f"merging the clip store {root}")
        try:
            lock.acquire()
        except AlreadyRunningError:
            pass  # another node is merging
        else:
            try:
                merge_clip_store(root)
                merged = True
            finally:
                lock.release()
    return {**summary, "node": f"{batch.node_rank}/{batch.num_nodes}", "merged": merged}


class IngestIncompleteError(RuntimeError):
    """The store's plan has shards that no node has built yet."""


def pending_nodes(root: str | Path) -> list[str]:
    """Node reports of a multi-node ingest that has not been merged yet."""
    nodes = Path(root) / NODES_DIR
    return sorted(p.name for p in nodes.glob("node-*.json")) if nodes.is_dir() else []


def merge_clip_store(root: str | Path) -> dict:
    """Merge the shards of the store's plan into ``index.parquet`` (and the quarantine, layout,
    shard list, settings and format), remove shards that are no longer planned, and clear the
    node reports. Fails, naming the missing shards, while any shard of the plan is not built.
    """
    root = Path(root)
    planned = _read_plan(root)
    if planned is None:
        if (root / INDEX_FILE).exists():  # merged already (by the last node): nothing to do
            index = pd.read_parquet(root / INDEX_FILE, columns=["shard"])
            bad = pd.read_csv(root / QUARANTINE_FILE)
            shards = int(index["shard"].nunique()) if len(index) else 0
            return {"shards": shards, "clips_ingested": len(index), "clips_quarantined": len(bad)}
        raise IngestIncompleteError(f"nothing to merge at {root}: no ingest node has run there")
    meta, plan = planned
    shards_dir = root / SHARD_DIR
    expected = meta["shards"]
    missing = [n for n, fp in expected.items() if not _shard_current(shards_dir, n, fp)]
    if missing:
        reported = pending_nodes(root)
        raise IngestIncompleteError(
            f"cannot merge the clip store at {root}: {len(missing)} of {len(expected)} shards of "
            f"the plan are not built yet (e.g. {', '.join(missing[:5])}); node reports present: "
            f"{', '.join(reported) or 'none'}. Run the missing ingest nodes (or ingest on one "
            "machine, which builds what is missing) and merge again."
        )
    tables = [pd.read_parquet(shards_dir / n / "clips.parquet") for n in expected]
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if len(table):
        # metadata (split, label, ...) from the plan, not from when a shard was built: a clip
        # relabelled in the lists keeps its shard (the fingerprint covers only the media)
        columns = list(table.columns)
        meta_cols = [c for c in plan.columns if c != "shard" and c in columns]
        table = table.drop(columns=[c for c in meta_cols if c != "clip_id"]).merge(
            plan[meta_cols].drop_duplicates("clip_id"), on="clip_id", how="left"
        )[columns]
    ok = table[table["status"] == "ok"].drop(columns=["status", "reason"]) if len(table) else table
    bad = table[table["status"] != "ok"] if len(table) else table
    # counts and offsets as integers (quarantined rows, which lack them, made them floats);
    # a streaming reader filters the index on `shard`
    ok = ok.astype({c: "int64" for c in INTEGER_COLUMNS if c in ok.columns})
    quarantine_cols = ["video_path", "start_time", "end_time", "reason"]
    bad_out = bad[quarantine_cols] if len(bad) else pd.DataFrame(columns=quarantine_cols)
    with atomic_path(root / QUARANTINE_FILE) as tmp:
        bad_out.to_csv(tmp, index=False)
    with atomic_path(root / LAYOUT_FILE) as tmp:
        plan[["clip_id", "shard"]].to_parquet(tmp, index=False)
    if len(ok):
        split = ok["split"] if "split" in ok else pd.Series("", index=ok.index)
        per_shard = ok.groupby([ok["shard"], split.rename("split")]).size().rename("num_clips")
        per_shard = per_shard.reset_index()
    else:
        per_shard = pd.DataFrame({"shard": [], "split": [], "num_clips": []})
    per_shard["shard"] = per_shard["shard"].astype(int)
    with atomic_path(root / SHARDS_FILE) as tmp:
        per_shard.to_parquet(tmp, index=False)
    write_json(root / SETTINGS_FILE, meta["settings"])
    write_json(root / FORMAT_FILE, {"format": meta["format"], "codec": meta["codec"]})
    # the index last: readers (and ClipStoreDataset.exists) take the store as there when the
    # index is, so everything it needs must be written before it (a kill in between would
    # leave an index without settings.json)
    with atomic_path(root / INDEX_FILE) as tmp:
        ok.to_parquet(tmp, index=False, row_group_size=INDEX_ROW_GROUP)
    for old in shards_dir.glob("shard-*"):
        if old.name not in expected:
            shutil.rmtree(old, ignore_errors=True)
    for done in (root / NODES_DIR).glob("node-*.json"):  # the lock, if any, is its owner's
        done.unlink(missing_ok=True)
    shutil.rmtree(root / PLANS_DIR, ignore_errors=True)
    return {
        "shards": len(expected),
        "clips_ingested": int(len(ok)),
        "clips_quarantined": int(len(bad)),
    }


def read_store_format(root: str | Path) -> tuple[StoreFormat, TarCodec | None]:
    """The store's format and tar coding (stores written before ``format.json``: npy)."""
    fs, path = fsspec.core.url_to_fs(join(root, FORMAT_FILE))
    if not fs.exists(path):
        return StoreFormat.NPY, None
    with fs.open(path, "r") as f:
        data = json.load(f)
    fmt = StoreFormat(data["format"])
    return fmt, TarCodec.from_dict(data["codec"]) if data.get("codec") else None


def read_json(location: str) -> dict:
    with fsspec.open(location, "r") as f:
        return json.load(f)


class ClipStore:
    """Read-only view of a clip store; arrays are memory-mapped, one shard at a time.

    ``ClipStore(root)`` of a WebDataset store gives a :class:`TarClipStore` (same interface),
    so every reader works on either format.
    """

    def __new__(cls, root: str | Path | None = None, *args, **kwargs):
        if cls is ClipStore and root is not None:
            fmt, _ = read_store_format(root)
            if fmt == StoreFormat.WEBDATASET:
                cls = TarClipStore
        return super().__new__(cls)

    def __init__(self, root: str | Path):
        if is_url(root):
            raise ValueError(
                f"{root}: an npy clip store is memory-mapped and must be on a local disk; "
                "ingest with format: webdataset to read a store through a URL"
            )
        self.root = Path(root)
        index_path = self.root / INDEX_FILE
        if not index_path.exists():
            raise FileNotFoundError(f"no clip store at {self.root} (missing {INDEX_FILE})")
        self.index = pd.read_parquet(index_path)
        self.settings = DecodeSettings(**json.loads((self.root / SETTINGS_FILE).read_text()))
        self._row_of = {cid: i for i, cid in enumerate(self.index["clip_id"])}
        self._arrays: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __reduce__(self):
        # pickled by its folder (or URL), re-opened on the other side: a DataLoader or DDP
        # worker reads the shards itself instead of receiving a copy of the memory-mapped
        # arrays this process has touched, and a WebDataset store its own fsspec handles
        return ClipStore, (self.root,)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def format(self) -> StoreFormat:
        return StoreFormat.NPY

    @property
    def quarantine(self) -> pd.DataFrame:
        return pd.read_csv(self.root / QUARANTINE_FILE)

    def _shard(self, shard: int) -> tuple[np.ndarray, np.ndarray]:
        if shard not in self._arrays:
            d = self.root / SHARD_DIR / shard_name(shard)
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


class TarClipStore(ClipStore):
    """Random access to a WebDataset store, local or at any fsspec URL: a clip's audio and
    frames are read by their byte ranges in the shard's tar and decoded (float32 audio from
    16-bit samples; frames exact with ``raw``, JPEG-decoded with ``jpeg``)."""

    def __init__(self, root: str | Path):
        self.root = str(root) if is_url(root) else Path(root)
        fs, path = fsspec.core.url_to_fs(join(root, INDEX_FILE))
        if not fs.exists(path):
            raise FileNotFoundError(f"no clip store at {root} (missing {INDEX_FILE})")
        self.index = pd.read_parquet(join(root, INDEX_FILE))
        self.settings = DecodeSettings(**read_json(join(root, SETTINGS_FILE)))
        fmt, codec = read_store_format(root)
        if fmt != StoreFormat.WEBDATASET or codec is None:
            raise ValueError(f"{root} is not a WebDataset clip store ({FORMAT_FILE} says {fmt})")
        self.codec = codec
        self._row_of = {cid: i for i, cid in enumerate(self.index["clip_id"])}
        self._reader = ShardReader()

    @property
    def format(self) -> StoreFormat:
        return StoreFormat.WEBDATASET

    @property
    def quarantine(self) -> pd.DataFrame:
        return pd.read_csv(join(self.root, QUARANTINE_FILE))

    def shard_location(self, shard: int) -> str:
        return join(self.root, SHARD_DIR, shard_name(shard), TAR_FILE)

    def _member(self, key: int | str, which: str) -> tuple[pd.Series, bytes]:
        r = self.row(key)
        data = self._reader.read(
            self.shard_location(int(r["shard"])),
            int(r[f"{which}_byte_offset"]),
            int(r[f"{which}_byte_size"]),
        )
        return r, data

    def audio(self, key: int | str) -> np.ndarray:
        r, data = self._member(key, "audio")
        return decode_audio(data, self.codec.audio_member, int(r["num_samples"]))

    def frames(self, key: int | str) -> np.ndarray:
        r, data = self._member(key, "frames")
        s, count = self.settings, int(r["num_frames"])
        shape = (count, s.frame_height, s.frame_width, 3)
        return decode_frames(data, self.codec.frames_member, count, shape)


def write_clip_store(
    root: str | Path,
    clips: pd.DataFrame,
    media: Callable[[str], tuple[np.ndarray, np.ndarray]],
    settings: DecodeSettings,
    shard_size: int,
    codec: TarCodec | None = None,
    progress: bool = True,
) -> dict:
    """A store of clips that are already decoded: ``media(clip_id)`` gives float32 audio and
    uint8 frames in ``settings``' format. Planned like ingest (appending to ``root`` adds
    shards), shards already current are skipped; then merged. For conversions, benchmarks and
    tests: no video is decoded."""
    root = Path(root)
    batch = ShardBatch(
        plan_shards(clips, "", settings, shard_size, codec, read_layout(root)), 1, settings, codec
    )
    shards_dir = root / SHARD_DIR
    shards_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(root / PLANS_DIR, ignore_errors=True)
    shutil.rmtree(root / NODES_DIR, ignore_errors=True)
    _write_plan(root, batch)
    todo = [p for p in batch.plans if not shard_is_current(shards_dir, p)]
    for plan in tqdm(todo, desc="write store", unit="shard", disable=not progress):
        rows = plan.clips.to_dict("records")
        shard_clips = [
            ShardClip(r, *media(r["clip_id"]), r.get("padded_seconds", 0.0)) for r in rows
        ]
        write_shard(shards_dir, plan.shard_id, plan.fingerprint, shard_clips, settings, codec)
    return {**merge_clip_store(root), "shards_built": len(todo)}


def convert_store(source: str | Path, target: str | Path, codec: TarCodec) -> dict:
    """Write the clips of an npy store as a WebDataset store with the same shards (no video
    decoding). Shards already converted are skipped, so an interrupted conversion resumes."""
    src = ClipStore(source)
    if src.format != StoreFormat.NPY:
        raise ValueError(f"{source} is already a {src.format} store")
    index = src.index
    columns = [c for c in index.columns if c in ("clip_id", *CLIP_META_COLUMNS, "padded_seconds")]
    # the source's shards, clip for clip: its index is the layout
    layout = index[["clip_id", "shard"]]
    with atomic_path(Path(target) / LAYOUT_FILE) as tmp:
        layout.to_parquet(tmp, index=False)
    summary = write_clip_store(
        target,
        index[columns],
        lambda cid: (src.audio(cid), src.frames(cid)),
        src.settings,
        shard_size=max(1, int(index.groupby("shard").size().max())) if len(index) else 1,
        codec=codec,
    )
    with atomic_path(Path(target) / QUARANTINE_FILE) as tmp:  # the source's rejected clips
        shutil.copyfile(src.root / QUARANTINE_FILE, tmp)
    return summary
