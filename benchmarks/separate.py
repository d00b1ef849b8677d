"""Real-time factor and peak memory of ``audioscope separate`` on this CPU.

    .venv/bin/python benchmarks/separate.py                  # real videos + generated 10 min
    .venv/bin/python benchmarks/separate.py --rss 1 10 60    # peak RSS against input length

The default model (``AudioScopeConfig()``: 16 kHz, 4 sources, 8 fps, 64x64 frames; untrained
weights: the cost does not depend on them), CPU, default windows (5 s every 2.5 s). Each input
is timed split into decode / model / split / remux / files (from ``SeparationReport.timings``;
remux: the video packets copied and the on-screen AAC encoded and muxed; files: the stems, the
CSV, the figures and the page), and its decode + remux compared with what the ``ffmpeg``
command line does for the same decode and remux, run by PyAV's bundled
FFmpeg libraries in the same process (every audio and video frame decoded, the video packets
copied into an MP4 with the audio encoded as AAC by the same "fast" coder as the command:
``ffmpeg -i IN -c:v copy -c:a aac -aac_coder fast OUT``),
and by Debian's ``ffmpeg`` binary when one is installed. Peak RSS is measured in a fresh
process per length on a generated video (64x64 H.264 at 8 fps, 44.1 kHz stereo AAC).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from audioscope_kedro.evaluation.calibration import RAW
from audioscope_kedro.models.audioscope import AudioScope, AudioScopeConfig
from audioscope_kedro.separate import SeparateOptions, separate_file

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real_videos"
STAGES = ("decode", "model", "split", "remux", "files")  # the fields of separate's Timings


def generate(path: Path, minutes: float, rate: int = 44100, fps: int = 8, size: int = 64) -> Path:
    """A cheap long video, written in a stream: a moving gradient and, in stereo, two tones
    with noise bursts (pure tones are an atypical case for the AAC encoder, whose "fast" coder
    is slower on them than its default one and faster on every real soundtrack measured)."""
    seconds = minutes * 60
    with av.open(str(path), "w", format="mp4") as c:
        v = c.add_stream("libx264", rate=fps)
        v.width = v.height = size
        v.pix_fmt = "yuv420p"
        v.options = {"preset": "ultrafast", "threads": "1"}
        a = c.add_stream("aac", rate=rate, layout="stereo")
        ramp = np.linspace(0, 255, size, dtype=np.float32)
        block = rate // fps
        noise = np.random.default_rng(0)
        for i in range(int(seconds * fps)):
            img = ((ramp[None, :, None] + 8 * i) % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.repeat(np.repeat(img, size, 0), 3, 2), "rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            c.mux(v.encode(frame))
            t = (i * block + np.arange(block)) / rate
            audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 620 * t)])
            audio += (0.1 * (i % 16 < 4)) * noise.standard_normal(audio.shape)  # 0.5 s bursts
            af = av.AudioFrame.from_ndarray(
                audio.astype(np.float32), format="fltp", layout="stereo"
            )
            af.sample_rate, af.pts, af.time_base = rate, i * block, Fraction(1, rate)
            c.mux(a.encode(af))
        c.mux(v.encode())
        c.mux(a.encode())
    return path


def pyav_decode_remux(src: Path, dst: Path) -> float:
    """Seconds for what ``ffmpeg -i src -c:v copy -c:a aac -aac_coder fast dst`` does, with PyAV's FFmpeg, plus
    decoding every video frame (the command decodes them for the model)."""
    t0 = time.perf_counter()
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream_from_template(vin)
        aout = out.add_stream("aac", rate=ain.codec_context.sample_rate, layout=ain.layout.name)
        aout.options = {"aac_coder": "fast"}  # as RemuxWriter
        for packet in inp.demux(vin, ain):
            if packet.dts is None:
                continue
            frames = packet.decode()
            if packet.stream is vin:
                packet.stream = vout
                out.mux(packet)
            else:
                for frame in frames:
                    frame.pts = None
                    out.mux(aout.encode(frame))
        out.mux(aout.encode(None))
    return time.perf_counter() - t0


def ffmpeg_cli(src: Path, dst: Path) -> float | None:
    """Seconds of Debian's ``ffmpeg`` decoding everything and remuxing, if installed."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    t0 = time.perf_counter()
    subprocess.run(
        [exe, "-v", "error", "-y", "-threads", "2", "-i", str(src), "-c:v", "copy", "-c:a", "aac",
         "-aac_coder", "fast", str(dst), "-f", "null", "-"],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - t0


def default_model() -> AudioScope:
    torch.manual_seed(0)
    return AudioScope(AudioScopeConfig()).eval()


def time_one(model: AudioScope, video: Path, work: Path) -> dict:
    report = separate_file(model, video, work / "out", SeparateOptions(RAW, batch_size=4))
    t = report.timings
    baseline = pyav_decode_remux(video, work / "baseline.mp4")
    cli = ffmpeg_cli(video, work / "cli.mp4")
    shutil.rmtree(report.folder)
    return {
        "name": video.name,
        "seconds": report.duration,
        "rtf": t.total / report.duration,
        **{stage: getattr(t, stage) / report.duration for stage in STAGES},
        "pyav_decode_remux": baseline / report.duration,
        "ffmpeg_cli": None if cli is None else cli / report.duration,
    }


def print_row(r: dict) -> None:
    ours = r["decode"] + r["remux"]
    cli = (
        "n/a"
        if r["ffmpeg_cli"] is None
        else f"{r['ffmpeg_cli']:.4f} ({ours / r['ffmpeg_cli']:.2f}x)"
    )
    print(
        f"{r['name'][:38]:38s} {r['seconds']:7.1f} s | RTF {r['rtf']:.4f} = "
        + " + ".join(f"{stage} {r[stage]:.4f}" for stage in STAGES)
        + f" | decode+remux {ours:.4f}, alone: PyAV"
        f" {r['pyav_decode_remux']:.4f} ({ours / r['pyav_decode_remux']:.2f}x),"
        f" ffmpeg CLI {cli}",
        flush=True,
    )


def child(video: str) -> None:
    """Run in a fresh process: separate one video, print peak RSS and timings as JSON."""
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as work:
        report = separate_file(default_model(), Path(video), Path(work), SeparateOptions(RAW))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rtf = report.timings.total / report.duration
    print(json.dumps({"seconds": report.duration, "peak_rss": peak, "rtf": rtf}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rss", nargs="*", type=float, help="minutes of generated input")
    parser.add_argument("--minutes", type=float, default=10.0, help="generated video for the RTF")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.rss:
            print("peak RSS against input length (fresh process each, default model, CPU)")
            for minutes in args.rss:
                video = generate(work / f"gen_{minutes:g}min.mp4", minutes)
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(video)],
                    check=True, capture_output=True, text=True,
                )  # fmt: skip
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(
                    f"{minutes:5g} min | peak RSS {r['peak_rss'] / 2**20:7.1f} MiB | RTF {r['rtf']:.4f}",
                    flush=True,
                )
                video.unlink()
            return
        model = default_model()
        rows = []
        if REAL.exists():
            for video in sorted(REAL.rglob("*.mp4")):
                with av.open(str(video)) as c:
                    if not c.streams.audio:
                        continue
                rows.append(time_one(model, video, work))
                print_row(rows[-1])
            total = sum(r["seconds"] for r in rows)
            timed = ["rtf", *STAGES, "pyav_decode_remux"]
            if all(r["ffmpeg_cli"] is not None for r in rows):
                timed.append("ffmpeg_cli")
            # time-weighted: the real-time factor of the whole batch, not the mean of ratios
            mean = {k: sum(r[k] * r["seconds"] for r in rows) / total for k in timed}
            print_row(
                {"name": f"all {len(rows)} real videos", "seconds": total, "ffmpeg_cli": None}
                | mean
            )
        video = generate(work / "generated.mp4", args.minutes)
        print_row(time_one(model, video, work))


if __name__ == "__main__":
    main()
