"""Every case of the media corpus (tests/reliability/media_corpus.py) through ingest and through
``audioscope separate``, each checked for exactly the behaviour that docs/reliability.md gives
it: decoded to the generator's truth or quarantined with the file and reason (ingest); separated
with the output invariants, or refused naming the file and reason while the other inputs go on
(separate)."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import pwd
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from audioscope_kedro import command
from audioscope_kedro.data.decode import BadClipError
from audioscope_kedro.data.store import (
    ClipStore,
    ShardBatch,
    build_clip_store,
    clip_id,
    plan_shards,
)
from audioscope_kedro.datasets.clip_store_dataset import ClipStoreDataset
from audioscope_kedro.datasets.lists_dataset import AudioScopeListsDataset
from audioscope_kedro.evaluation.calibration import OperatingPoint, PointKind
from audioscope_kedro.pipelines.ingest import create_pipeline
from audioscope_kedro.release import ReleasedModel
from audioscope_kedro.separate import SeparateOptions, output_folder, separate_file
from tests.helpers import TINY_DECODE, conf_parameters, run_in_memory
from tests.reliability.media_corpus import (
    BY_NAME,
    CASES,
    HOUR_RATE,
    HOUR_SECONDS,
    RUNNING_AS_ROOT,
    TONE_HZ,
    Corpus,
    IngestOutcome,
    MediaCase,
    SeparateOutcome,
    Truth,
    generate,
    hour_amplitude,
    in_batch,
    read_input_audio,
)
from tests.separate.helpers import video_packets

SEPARATE_CASES = [
    c for c in CASES if c.separate is not SeparateOutcome.NOT_APPLICABLE and "long" not in c.tags
]


def by_id(cases: list[MediaCase]) -> list:
    return [pytest.param(c, id=c.name) for c in cases]


# ------------------------------------------------------------------------------------ ingest


def check_decoded(audio: np.ndarray, frames: np.ndarray, truth: Truth, case: MediaCase) -> None:
    """A clip as ingest stores it, against what the generator wrote."""
    s = TINY_DECODE
    start, end = case.clip
    assert audio.dtype == np.float32 and audio.shape == (s.num_samples(end - start),)
    assert np.isfinite(audio).all()
    spectrum = np.abs(np.fft.rfft(audio))
    bin_hz = s.sample_rate / audio.size
    assert abs(spectrum.argmax() * bin_hz - TONE_HZ) <= 2 * bin_hz
    # a sine's peak from its RMS: the mono downmix (mean of the channels) at its known level
    assert np.sqrt(2 * np.mean(audio.astype(np.float64) ** 2)) == pytest.approx(
        truth.amplitude, rel=0.1
    )
    assert frames.dtype == np.uint8
    assert frames.shape == (s.num_frames(end - start), s.frame_height, s.frame_width, 3)
    if truth.rotated:  # the white left quarter of the stored frames is at the bottom, upright
        rows = frames[..., 0].astype(float).mean(axis=(0, 2))
        assert rows[-3:].min() > 250 and rows[:-6].max() < 250
    else:  # each frame is the written frame nearest to its time
        expected = truth.levels_at(start, len(frames), s.fps)
        np.testing.assert_allclose(frames.mean(axis=(1, 2, 3)), expected, atol=6)


def check_quarantined(store: ClipStore, path: str, case: MediaCase) -> None:
    bad = store.quarantine[store.quarantine["video_path"] == path]
    assert len(bad) == 1, store.quarantine
    row = bad.iloc[0]
    assert case.quarantine_reason in row["reason"], row["reason"]
    assert (row["start_time"], row["end_time"]) == case.clip
    assert path not in set(store.index["video_path"])


@pytest.mark.parametrize("case", by_id(CASES))
def test_ingest(case: MediaCase, media_corpus: Corpus, media_store: ClipStore, request):
    """One ingest over the whole corpus: each clip decoded to its truth, or quarantined with
    its file, times and reason (the others of its shard and batch are in the store)."""
    if "permission" in case.tags and RUNNING_AS_ROOT:
        store = ingest_as_another_user(case, request.getfixturevalue("world_readable"))
        check_quarantined(store, media_corpus.written[case.name].path, case)
        return
    written = media_corpus.written[case.name]
    if case.ingest is IngestOutcome.QUARANTINED:
        check_quarantined(media_store, written.path, case)
        return
    key = clip_id(written.path, *case.clip)
    check_decoded(media_store.audio(key), media_store.frames(key), written.truth, case)


def test_the_ingest_pipeline_goes_on_past_every_bad_clip(media_corpus: Corpus, tmp_path):
    """The whole `ingest` pipeline (the project's list and clip-store datasets, two decoding
    processes) on one list naming every file of the corpus: the batch ends, the good clips are
    in the index, and quarantine.csv names every bad one with its reason."""
    cases = [c for c in CASES if in_batch(c) or "long" in c.tags]
    (tmp_path / "lists").mkdir()
    # a list as the release writes them: no header
    media_corpus.clip_list(cases).to_csv(
        tmp_path / "lists" / "filtered_train_clips.csv", header=False, index=False
    )
    params = conf_parameters("test")
    inputs = {
        "audioscope_lists": AudioScopeListsDataset(str(tmp_path / "lists"), prefix="filtered"),
        "params:ingest": {
            **params["ingest"],
            "video_root": str(media_corpus.root),
            "num_workers": 2,
        },
        "params:clip_seconds": params["clip_seconds"],
        "clip_store": ClipStoreDataset(str(tmp_path / "store")),
    }
    summary = run_in_memory(create_pipeline(), inputs)["ingest_summary"]
    decoded = [c for c in cases if c.ingest is IngestOutcome.DECODED]
    rejected = [c for c in cases if c.ingest is IngestOutcome.QUARANTINED]
    assert summary["clips_ingested"] == len(decoded)
    assert summary["clips_quarantined"] == len(rejected)
    store = ClipStore(tmp_path / "store")
    assert set(store.index["video_path"]) == {media_corpus.written[c.name].path for c in decoded}
    on_disk = pd.read_csv(tmp_path / "store" / "quarantine.csv")
    assert list(on_disk.columns) == ["video_path", "start_time", "end_time", "reason"]
    for case in rejected:
        check_quarantined(store, media_corpus.written[case.name].path, case)
    for case in decoded:  # the same clips as the session's store, decoded in worker processes
        written = media_corpus.written[case.name]
        key = clip_id(written.path, *case.clip)
        check_decoded(store.audio(key), store.frames(key), written.truth, case)


# ---------------------------------------------------------------------------------- separate


def check_separated(folder: Path, video: Path) -> None:
    """Everything a separation of ``video`` must hold, whatever its format."""
    x, rate = read_input_audio(video)
    on, on_rate = sf.read(folder / "on_screen.wav", always_2d=True, dtype="float32")
    off, off_rate = sf.read(folder / "off_screen.wav", always_2d=True, dtype="float32")
    assert on_rate == off_rate == rate  # the input's rate and channels, not the model's
    assert on.shape == off.shape == x.T.shape
    assert np.isfinite(on).all() and np.isfinite(off).all()
    np.testing.assert_allclose(on + off, x.T, atol=1e-4)  # the split sums back to the input
    remuxed = [
        p for p in folder.iterdir() if p.stem == "on_screen" and p.suffix in (".mp4", ".mkv")
    ]
    assert len(remuxed) == 1, sorted(folder.iterdir())
    with av.open(str(remuxed[0])) as c:
        audio = c.streams.audio[0].codec_context
        assert (audio.name, audio.sample_rate, audio.channels) == ("aac", rate, x.shape[0])
    assert video_packets(remuxed[0]) == video_packets(video)  # copied, not re-encoded
    meta = json.loads((folder / "separation.json").read_text())
    assert (meta["samples"], meta["sample_rate"], meta["channels"]) == (x.shape[1], rate, len(x))
    table = pd.read_csv(folder / "probabilities.csv")
    assert len(table) and table["probability"].between(0, 1).all()


def failure_lines(stderr: str, video: Path) -> list[str]:
    """The lines of the command's closing failure list that name ``video``."""
    listed = stderr.split(" failed:\n", 1)[-1] if " failed:\n" in stderr else ""
    return [line.strip() for line in listed.splitlines() if line.strip().startswith(f"{video}: ")]


