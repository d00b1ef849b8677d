"""Real videos with human labels: what a trained model keeps on screen.

    .venv/bin/python benchmarks/real_videos.py --model DIR [--videos ../shared/data/real_videos]
        [--threshold P | --target-suppression DB] [--json OUT] [--plot PNG] [--keep DIR]

Separates every clip of ``<videos>/labels.csv`` (``video_path,start_time,end_time,label,note``)
with ``audioscope separate``'s library (:func:`audioscope_kedro.separate.separate_file`, at the
model's saved calibration unless told otherwise) and prints:

- per clip and per label (on-screen only, off-screen only, mixed), the **share of energy kept
  on screen** over the labelled span: ``E(on) / (E(on) + E(off))`` of the two stems at the
  input's rate and channels (they sum to the input);
- the **margin**: mean share of the on-screen-only clips minus that of the off-screen-only
  ones, with a 95% bootstrap interval (each group resampled on its own; with a single
  off-screen-only clip the interval only reflects the spread of the on-screen-only ones);
- on the three-speaker videos (``vasp_3speakers/combine00N.mp4``: three visible talkers, the
  soundtrack is exactly half the sum of ``00N_{left,middle,right}.wav``): the on-screen
  estimate's SI-SNR against the sum of the three talkers (everything is on screen, so the
  ideal keeps the whole mixture; SI-SNRi against the mixture itself is therefore ~0 at best),
  and for each talker the best SI-SNR among the model's separated sources (how well the
  separator isolates one voice) with its improvement over the mixture;
- the clips the tool refuses (a ``no_audio`` row is a bad-input case), with the reason;
- **swapped pictures** (``--swaps K``, default 3): each on-screen-only clip's soundtrack is
  remuxed under the pictures of K other on-screen-only clips (cyclic shifts of the list), which
  makes every sound of it off screen by construction, as AudioScope builds its off-screen
  mixtures from unrelated clips. The **paired gap** is, per soundtrack, its share with its own
  pictures minus the mean share with foreign ones, averaged over soundtracks with a 95%
  bootstrap interval: the same sounds on both sides, so a model that keeps more of some kinds
  of sound (speech, music) whatever is shown scores 0 here. The labelled list has a single
  off-screen-only clip; this contrast has one pair of samples per soundtrack. Beside the model,
  the same gap for a **model-free synchrony detector** on the model's own input (mono audio at
  its rate, frames at its rate and size): the best correlation over an 8x8 grid of cells between
  the soundtrack's log energy per frame and the cell's mean absolute frame difference. It tells
  whether the cue is there at the model's resolution when the model does not find it.

Goal (issue 10): on-screen-only clips keep clearly more than off-screen-only ones. The model
must be one trained on realistic scenes (``make demo-real``: ``data/demo_real/06_models/
audioscope``); the drawn-shapes demo model is expected near chance here. Skips with a message
when the videos are absent (they live in ``../shared``, never in the repository).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
import pandas as pd
import soundfile as sf
import torch
from tqdm.auto import tqdm

from audioscope_kedro.data.decode import BadClipError, DecodeSettings, decode_clip
from audioscope_kedro.evaluation.calibration import RAW, OperatingPoint, PointKind
from audioscope_kedro.metrics import si_snr
from audioscope_kedro.models.attention import motion_correlations
from audioscope_kedro.release import ReleasedModel
from audioscope_kedro.separate import SeparateOptions, separate_file
from audioscope_kedro.separate.writers import RemuxWriter

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "data" / "real_videos"
LABELS = ("on_screen_only", "off_screen_only", "mixed")
TALKERS = ("left", "middle", "right")


@dataclass
class ClipResult:
    video: str
    label: str
    seconds: float
    on_share: float  # energy on screen / energy of both stems, over the labelled span
    refused: str = ""  # the tool's reason where it refused the input


@dataclass
class TalkerResult:
    video: str
    on_screen_si_snr: float  # on-screen estimate vs the sum of the three talkers
    mixture_si_snr: float  # the mixture itself vs that sum (the ceiling of keeping everything)
    talker: str
    best_source_si_snr: float  # best separated source vs this talker
    best_source_si_snri: float  # ... minus the mixture's SI-SNR against this talker


def _read(path: Path) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(path, dtype="float64", always_2d=True)
    return audio, rate


def _span(audio: np.ndarray, rate: int, start: float, end: float) -> np.ndarray:
    return audio[int(round(start * rate)) : int(round(end * rate))]


def _mono_at(audio: np.ndarray, rate: int, target: int) -> torch.Tensor:
    """Mono downmix at ``target`` Hz, resampled by cutting (or zero-padding) the spectrum: exact
    band-limiting, which is all an SI-SNR needs (no torchaudio or scipy in the environment)."""
    mono = audio.mean(axis=1)
    if rate != target:
        n_out = int(round(mono.size * target / rate))
        spectrum = np.fft.rfft(mono)[: n_out // 2 + 1]
        mono = np.fft.irfft(spectrum, n_out) * (n_out / mono.size)
    return torch.from_numpy(mono)


def _si_snr(est: torch.Tensor, ref: torch.Tensor) -> float:
    n = min(est.shape[-1], ref.shape[-1])
    return float(si_snr(est[..., :n].float(), ref[..., :n].float()))


def on_share(folder: Path, start: float, end: float) -> tuple[float, float]:
    """(share of energy on screen over [start, end], seconds covered)."""
    on, rate = _read(folder / "on_screen.wav")
    off, _ = _read(folder / "off_screen.wav")
    on, off = _span(on, rate, start, end), _span(off, rate, start, end)
    e_on, e_off = float(np.sum(on**2)), float(np.sum(off**2))
    return e_on / max(e_on + e_off, 1e-20), len(on) / rate


def talker_results(folder: Path, video: Path, model_rate: int) -> list[TalkerResult]:
    """SI-SNRs of a three-speaker video against its per-talker ground truth."""
    number = video.stem.removeprefix("combine")
    truth = {}
    for name in TALKERS:
        audio, rate = _read(video.parent / f"{number}_{name}.wav")
        truth[name] = _mono_at(audio, rate, model_rate)
    everyone = sum(truth.values())
    on, rate = _read(folder / "on_screen.wav")
    off, _ = _read(folder / "off_screen.wav")
    on_m, mix_m = _mono_at(on, rate, model_rate), _mono_at(on + off, rate, model_rate)
    sources = [
        torch.from_numpy(_read(p)[0].mean(axis=1))
        for p in sorted((folder / "sources").glob("source_*.wav"))
    ]
    rows = []
    for name, ref in truth.items():
        best = max(_si_snr(s, ref) for s in sources)
        rows.append(
            TalkerResult(
                video=str(video.relative_to(video.parents[1])),
                on_screen_si_snr=_si_snr(on_m, everyone),
                mixture_si_snr=_si_snr(mix_m, everyone),
                talker=name,
                best_source_si_snr=best,
                best_source_si_snri=best - _si_snr(mix_m, ref),
            )
        )
    return rows


def bootstrap_margin(
    on: np.ndarray, off: np.ndarray | None = None, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean(on) - mean(off) and its percentile 95% interval (groups resampled separately);
    without ``off``, mean(on) and its interval."""
    rng = np.random.default_rng(seed)
    stats = [
        rng.choice(on, on.size).mean() - (0.0 if off is None else rng.choice(off, off.size).mean())
        for _ in range(resamples)
    ]
    low, high = np.percentile(stats, [2.5, 97.5])
    return float(on.mean() - (0.0 if off is None else off.mean())), float(low), float(high)


