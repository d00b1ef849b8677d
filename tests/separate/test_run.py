"""``separate_file`` and ``audioscope separate`` end to end, with a model trained in the run:
real videos, generated inputs of odd formats, bad inputs, and the page in a real browser."""

from __future__ import annotations

import json
import shutil
import subprocess

import av
import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from audioscope_kedro.command import main
from audioscope_kedro.evaluation.calibration import OperatingPoint, PointKind
from audioscope_kedro.release import ReleasedModel
from audioscope_kedro.separate import SeparateOptions, output_folder, separate_file
from tests.separate.helpers import decoded_audio, video_packets, write_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
OUTPUTS = [
    "on_screen.wav",
    "off_screen.wav",
    "on_screen.mp4",
    "probabilities.csv",
    "spectrogram.png",
    "index.html",
    "separation.json",
]


def check_outputs(folder, video, num_sources=4):
    """Everything the issue asks of one output folder."""
    for name in OUTPUTS:
        assert (folder / name).is_file(), name
    for k in range(num_sources):
        assert (folder / "sources" / f"source_{k}.wav").is_file()
    x, rate = decoded_audio(video)
    on, on_rate = sf.read(folder / "on_screen.wav", always_2d=True, dtype="float32")
    off, off_rate = sf.read(folder / "off_screen.wav", always_2d=True, dtype="float32")
    assert on_rate == off_rate == rate  # the input's rate and channels, not the model's
    assert on.shape == off.shape == x.T.shape
    np.testing.assert_allclose(on + off, x.T, atol=1e-4)  # the split sums back to the input
    with av.open(str(folder / "on_screen.mp4")) as c:
        assert {s.type for s in c.streams} == {"audio", "video"}
        assert c.streams.audio[0].codec_context.name == "aac"
        assert c.streams.audio[0].codec_context.sample_rate == rate
    assert video_packets(folder / "on_screen.mp4") == video_packets(video)  # copied, not re-encoded
    table = pd.read_csv(folder / "probabilities.csv")
    assert list(table.columns[:3]) == ["source", "window_start", "window_end"]
    assert table["probability"].between(0, 1).all()
    assert set(table["source"]) == set(range(num_sources))
    return x, rate