@pytest.mark.parametrize("case", by_id(SEPARATE_CASES))
def test_separate(case: MediaCase, media_corpus: Corpus, media_separated, request):
    """One `audioscope separate` over every file of the corpus: each separated with the output
    invariants, or named with its reason in the failure list and given no output folder."""
    video = media_corpus.path(case)
    if "permission" in case.tags and RUNNING_AS_ROOT:
        separate_as_another_user(case, request.getfixturevalue("world_readable"), request)
        return
    run = media_separated
    folder = output_folder(run.out, video)
    if case.separate is SeparateOutcome.SEPARATED:
        assert not failure_lines(run.stderr, video)
        check_separated(folder, video)
    else:
        lines = failure_lines(run.stderr, video)
        assert len(lines) == 1 and case.reason in lines[0], run.stderr
        assert not folder.exists()


def test_separate_batch_exit_code_and_leftovers(media_separated):
    """The command went through every input, said how many failed, exited 1, and left no
    temporary folder behind."""
    run = media_separated
    refused = [c for c in SEPARATE_CASES if in_batch(c) and c.separate is SeparateOutcome.REFUSED]
    folders = sum(c.name == "folder" for c in refused)  # walked, no video in it: not counted
    found = len(run.inputs) - folders
    done = found - (len(refused) - folders)
    assert run.code == 1
    assert f"separated {done} of {found} video(s)" in run.stdout
    assert f"{len(refused)} failed:" in run.stderr
    assert len(list(run.out.iterdir())) == done
    assert not [p for p in run.out.iterdir() if p.name.startswith(".")]