def swap_soundtrack(pictures: Path, audio: np.ndarray, rate: int, out: Path) -> float:
    """Write ``out`` (mp4): the video stream of ``pictures`` copied, with ``audio`` ([n, C] at
    ``rate``) as its soundtrack, both cut to the shorter of the two. Returns that length (s)."""
    with av.open(str(pictures)) as src:
        stream = src.streams.video[0]
        frames = stream.frames or 0
        video_seconds = (
            float(stream.duration * stream.time_base)
            if stream.duration
            else frames / float(stream.average_rate or 25)
        )
        seconds = min(video_seconds, audio.shape[0] / rate)
        writer = RemuxWriter(out, stream, rate, audio.shape[1], start_time=0.0)
        try:
            for packet in src.demux(stream):
                # decode order: a packet decoded after the cut is never needed before it
                if packet.dts is not None and packet.dts * stream.time_base >= seconds:
                    break
                writer.video_packet(packet)
            writer.audio_chunk(audio[: int(seconds * rate)].T)
        finally:
            writer.close()
    return seconds


def motion_sync_score(audio: np.ndarray, frames: np.ndarray) -> float:
    """Model-free audio-visual synchrony (:func:`~audioscope_kedro.models.attention.
    motion_correlations`, the measure of ``model.attention.motion_sync``): the highest
    correlation over an 8x8 grid of cells between the log energy of ``audio`` (float [T]) in
    each frame's interval and the cell's motion in ``frames`` (uint8 [F, H, W, 3])."""
    corr = motion_correlations(torch.from_numpy(audio)[None, None], torch.from_numpy(frames)[None])
    return float(corr.max())