@pytest.mark.slow
@pytest.mark.real_data
def test_every_real_video_with_audio(release_dir, shared_data, tmp_path):
    root = shared_data / "real_videos"
    labels = pd.read_csv(root / "labels.csv")
    videos = [
        root / p
        for p, label in zip(labels.video_path, labels.label, strict=True)
        if label != "no_audio"
    ]
    out = tmp_path / "out"
    code = main(
        [
            "separate",
            *map(str, videos),
            "--model",
            str(release_dir),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    for video in videos:
        folder = output_folder(out, video)
        x, rate = check_outputs(folder, video)
        meta = json.loads((folder / "separation.json").read_text())
        assert meta["samples"] == x.shape[1] and meta["sample_rate"] == rate
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left


def test_odd_formats_and_a_clip_shorter_than_a_window(release_dir, tmp_path):
    """22.05 kHz with 3 channels in Matroska (PCM), and 0.6 s of 48 kHz mono (one window)."""
    model = ReleasedModel.load(release_dir).model
    rng = np.random.default_rng(0)
    odd = write_video(
        tmp_path / "odd.mkv", 0.1 * rng.standard_normal((3, 22050 * 3)), 22050,
        container="matroska", audio_codec="pcm_f32le",
    )  # fmt: skip
    short = write_video(tmp_path / "short.mp4", 0.1 * rng.standard_normal((1, 28800)), 48000)
    options = SeparateOptions(OperatingPoint(PointKind.THRESHOLD, 0.5))
    for video in (odd, short):
        report = separate_file(model, video, tmp_path / "out", options)
        x, _ = decoded_audio(video)
        on, _ = sf.read(report.folder / "on_screen.wav", always_2d=True)
        assert on.shape == x.T.shape
        np.testing.assert_allclose(
            on + sf.read(report.folder / "off_screen.wav", always_2d=True)[0], x.T, atol=1e-4
        )
        assert video_packets(report.folder / "on_screen.mp4") == video_packets(video)
    assert separate_file(model, short, tmp_path / "out", options).windows == 1


def test_a_rotated_video_is_seen_upright_and_keeps_its_rotation(release_dir, tmp_path):
    """A phone's portrait video: landscape frames with a display rotation. The model sees the
    frames as a player shows them (the white left quarter turned to the bottom by a quarter
    turn counter-clockwise), and the remuxed video keeps the rotation."""
    model = ReleasedModel.load(release_dir).model
    rng = np.random.default_rng(0)
    video = write_video(
        tmp_path / "portrait.mp4", 0.1 * rng.standard_normal((1, 16000)), 8000, rotation=90
    )
    seen = []

    def separator(windows):
        seen.extend(w.frames for w in windows)
        n = len(windows)
        sources = np.stack([np.stack([w.mixture / 4] * 4) for w in windows])
        return sources, np.zeros((n, 4), np.float32)

    options = SeparateOptions(OperatingPoint(PointKind.THRESHOLD, 0.5))
    report = separate_file(model, video, tmp_path / "out", options, separator=separator)
    frames = np.concatenate(seen).astype(float)  # [F, H, W, 3] at the model's 32x32
    rows = frames[..., 0].mean(axis=(0, 2))  # brightness per row, over frames and columns
    assert rows[-4:].min() > 250 and rows[:-12].max() < 250  # white at the bottom only
    with av.open(str(report.folder / "on_screen.mp4")) as c:
        first = next(c.decode(video=0))
        assert first.rotation == 90
    assert video_packets(report.folder / "on_screen.mp4") == video_packets(video)


def test_a_minute_has_no_audible_seam(release_dir, tmp_path):
    """60 s through the real model: the on-screen track has no jump at any seam larger than the
    input's own sample-to-sample variation."""
    model = ReleasedModel.load(release_dir).model
    t = np.arange(60 * 8000) / 8000
    audio = (0.3 * np.sin(2 * np.pi * 180 * t) + 0.2 * np.sin(2 * np.pi * 260 * t)).astype(
        np.float32
    )
    video = write_video(
        tmp_path / "minute.mkv", audio[None], 8000, container="matroska", audio_codec="pcm_f32le"
    )
    report = separate_file(
        model,
        video,
        tmp_path / "out",
        SeparateOptions(OperatingPoint(PointKind.THRESHOLD, 0.5)),
    )
    on, _ = sf.read(report.folder / "on_screen.wav", dtype="float32")
    assert on.size == audio.size and report.windows == 59
    seams = np.arange(1, 60) * 8000
    own = np.abs(np.diff(audio)).max()
    assert np.abs(on[seams] - on[seams - 1]).max() <= own


def test_two_inputs_of_one_name_do_not_collide(release_dir, tmp_path):
    rng = np.random.default_rng(1)
    a = write_video(
        (tmp_path / "a").mkdir() or tmp_path / "a" / "clip.mp4",
        0.1 * rng.standard_normal((1, 8000)),
        8000,
    )
    b = write_video(
        (tmp_path / "b").mkdir() or tmp_path / "b" / "clip.mp4",
        0.1 * rng.standard_normal((1, 8000)),
        8000,
    )
    out = tmp_path / "out"
    assert (
        main(
            [
                "separate",
                str(tmp_path / "a"),
                str(b),
                "--model",
                str(release_dir),
                "--out",
                str(out),
                "--no-video",
                "--format",
                "flac",
            ]
        )
        == 0
    )
    folders = sorted(p for p in out.iterdir())
    assert len(folders) == 2 and all(p.name.startswith("clip-") for p in folders)
    for folder, video in zip(
        sorted([output_folder(out, a), output_folder(out, b)]), (a, b), strict=True
    ):
        assert (folder / "on_screen.flac").is_file() and not (folder / "on_screen.mp4").exists()
        x, _ = decoded_audio(video)
        on, _ = sf.read(folder / "on_screen.flac", always_2d=True)
        assert on.shape == x.T.shape


def test_bad_inputs_are_reported_and_the_batch_goes_on(release_dir, tmp_path, capsys):
    rng = np.random.default_rng(2)
    good = write_video(tmp_path / "good.mp4", 0.1 * rng.standard_normal((2, 16000)), 16000)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(b"not a video at all" * 100)
    data = good.read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])
    silent_video = tmp_path / "no_audio.mp4"
    with av.open(str(silent_video), "w") as c:
        v = c.add_stream("libx264", rate=4)
        v.width = v.height = 16
        v.pix_fmt = "yuv420p"
        for i in range(4):
            f = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), "rgb24")
            f.pts = i
            c.mux(v.encode(f))
        c.mux(v.encode())
    audio_only = tmp_path / "audio_only.wav"
    sf.write(audio_only, 0.1 * rng.standard_normal(8000), 8000)
    (tmp_path / "no_videos_here").mkdir()
    bad = {
        "empty.mp4": "zero bytes",
        "garbage.mp4": "corrupt",
        "truncated.mp4": "corrupt",
        "no_audio.mp4": "no audio stream",
        "audio_only.wav": "no video stream",
        "missing.mp4": "missing file",
        "no_videos_here": "no video files",
    }
    out = tmp_path / "out"
    args = [str(tmp_path / name) for name in bad] + [str(good)]
    code = main(["separate", *args, "--model", str(release_dir), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    for name, reason in bad.items():
        lines = [line for line in captured.err.splitlines() if name in line]
        assert lines and reason in lines[0], (name, captured.err)
    assert "7 failed" in captured.err
    assert [p.name for p in out.iterdir()] == [
        output_folder(out, good).name
    ]  # nothing half-written


@pytest.mark.parametrize(
    "extra",
    [
        ["--format", "mp3"],
        ["--threshold", "0.5", "--target-suppression", "15"],
        ["--window", "2", "--hop", "3"],
        ["--target-suppression", "12"],  # the calibration has 6 and 15 dB
        ["--threshold", "1.5"],
    ],
)
def test_usage_errors_exit_2(release_dir, tmp_path, extra):
    video = write_video(tmp_path / "v.mp4", np.zeros((1, 8000), np.float32) + 0.01, 8000)
    code = main(
        ["separate", str(video), "--model", str(release_dir), "--out", str(tmp_path / "o"), *extra]
    )
    assert code == 2 and not (tmp_path / "o").exists()


def test_a_missing_model_folder_is_a_usage_error(tmp_path):
    assert (
        main(["separate", "x.mp4", "--model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    )


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium: install Debian's `chromium` (apt-get install chromium) to run it",
)
def test_the_page_plays_in_a_headless_browser(release_dir, tmp_path):
    rng = np.random.default_rng(3)
    video = write_video(
        tmp_path / "page.mp4", 0.1 * rng.standard_normal((2, 3 * 16000)), 16000, size=32
    )
    model = ReleasedModel.load(release_dir).model
    report = separate_file(model, video, tmp_path / "out", SeparateOptions(OperatingPoint()))
    page = (report.folder / "index.html").as_uri()
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    shot = tmp_path / "page.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1100,1800", page],
        check=True,
        capture_output=True,
        timeout=120,
    )
    run = subprocess.run(
        [*common, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=8000", "--dump-dom", page],
        check=True, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    status = run.stdout.split('<pre id="media-status">')[1].split("</pre>")[0]
    media = {m["id"]: m for m in json.loads(status.replace("&quot;", '"'))}
    assert set(media) == {"video", "on", "off"}
    for m in media.values():
        assert m["error"] is None and 2.9 < m["duration"] < 3.2, m
    assert "data:image/png;base64," in run.stdout and 'name="track"' in run.stdout
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] >= 1800 and pixels[..., :3].std() > 0.05  # not a blank page


def test_evaluate_asks_for_at_least_one_example(release_dir, tmp_path, capsys):
    """`--examples 0` is a usage error before anything is read (it used to crash in range())."""
    args = ["--video-root", str(tmp_path), "--on-mom", "on.csv", "--off-mom", "off.csv"]
    code = main(
        [
            "evaluate",
            *args,
            "--model",
            str(release_dir),
            "--out",
            str(tmp_path / "o"),
            "--examples",
            "0",
        ]
    )
    assert code == 2 and "--examples must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