def test_an_unexpected_error_does_not_stop_the_other_inputs(
    media_corpus: Corpus, media_release, tmp_path, monkeypatch, capsys
):
    """An error that is no BadClipError (an encoder's or PyAV's own, as a 7.1 soundtrack once
    raised in the remuxer) is named with its input, and the next input is still separated."""
    broken = media_corpus.path(BY_NAME["channels_2"])
    good = media_corpus.path(BY_NAME["rate_8000"])
    real = command.separate_file

    def separate_file_failing_once(model, video, *args, **kwargs):
        if video == broken:
            raise IndexError("index 8 is out of bounds for axis 0 with size 8")
        return real(model, video, *args, **kwargs)

    monkeypatch.setattr(command, "separate_file", separate_file_failing_once)
    out = tmp_path / "out"
    args = [str(broken), str(good), "--model", str(media_release), "--out", str(out)]
    assert command.main(["separate", *args, "--no-video", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert failure_lines(err, broken) == [
        f"{broken}: IndexError: index 8 is out of bounds for axis 0 with size 8"
    ]
    assert [p.name for p in out.iterdir()] == [output_folder(out, good).name]


def test_nan_and_inf_never_reach_the_model(media_corpus: Corpus, media_release, tmp_path):
    """A file whose float samples hold NaN or inf is refused before any window of it is given
    to the separator, with the time of the first bad sample, and leaves no output folder."""
    model = ReleasedModel.load(media_release).model
    seen: list[np.ndarray] = []

    def spy(windows):
        seen.extend(w.mixture for w in windows)
        return np.stack([np.stack([w.mixture] * 4) / 4 for w in windows]), np.zeros(
            (len(windows), 4)
        )

    options = SeparateOptions(OperatingPoint(PointKind.THRESHOLD, 0.5), video=False)
    for name, at in (("nan_samples", "0.50 s"), ("inf_samples", "1.00 s")):
        with pytest.raises(BadClipError, match=f"NaN/inf audio samples \\(first at {at}\\)"):
            separate_file(model, media_corpus.path(BY_NAME[name]), tmp_path, options, separator=spy)
    assert all(np.isfinite(m).all() for m in seen)
    assert not list(tmp_path.iterdir())


def test_nan_from_the_model_is_never_written(media_corpus: Corpus, media_release, tmp_path):
    """Finite input, non-finite model output (a model or device fault): the input fails with
    a message saying where, and no output folder appears."""
    model = ReleasedModel.load(media_release).model

    def broken(windows):
        sources = np.stack([np.stack([w.mixture] * 4) / 4 for w in windows])
        sources[:, 2, 100] = np.nan
        return sources, np.zeros((len(windows), 4), np.float32)

    options = SeparateOptions(OperatingPoint(PointKind.THRESHOLD, 0.5), video=False)
    video = media_corpus.path(BY_NAME["rate_8000"])
    with pytest.raises(RuntimeError, match="model gave NaN/inf for the windows from 0.00 s"):
        separate_file(model, video, tmp_path, options, separator=broken)
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- the long input


def peak_rss_growth(work) -> int | None:
    """Bytes by which this process's peak resident memory grew while ``work()`` ran (Linux:
    the peak is reset through /proc/self/clear_refs); None where that cannot be measured."""

    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        work()
        return None
    before = status("VmRSS")
    work()
    return status("VmHWM") - before


def test_an_hour_is_separated_in_a_stream(media_corpus: Corpus, media_release, tmp_path):
    """The one-hour input end to end in 1800 windows of 2 s: every sample written, in its
    place, summing to the input, with memory far below one track of the hour.

    A fixed separator stands in for the model (source 0 = 0.7 x the window's mixture, judged
    on-screen): the reader, windows, stitching and writers are what an hour tests, and even
    the tiny model would take minutes for 1800 windows on this CPU. Windows without overlap
    (``--hop`` = ``--window``) pass each sample through the split once, half the time of the
    default hop, whose cross-fades the other separate tests cover."""
    video = media_corpus.path(BY_NAME["one_hour"])
    model = ReleasedModel.load(media_release).model

    def separator(windows):
        sources = np.stack([np.stack([0.7 * w.mixture, 0.3 * w.mixture]) for w in windows])
        return sources, np.tile(np.float32([4.0, -4.0]), (len(windows), 1))

    point = OperatingPoint(PointKind.THRESHOLD, 0.5)
    options = SeparateOptions(point, 2.0, 2.0, audio_format="flac", video=False)
    reports = []
    growth = peak_rss_growth(
        lambda: reports.append(separate_file(model, video, tmp_path, options, separator=separator))
    )
    report = reports[0]
    assert report.windows == HOUR_SECONDS // 2 and report.duration == HOUR_SECONDS
    one_track = HOUR_SECONDS * HOUR_RATE * 4  # float32 bytes of the hour, mono
    print(f"peak RSS growth {growth and growth / 2**20:.1f} MiB; timings {report.timings}")
    if growth is not None:
        assert growth < one_track / 2, f"peak memory grew by {growth / 2**20:.0f} MiB"
    wave = np.sin(2 * np.pi * TONE_HZ * np.arange(HOUR_RATE) / HOUR_RATE)
    on_blocks = sf.blocks(
        str(report.folder / "on_screen.flac"), blocksize=HOUR_RATE, dtype="float32"
    )
    off_blocks = sf.blocks(
        str(report.folder / "off_screen.flac"), blocksize=HOUR_RATE, dtype="float32"
    )
    seconds = 0
    for second, (on, off) in enumerate(zip(on_blocks, off_blocks, strict=True)):
        expected = hour_amplitude(second) * wave  # 16-bit input: within 2^-15
        np.testing.assert_allclose(on + off, expected, atol=1e-4, err_msg=f"second {second}")
        seconds += 1
        if second % 600 == 300:  # the mask gives on-screen its 0.7 share, also deep in the hour
            assert np.sqrt(np.mean(on**2) / np.mean(expected**2)) == pytest.approx(0.7, abs=0.02)
    assert seconds == HOUR_SECONDS


# --------------------------------------------------------------- file modes: as another user


def as_another_user(work, *args):
    """``work(*args)`` in a forked child that has dropped root for the user ``nobody``, its
    result sent back: root reads a file whatever its mode, so a file that its user may not read
    needs a user that modes apply to. (A fork, not a new interpreter: this one lives under
    /root, which ``nobody`` may not enter; the modules are already imported.)"""
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root, and no user 'nobody' to read a mode-000 file as")
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)

    def child():
        try:
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            torch.set_num_threads(1)  # no OpenMP team of the parent's in a forked child
            send.send(("ok", work(*args)))
        except BaseException as err:  # noqa: BLE001 - reported to the parent, which fails
            send.send(("error", f"{type(err).__name__}: {err}"))

    process = ctx.Process(target=child)
    process.start()
    ready = receive.poll(120)
    status, value = receive.recv() if ready else ("error", "no answer in 120 s")
    process.join(10)
    if process.is_alive():
        process.kill()
    if status == "error" and "Operation not permitted" in value:
        pytest.skip(f"cannot switch to another user here ({value})")
    assert status == "ok", value
    return value


def _ingest_one(folder: Path, table: pd.DataFrame) -> None:
    plans = plan_shards(table, str(folder), TINY_DECODE, 8)
    build_clip_store(ShardBatch(plans, 1, TINY_DECODE), folder / "store")


def ingest_as_another_user(case: MediaCase, folder: Path) -> ClipStore:
    corpus = generate(folder, [case])
    as_another_user(_ingest_one, folder, corpus.clip_table([case]))
    return ClipStore(folder / "store")


def _separate_command(*args: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = command.main(["separate", *args])
    return code, stdout.getvalue(), stderr.getvalue()


def separate_as_another_user(case: MediaCase, folder: Path, request) -> None:
    """The command as another user on the unreadable file: named with its reason, no output
    folder, exit code 1 (the batch run shows that the other inputs go on)."""
    model = folder / "model"
    shutil.copytree(request.getfixturevalue("media_release"), model)
    bad = folder / case.make(folder).path
    out = folder / "out"
    args = [str(bad), "--model", str(model), "--out", str(out), "--device", "cpu"]
    code, _, stderr = as_another_user(_separate_command, *args)
    assert code == 1, stderr
    lines = failure_lines(stderr, bad)
    assert len(lines) == 1 and case.reason in lines[0], stderr
    assert not output_folder(out, bad).exists()