@dataclass
class Separated:
    """An on-screen-only clip as separated with its own pictures."""

    video: Path
    folder: Path  # its separation (the two stems sum to its soundtrack)
    start: float  # the labelled span
    end: float


def swapped_gaps(
    release: ReleasedModel,
    options: SeparateOptions,
    own: dict[str, Separated],
    swaps: int,
    workdir: Path,
) -> pd.DataFrame:
    """Each soundtrack of ``own`` (its labelled span) under the pictures of the next ``swaps``
    clips of the sorted list (cyclically): one row per pair with the share kept on screen with
    the foreign pictures and with its own, over the same seconds."""
    names = sorted(own)
    pairs = [
        (a, names[(i + k) % len(names)]) for i, a in enumerate(names) for k in range(1, swaps + 1)
    ]
    media = release.model.config.media
    settings = DecodeSettings.for_media(media, short_audio="pad")
    decoded = {n: decode_clip(c.video, c.start, c.end, settings) for n, c in own.items()}

    def detector(sound: str, pictures: str) -> tuple[float, float]:
        """(own, swapped) scores over the same frames: the soundtrack cut to the foreign
        pictures' length or the other way round (a shorter series scores higher by chance)."""
        audio = decoded[sound].audio
        count = min(
            decoded[pictures].frames.shape[0],
            decoded[sound].frames.shape[0],
            media.num_frames(audio.size / media.sample_rate),
        )
        cut = audio[: media.num_samples(count / media.fps)]
        return (
            motion_sync_score(cut, decoded[sound].frames[:count]),
            motion_sync_score(cut, decoded[pictures].frames[:count]),
        )

    def soundtrack(sound: str) -> tuple[np.ndarray, int]:
        """The labelled span of a clip's input audio (its two stems sum to it)."""
        clip = own[sound]
        on, rate = _read(clip.folder / "on_screen.wav")
        off, _ = _read(clip.folder / "off_screen.wav")
        return _span(on + off, rate, clip.start, clip.end), rate

    soundtracks = {sound: soundtrack(sound) for sound in names}  # read once, used `swaps` times
    rows = []
    for sound, pictures in tqdm(pairs, desc="swapped pictures", unit="clip"):
        clip = own[sound]
        audio, rate = soundtracks[sound]
        path = workdir / f"{Path(sound).stem}__under__{Path(pictures).stem}.mp4"
        seconds = swap_soundtrack(own[pictures].video, audio, rate, path)
        report = separate_file(release.model, path, workdir / "separated", options)
        swapped, _ = on_share(report.folder, 0.0, seconds)
        mine, _ = on_share(clip.folder, clip.start, clip.start + seconds)
        detector_own, detector_swapped = detector(sound, pictures)
        rows.append(
            {
                "sound": sound,
                "pictures": pictures,
                "own": mine,
                "swapped": swapped,
                "detector_own": detector_own,
                "detector_swapped": detector_swapped,
            }
        )
    return pd.DataFrame(rows)


