"""A full disk during a write: the write fails with a clear message ("no space left on device"
and the output's name), its temporary is removed, and the previous version of the output is
intact (``audioscope_kedro.atomic``: temporary name, then rename).

Two ways to fill a disk:

- **tmpfs**: a real 4 MiB tmpfs mounted for the test (``mount -t tmpfs``: root, or
  CAP_SYS_ADMIN), filled with a file until a few KiB are left. The writers meet a real ENOSPC,
  in whatever form they report it (torch: a RuntimeError without errno; numpy: an OSError
  without errno; soundfile and PyAV: their own errors). Skipped where mounting is not allowed.
- **injected**: no mount; ``open`` returns files whose ``write`` raises
  ``OSError(ENOSPC)`` once a byte budget is spent, part-way through the file. Covers the
  writers that write through Python file objects (checkpoints, shards, JSON reports); native
  writers (soundfile, PyAV, pyarrow) open files themselves, so ``separate`` is only in the
  tmpfs variant.

Writers covered: training checkpoints (``CheckpointStore``), the clip store's shards
(``write_shard``), reporting files (``tune_best_params.json`` through ``OptionalJSONDataset``,
``calibration.json`` through ``CalibrationDataset``), and ``audioscope separate``'s output
folder (tmpfs).
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from audioscope_kedro import command
from audioscope_kedro.atomic import STALE_MARK, DiskFullError, is_temporary
from audioscope_kedro.data.decode import DecodeSettings
from audioscope_kedro.data.store import ShardClip, write_shard
from audioscope_kedro.datasets.model_datasets import CalibrationDataset
from audioscope_kedro.datasets.optional_json import OptionalJSONDataset
from audioscope_kedro.evaluation.calibration import Calibration, OperatingPoint, PointKind
from audioscope_kedro.training.checkpoints import CheckpointStore
from tests.separate.helpers import train_release, write_video

DISK_BYTES = 4 << 20
LEFT_BYTES = 48 << 10  # what the filler leaves: less than any second version below needs


# --------------------------------------------------------------------------- the two disks


def _mount(folder: Path) -> str | None:
    """Mount a tmpfs of DISK_BYTES on ``folder``; None, or why it could not."""
    if shutil.which("mount") is None:
        return "no mount command"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    return None if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


class TmpfsDisk:
    """A real small file system; ``full()`` fills it up to ``LEFT_BYTES``."""

    kind = "tmpfs"

    def __init__(self, root: Path):
        self.root = root

    @contextmanager
    def full(self) -> Iterator[None]:
        st = os.statvfs(self.root)
        filler = self.root / "filler"
        with open(filler, "wb") as f:
            f.write(bytes(max(0, st.f_bavail * st.f_frsize - LEFT_BYTES)))
        try:
            yield
        finally:
            filler.unlink()


class _Capped(io.RawIOBase):
    """A binary file whose writes raise ENOSPC once the disk's budget is spent (the bytes
    that fit are written first, as a real file system does)."""

    def __init__(self, raw, disk: InjectedDisk, owner=None):
        self.raw, self.disk = raw, disk
        self.owner = owner  # the text file whose buffer ``raw`` is: closing it would close raw

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        room = max(0, self.disk.budget)
        self.raw.write(data[:room])
        self.disk.budget -= len(data)
        if len(data) > room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


class InjectedDisk:
    """``open`` under ``root`` in a write mode gives a :class:`_Capped` file while ``full()``."""

    kind = "injected"

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.root, self.monkeypatch = root, monkeypatch
        self.budget = 0

    @contextmanager
    def full(self) -> Iterator[None]:
        real = io.open
        self.budget = LEFT_BYTES

        def capped_open(file, mode="r", *args, **kwargs):
            handle = real(file, mode, *args, **kwargs)
            inside = isinstance(file, str | Path) and Path(file).is_relative_to(self.root)
            if not inside or not any(m in mode for m in "wax"):
                return handle
            if "b" in mode:
                # unbuffered and no fileno: numpy and torch write through .write, not the fd
                return _Capped(handle, self)
            encoding = kwargs.get("encoding") or "utf-8"
            capped = _Capped(handle.buffer, self, owner=handle)
            return io.TextIOWrapper(io.BufferedWriter(capped), encoding)

        with self.monkeypatch.context() as patch:
            patch.setattr(builtins, "open", capped_open)
            patch.setattr(io, "open", capped_open)
            yield


@pytest.fixture(params=["tmpfs", "injected"])
def disk(request, tmp_path, monkeypatch):
    root = tmp_path / "disk"
    root.mkdir()
    if request.param == "injected":
        yield InjectedDisk(root, monkeypatch)
        return
    why = _mount(root)
    if why is not None:
        pytest.skip(f"cannot mount a small tmpfs here ({why}): the injected variant runs")
    try:
        yield TmpfsDisk(root)
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


# ------------------------------------------------------------------------------- checks


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*") if is_temporary(p) or STALE_MARK in p.name]


def assert_full_disk_error(err: BaseException, output: Path) -> None:
    """The error is (or, through a Kedro dataset, is caused by) a :class:`DiskFullError`, and
    its message says the disk is full and names the output (or a file in it)."""
    chain, seen = [], err
    while seen is not None:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    assert any(isinstance(e, DiskFullError) for e in chain), repr(err)
    message = str(err)
    assert "no space left on device" in message and str(output) in message, message


def expect_full_disk(disk, folder: Path, output: Path, write: Callable[[], object]) -> None:
    """``write()`` on the full disk fails with the message, and leaves ``folder`` as it was."""
    before = snapshot(folder)
    with disk.full(), pytest.raises(Exception) as caught:  # noqa: B017 - checked below
        write()
    assert_full_disk_error(caught.value, output)
    assert leftovers(folder) == [], "the temporary of the failed write is still there"
    assert snapshot(folder) == before, "the previous outputs changed"


# -------------------------------------------------------------------------- the writers


def test_a_checkpoint_on_a_full_disk(disk):
    store = CheckpointStore(disk.root / "checkpoints")
    store.save(1, {"step": 1, "w": torch.arange(1000.0)})
    big = {"step": 2, "w": torch.ones(200_000)}  # 800 kB: more than is left
    expect_full_disk(
        disk, store.folder, store.folder / "step-0000002.pt", lambda: store.save(2, big)
    )
    [kept] = store.paths()
    assert kept.name == "step-0000001.pt" and torch.equal(store.latest()["w"], torch.arange(1000.0))


def _clips(n: int, samples: int, settings: DecodeSettings) -> list[ShardClip]:
    rng = np.random.default_rng(n)
    frames = np.zeros((4, settings.frame_height, settings.frame_width, 3), np.uint8)
    return [
        ShardClip(
            row={"clip_id": f"c{k}", "video_path": f"v{k}.mp4", "start_time": 0.0, "end_time": 1.0},
            audio=rng.standard_normal(samples).astype(np.float32),
            frames=frames,
        )
        for k in range(n)
    ]


def test_a_shard_on_a_full_disk(disk):
    settings = DecodeSettings(sample_rate=8000, fps=4.0, frame_height=16, frame_width=16)
    shards = disk.root / "shards"
    write_shard(shards, 0, "old", _clips(2, 8000, settings), settings)
    expect_full_disk(
        disk,
        shards,
        shards / "shard-00000",
        lambda: write_shard(shards, 0, "new", _clips(4, 80_000, settings), settings),
    )


def test_reporting_files_on_a_full_disk(disk):
    best = OptionalJSONDataset(str(disk.root / "tuned/tune_best_params.json"))
    best.save({"trial": 0, "value": 1.0})
    big = {"trial": 1, "value": 2.0, "params": {f"p{k}": "x" * 100 for k in range(2000)}}
    expect_full_disk(
        disk, disk.root / "tuned", disk.root / "tuned/tune_best_params.json", lambda: best.save(big)
    )
    assert best.load() == {"trial": 0, "value": 1.0}

    path = disk.root / "models/calibration.json"
    calibrations = CalibrationDataset(str(path))
    point = OperatingPoint(PointKind.THRESHOLD, 0.5)

    def calibration(targets: int) -> Calibration:
        return Calibration(
            point=point,
            target_suppression_db=15.0,
            reached=True,
            split="validate",
            model_fingerprint="abc",
            points_by_target={float(t): point for t in range(targets)},
        )

    calibrations.save(calibration(1))
    # a calibration.json of a few hundred kB
    expect_full_disk(disk, path.parent, path, lambda: calibrations.save(calibration(3000)))
    assert calibrations.load().model_fingerprint == "abc"


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return train_release(tmp_path_factory.mktemp("full_disk_model") / "model", steps=2)


def test_separate_on_a_full_disk(disk, release, tmp_path, capsys):
    if disk.kind != "tmpfs":
        pytest.skip("soundfile and PyAV open their files natively: only a real full disk")
    rng = np.random.default_rng(0)
    video = write_video(tmp_path / "clip.mp4", 0.1 * rng.standard_normal((1, 16000)), 8000)
    out = disk.root / "separated"
    argv = ["separate", str(video), "--model", str(release), "--out", str(out)]
    assert command.main(argv) == 0
    before = snapshot(out)
    long = write_video(tmp_path / "clip.mp4", 0.1 * rng.standard_normal((2, 160_000)), 8000)
    assert long == video  # the same input path: the same output folder, rewritten
    capsys.readouterr()
    with disk.full():
        code = command.main(argv)
    err = capsys.readouterr().err
    [folder] = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert code == 1 and "no space left on device" in err and str(folder) in err, err
    assert leftovers(out) == [], "the temporary output folder is still there"
    assert snapshot(out) == before, "the previous output folder changed"