def plot(clips: list[ClipResult], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kept = [c for c in clips if not c.refused]
    kept.sort(key=lambda c: (LABELS.index(c.label), -c.on_share))
    colours = {"on_screen_only": "tab:green", "off_screen_only": "tab:red", "mixed": "tab:grey"}
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(kept) + 1.2))
    y = np.arange(len(kept))
    ax.barh(y, [c.on_share for c in kept], color=[colours[c.label] for c in kept])
    ax.set_yticks(y, [Path(c.video).stem[:40] for c in kept], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of energy kept on screen")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    ax.legend(handles, [label.replace("_", " ") for label in colours], fontsize=7)
    ax.set_title("Real videos: energy kept on screen, by human label")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="a released model folder")
    ap.add_argument("--videos", default=str(DEFAULT_VIDEOS), help="folder with labels.csv")
    point = ap.add_mutually_exclusive_group()
    point.add_argument("--threshold", type=float, help="keep sources with p above this")
    point.add_argument("--raw", action="store_true", help="probability-weighted, uncalibrated")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--plot", help="write the per-clip bar chart here (PNG)")
    ap.add_argument("--keep", help="keep the separated outputs in this folder")
    ap.add_argument(
        "--swaps",
        type=int,
        default=3,
        help="foreign pictures per on-screen-only soundtrack (0: none)",
    )
    args = ap.parse_args(argv)

    videos = Path(args.videos)
    if not (videos / "labels.csv").is_file():
        print(f"skipped: no {videos / 'labels.csv'} (the real videos live in ../shared)")
        return 0
    release = ReleasedModel.load(Path(args.model))
    if args.threshold is not None:
        op = OperatingPoint(PointKind.THRESHOLD, threshold=args.threshold)
    elif args.raw or release.calibration is None:
        op = RAW
    else:
        op = release.calibration.point
    print(f"model {args.model}; operating point: {op.describe()}")
    options = SeparateOptions(point=op, video=False)
    model_rate = release.model.config.media.sample_rate
    labels = pd.read_csv(videos / "labels.csv")
    clips: list[ClipResult] = []
    talkers: list[TalkerResult] = []
    own: dict[str, Separated] = {}
    swapped = pd.DataFrame()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep) if args.keep else Path(tmp)
        for row in tqdm(list(labels.itertuples(index=False)), desc="real videos", unit="clip"):
            video = videos / row.video_path
            try:
                report = separate_file(release.model, video, out, options)
            except BadClipError as err:
                clips.append(ClipResult(row.video_path, row.label, 0.0, float("nan"), err.reason))
                continue
            share, seconds = on_share(report.folder, row.start_time, row.end_time)
            clips.append(ClipResult(row.video_path, row.label, seconds, share))
            if video.parent.name == "vasp_3speakers":
                talkers.extend(talker_results(report.folder, video, model_rate))
            if row.label == "on_screen_only":
                own[row.video_path] = Separated(video, report.folder, row.start_time, row.end_time)
        if args.swaps and len(own) > args.swaps:
            swapped = swapped_gaps(release, options, own, args.swaps, Path(tmp))

    table = pd.DataFrame([asdict(c) for c in clips])
    with pd.option_context("display.width", 140, "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    ok = table[table.refused == ""]
    summary: dict = {"model": args.model, "operating_point": op.describe(), "labels": {}}
    print("\nshare of energy kept on screen, by label (mean [min, max], n):")
    for label in LABELS:
        shares = ok.loc[ok.label == label, "on_share"].to_numpy()
        if shares.size:
            summary["labels"][label] = {"mean": float(shares.mean()), "n": int(shares.size)}
            print(
                f"  {label:16s} {shares.mean():.3f} [{shares.min():.3f}, {shares.max():.3f}], "
                f"n={shares.size}"
            )
    on = ok.loc[ok.label == "on_screen_only", "on_share"].to_numpy()
    off = ok.loc[ok.label == "off_screen_only", "on_share"].to_numpy()
    if on.size and off.size:
        margin, low, high = bootstrap_margin(on, off)
        summary["margin"] = {"value": margin, "ci95": [low, high]}
        print(
            f"margin (on-screen-only minus off-screen-only): {margin:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] (95% bootstrap; n={on.size} and {off.size})"
        )
    if talkers:
        tt = pd.DataFrame([asdict(t) for t in talkers])
        summary["three_speakers"] = tt.to_dict(orient="records")
        print("\nthree-speaker videos (dB, at the model's rate):")
        print(tt.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if not swapped.empty:
        per_sound = swapped.groupby("sound").mean(numeric_only=True)
        summary["swapped"] = {"pairs": swapped.to_dict(orient="records")}
        print(
            f"\nswapped pictures ({args.swaps} foreign per soundtrack, {len(per_sound)} soundtracks):"
        )
        for name, own_col, swapped_col in (
            ("model: share kept on screen", "own", "swapped"),
            ("model-free synchrony detector", "detector_own", "detector_swapped"),
        ):
            gaps = (per_sound[own_col] - per_sound[swapped_col]).to_numpy()
            gap, low, high = bootstrap_margin(gaps)
            summary["swapped"][own_col] = {
                "own_mean": float(per_sound[own_col].mean()),
                "swapped_mean": float(per_sound[swapped_col].mean()),
                "gap": {"value": gap, "ci95": [low, high]},
                "higher_with_own": int((gaps > 0).sum()),
                "soundtracks": int(gaps.size),
            }
            print(
                f"  {name:30s} own pictures {per_sound[own_col].mean():.3f}, foreign "
                f"{per_sound[swapped_col].mean():.3f}; paired gap {gap:+.3f} [{low:+.3f}, "
                f"{high:+.3f}] (95% bootstrap); own higher for {(gaps > 0).sum()} of {gaps.size}"
            )
    refused = table[table.refused != ""]
    summary["refused"] = dict(zip(refused.video, refused.refused, strict=True))
    for video, reason in summary["refused"].items():
        print(f"refused {video}: {reason}")
    summary["clips"] = table.to_dict(orient="records")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=float))
    if args.plot:
        plot(clips, Path(args.plot))
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
