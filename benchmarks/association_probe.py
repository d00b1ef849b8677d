"""The audio-visual half of AudioScope alone, on a demo environment's ground truth: the on-screen
classifier (audio and image embeddings, attention, classifier of ``model.*``) trained on the
clips' true per-source stems with their true on/off-screen labels, no separator, no MixIT.

Each training example is a mixture of mixtures as in ``train``: the frames of clip 1, and as
sources clip 1's stems (on-screen ones labelled 1, off-screen ones 0) plus clip 2's stems (all
0). The held-out figures are on the validation and test clips (fixed pairs, whole clips):

- ``auc``: every active source of the pairs;
- ``auc_within``: clip 1's own sources only, on-screen against off-screen: the question of
  which sounds of a soundtrack go with the picture, which pseudo-labels never ask directly.

It bounds what ``train`` can reach with perfect separation and perfect pseudo-labels, and so
tells a failure of the audio-visual model (this probe at chance too) from one of the separation
and pseudo-label route (this probe learns). docs/demo_real_training.md has the measurements.

Where ``../shared/data/real_videos`` is present (``--real-videos``), each validation also
scores real footage without a separator: every on-screen-only clip of its ``labels.csv`` (the
labelled span, decoded to the model's input format), its whole soundtrack as the one source,
under its own pictures and under the pictures of the next ``--swaps`` clips (cut to the same
frames). ``real gap``: the on-screen logit with the own pictures minus the mean with foreign
ones, per soundtrack, with a 95% bootstrap interval over soundtracks. It asks whether what the
audio-visual half learned on the demo's scenes carries over to real footage, in minutes rather
than a whole ``train`` run.

``--separated`` scores the real soundtracks as the environment's pre-trained separator cuts
them (the share of each soundtrack's energy kept on screen) instead of whole. ``--detector``
trains nothing: it prints, per loudness cue, the model-free motion synchrony measure's own
held-out AUC and real-footage gap (the best cell's correlation).

    .venv/bin/python benchmarks/association_probe.py --env demo_real --threads 1 \\
        --steps 3000 attention.variant=sep_cma

Needs the environment's ``demo_data`` and ``ingest`` to have run (the stems come from
``demo_data``, the frames from the clip store).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from coincidence_probe import override
from real_videos import bootstrap_margin
from torch.nn import functional as F
from tqdm import tqdm

from audioscope_kedro.data.picture_augmentation import PictureAugmentation, augment_pictures

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = ROOT.parent / "shared" / "data" / "real_videos"
LABEL = {"on_screen": 1.0, "off_screen": 0.0}  # background noise is not a source here


def downsample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited resampling by truncating (or zero-padding) the spectrum: exact enough for
    a probe, and needs no resampling library."""
    if rate == target:
        return audio.astype(np.float32)
    length = int(round(audio.size * target / rate))
    spectrum = np.fft.rfft(audio)
    keep = length // 2 + 1
    out = np.zeros(keep, complex)
    out[: min(keep, spectrum.size)] = spectrum[: min(keep, spectrum.size)]
    return (np.fft.irfft(out, length) * target / rate).astype(np.float32)


@dataclass
class StemSet:
    """Clips with their frames' store rows and their labelled stems at the store's rate."""

    rows: np.ndarray  # store row per clip
    stems: list[np.ndarray]  # per clip [S, T] (S on- and off-screen stems)
    labels: list[np.ndarray]  # per clip [S]


def load_stems(store, demo_root: Path, splits: tuple[str, ...]) -> StemSet:
    manifest = pd.read_csv(demo_root / "stems.csv")
    manifest = manifest[manifest["role"].isin(list(LABEL))]
    index = store.index
    rate = store.settings.sample_rate
    rows, stems, labels = [], [], []
    chosen = index[index["split"].isin(splits)]
    by_video = dict(list(manifest.groupby("video_path")))
    for row, video in tqdm(
        zip(chosen.index, chosen["video_path"], strict=True),
        total=len(chosen),
        desc=f"stems {'+'.join(splits)}",
    ):
        group = by_video.get(video)
        length = int(index.loc[row, "num_samples"])
        audio = np.zeros((0 if group is None else len(group), length), np.float32)
        for k, path in enumerate([] if group is None else group["stem_path"]):
            wav, sr = sf.read(str(demo_root / path), dtype="float32")
            wav = downsample(wav, sr, rate)[:length]
            audio[k, : wav.size] = wav
        rows.append(int(index.index.get_loc(row)))
        stems.append(audio)
        labels.append(
            np.array([] if group is None else group["role"].map(LABEL).to_numpy(), np.float32)
        )
    return StemSet(np.array(rows), stems, labels)


@dataclass
class Batch:
    sources: torch.Tensor  # [B, S, T]
    frames: torch.Tensor  # [B, F, H, W, 3]
    labels: torch.Tensor  # [B, S]
    mask: torch.Tensor  # [B, S] active sources
    own: torch.Tensor  # [B, S] the source is clip 1's


def make_batch(store, data: StemSet, pairs, starts, num_frames: int, slots: int) -> Batch:
    per_frame = store.settings.sample_rate / store.settings.fps
    length = int(round(num_frames * per_frame))
    b = len(pairs)
    s = store.settings
    sources = np.zeros((b, slots, length), np.float32)
    labels = np.zeros((b, slots), np.float32)
    own = np.zeros((b, slots), bool)
    frames = np.zeros((b, num_frames, s.frame_height, s.frame_width, 3), np.uint8)
    for k, ((i, j), (a, c)) in enumerate(zip(pairs, starts, strict=True)):
        f = store.frames(int(data.rows[i]))[a : a + num_frames]
        frames[k, : len(f)] = f
        frames[k, len(f) :] = f[-1]
        slot = 0
        for clip, start, mine in ((i, a, True), (j, c, False)):
            offset = int(round(start * per_frame))
            for stem, label in zip(data.stems[clip], data.labels[clip], strict=True):
                if slot == slots:
                    break
                piece = stem[offset : offset + length]
                sources[k, slot, : piece.size] = piece
                labels[k, slot] = label if mine else 0.0
                own[k, slot] = mine
                slot += 1
    x = torch.from_numpy(sources)
    energy = (x**2).mean(-1)
    return Batch(
        x,
        torch.from_numpy(frames),
        torch.from_numpy(labels),
        energy > 1e-6,  # -60 dB: a stem silent over this crop is no source
        torch.from_numpy(own),
    )


def pool_frames(frames: torch.Tensor, factor: int) -> torch.Tensor:
    """``[B, F, H, W, 3]`` uint8 frames average-pooled ``factor`` times smaller (floats in [0, 1])."""
    if factor == 1:
        return frames
    b, f, h, w, c = frames.shape
    x = frames.float().div(255).reshape(b * f, h, w, c).permute(0, 3, 1, 2)
    x = F.avg_pool2d(x, factor)
    return x.permute(0, 2, 3, 1).reshape(b, f, h // factor, w // factor, c)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    from audioscope_kedro.metrics import auc_roc

    return float(auc_roc(scores, labels)) if 0 < labels.sum() < labels.size else float("nan")


def held_out_batches(store, data: StemSet, slots: int, batch_size: int) -> Iterator[Batch]:
    """The fixed held-out pairs (clip i with clip i + n/2), whole clips, in batches."""
    n = len(data.rows)
    pairs = [(i, (i + n // 2) % n) for i in range(n)]
    num_frames = int(store.index["num_frames"].iloc[data.rows].min())
    for lo in range(0, n, batch_size):
        chunk = pairs[lo : lo + batch_size]
        yield make_batch(store, data, chunk, [(0, 0)] * len(chunk), num_frames, slots)


def evaluate(
    model, store, data: StemSet, slots: int, batch_size: int, frame_pool: int = 1
) -> dict[str, float]:
    scores, labels, own = [], [], []
    model.eval()
    with torch.no_grad():
        for batch in held_out_batches(store, data, slots, batch_size):
            logits = model.classify(batch.sources, pool_frames(batch.frames, frame_pool))
            m = batch.mask
            scores.append(logits[m].numpy())
            labels.append(batch.labels[m].numpy())
            own.append(batch.own[m].numpy())
    model.train()
    s, y, o = np.concatenate(scores), np.concatenate(labels), np.concatenate(own)
    return {"auc": auc(s, y), "auc_within": auc(s[o], y[o])}


@dataclass
class RealFootage:
    """On-screen-only real clips in the model's input format: soundtrack and pictures."""

    names: list[str]
    audio: list[np.ndarray]  # float32 [T] per clip
    frames: list[np.ndarray]  # uint8 [F, H, W, 3] per clip


def load_real_footage(folder: Path, media) -> RealFootage | None:
    """The on-screen-only clips of ``folder/labels.csv`` (their labelled spans), or None where
    the folder is absent. A clip that does not decode is left out with its reason printed."""
    from audioscope_kedro.data.decode import BadClipError, DecodeSettings, decode_clip

    if not (folder / "labels.csv").is_file():
        print(f"no {folder / 'labels.csv'}: no real-footage check")
        return None
    labels = pd.read_csv(folder / "labels.csv")
    settings = DecodeSettings.for_media(media, short_audio="pad")
    footage = RealFootage([], [], [])
    for row in labels[labels["label"] == "on_screen_only"].itertuples(index=False):
        try:
            clip = decode_clip(folder / row.video_path, row.start_time, row.end_time, settings)
        except BadClipError as err:
            print(f"real footage: left out {row.video_path}: {err.reason}")
            continue
        footage.names.append(row.video_path)
        footage.audio.append(clip.audio)
        footage.frames.append(clip.frames)
    return footage


def swapped_views(
    footage: RealFootage, i: int, swaps: int, per_frame: float
) -> Iterator[tuple[int, torch.Tensor]]:
    """For soundtrack ``i``, against each of the next ``swaps`` clips (labels.csv order, round
    the list): the samples of its soundtrack to score and the pictures ``[2, F, H, W, 3]``
    (its own, then the foreign clip's), both cut to the frames all three have."""
    n = len(footage.names)
    for k in range(1, swaps + 1):
        j = (i + k) % n
        count = min(
            len(footage.frames[i]), len(footage.frames[j]), int(footage.audio[i].size // per_frame)
        )
        pictures = np.stack([footage.frames[i][:count], footage.frames[j][:count]])
        yield int(round(count * per_frame)), torch.from_numpy(pictures)


def real_swap_gaps(
    model,
    footage: RealFootage,
    swaps: int,
    per_frame: float,
    frame_pool: int,
    sources: list[torch.Tensor] | None = None,
):
    """Per soundtrack (labels.csv order): its on-screen logit under its own pictures minus the
    mean under the next ``swaps`` clips' pictures, each pair over the same frames. With
    ``sources`` (each soundtrack's separated sources, ``[M, T]``), the score is the share of
    the soundtrack's energy the classifier puts on screen (sources weighted by their
    probability and energy, as ``real_videos.py --raw``) instead of one logit."""
    n = len(footage.names)
    gaps = np.zeros(n)
    model.eval()
    with torch.no_grad():
        for i in range(n):
            diffs = []
            for length, pictures in swapped_views(footage, i, swaps, per_frame):
                whole = torch.from_numpy(footage.audio[i][:length])[None]
                sound = whole if sources is None else sources[i][:, :length]
                logits = model.classify(sound.expand(2, -1, -1), pool_frames(pictures, frame_pool))
                if sources is None:
                    diffs.append(float(logits[0, 0] - logits[1, 0]))
                    continue
                energy = sound.pow(2).sum(-1)
                share = (torch.sigmoid(logits) * energy).sum(-1) / energy.sum().clamp_min(1e-12)
                diffs.append(float(share[0] - share[1]))
            gaps[i] = np.mean(diffs)
    model.train()
    return gaps


def detector_figures(store, held_out: StemSet, slots: int, footage, swaps: int, per_frame: float):
    """The model-free synchrony measure alone (``models.attention.motion_correlations``, its best
    cell), per loudness cue: the held-out AUC as :func:`evaluate` scores the model, and on real
    footage the gap of the score between own and foreign pictures, as :func:`real_swap_gaps`."""
    from audioscope_kedro.models.attention import LoudnessCue, motion_correlations

    cues = tuple(LoudnessCue)
    scores, labels, own = [], [], []
    for batch in tqdm(held_out_batches(store, held_out, slots, 32), desc="detector, held out"):
        best = motion_correlations(batch.sources, batch.frames, cues=cues).amax(-1)  # [B, S, C]
        scores.append(best[batch.mask].numpy())
        labels.append(batch.labels[batch.mask].numpy())
        own.append(batch.own[batch.mask].numpy())
    s, y, o = np.concatenate(scores), np.concatenate(labels), np.concatenate(own)
    gaps = np.zeros((len(footage.names) if footage else 0, len(cues)))
    for i in range(len(gaps)):
        diffs = []
        for length, pictures in swapped_views(footage, i, swaps, per_frame):
            sound = torch.from_numpy(footage.audio[i][:length])
            best = motion_correlations(sound.expand(2, 1, -1), pictures, cues=cues).amax(-1)
            diffs.append((best[0, 0] - best[1, 0]).numpy())
        gaps[i] = np.mean(diffs, axis=0)
    for c, cue in enumerate(cues):
        line = f"{cue.value:>12}: held-out auc {auc(s[:, c], y):.3f} within-clip {auc(s[o, c], y[o]):.3f}"
        if len(gaps):
            gap, low, high = bootstrap_margin(gaps[:, c])
            line += (
                f" | real gap {gap:+.3f} [{low:+.3f}, {high:+.3f}] correlation,"
                f" own higher {(gaps[:, c] > 0).sum()}/{len(gaps)}"
            )
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="demo_real", help="Kedro environment (its clip store)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--crop-seconds", type=float, default=2.0)
    parser.add_argument("--validate-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--frame-pool", type=int, default=1, help="average-pool the frames by this factor"
    )
    parser.add_argument(
        "--real-videos",
        default=str(DEFAULT_VIDEOS),
        help="folder with labels.csv: the swapped-pictures check on real footage",
    )
    parser.add_argument("--swaps", type=int, default=3, help="foreign pictures per soundtrack")
    parser.add_argument(
        "--separated",
        action="store_true",
        help="score the real soundtracks' sources as the environment's pre-trained separator "
        "cuts them (the share kept on screen) instead of each whole soundtrack as one source",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="train on pictures with a random look per clip (crop, colour, grey), as "
        "train.picture_augmentation does with its default settings",
    )
    parser.add_argument(
        "--detector",
        action="store_true",
        help="no training: score the held-out pairs and the real footage with the model-free "
        "motion synchrony measure alone (the best cell, per loudness cue) and stop",
    )
    parser.add_argument("overrides", nargs="*", help="model.* assignments, e.g. attention.layers=1")
    args = parser.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from audioscope_kedro.models.audioscope import AudioScope
    from audioscope_kedro.training.audioscope import model_config

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=args.env) as session:
        context = session.load_context()
        store, params = context.catalog.load("clip_store"), context.params
        demo_root = Path(context.config_loader["globals"]["demo_root"])
        separator = context.catalog.load("pretrained_separator") if args.separated else None
    config = model_config(
        override(dict(params["model"]), args.overrides), store, params["clip_seconds"]
    )
    model = AudioScope(config)
    # everything but the separator: the audio-visual half, whichever optional paths it has
    weights = [p for name, p in model.named_parameters() if not name.startswith("separator.")]
    optimiser = torch.optim.Adam(weights, lr=args.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: min(1.0, (step + 1) / 100))
    train = load_stems(store, ROOT / demo_root, ("train",))
    held_out = load_stems(store, ROOT / demo_root, ("validate", "test"))
    slots = 2 * max(len(x) for x in train.labels + held_out.labels)
    fps = store.settings.fps
    count = max(1, int(round(args.crop_seconds * fps)))
    room = int(store.index["num_frames"].iloc[train.rows].min()) - count
    rng = np.random.default_rng(args.seed)
    looks = PictureAugmentation(enabled=args.augment)  # train.picture_augmentation's defaults
    n = len(train.rows)
    per_frame = store.settings.sample_rate / fps
    footage = load_real_footage(Path(args.real_videos), store.settings.media)
    if footage is not None and len(footage.names) <= args.swaps:
        print(f"real footage: {len(footage.names)} clips, too few for {args.swaps} swaps")
        footage = None
    sources = None  # --separated: each real soundtrack's sources, [M, T]
    if footage is not None and separator is not None:
        with torch.no_grad():
            sources = [separator(torch.from_numpy(a)[None])[0] for a in footage.audio]
    print(f"{args.env}: {n} training clips, {len(held_out.rows)} held out, {slots} source slots")
    if args.detector:
        detector_figures(store, held_out, slots, footage, args.swaps, per_frame)
        return
    start, losses, hits, seen = time.perf_counter(), [], 0, 0
    for step in tqdm(range(1, args.steps + 1), desc="probe"):
        first = rng.integers(0, n, args.batch_size)
        second = (first + rng.integers(1, n, args.batch_size)) % n
        starts = rng.integers(0, room + 1, (args.batch_size, 2))
        batch = make_batch(
            store, train, list(zip(first, second, strict=True)), starts.tolist(), count, slots
        )
        frames = augment_pictures(batch.frames, looks, args.seed, step)
        logits = model.classify(batch.sources, pool_frames(frames, args.frame_pool))
        m = batch.mask.float()
        loss = (
            F.binary_cross_entropy_with_logits(logits, batch.labels, reduction="none") * m
        ).sum()
        loss = loss / m.sum().clamp_min(1)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        hits += int((((logits > 0).float() == batch.labels).float() * m).sum())
        seen += int(m.sum())
        if step % args.validate_every == 0 or step == args.steps:
            figures = evaluate(model, store, held_out, slots, 32, args.frame_pool)
            real = ""
            if footage is not None:
                gaps = real_swap_gaps(
                    model, footage, args.swaps, per_frame, args.frame_pool, sources
                )
                gap, low, high = bootstrap_margin(gaps)
                unit = "logits" if sources is None else "share kept, separated"
                real = (
                    f" | real gap {gap:+.3f} [{low:+.3f}, {high:+.3f}] {unit},"
                    f" own higher {(gaps > 0).sum()}/{gaps.size}"
                )
            tqdm.write(
                f"step {step}: train loss {np.mean(losses):.3f} accuracy {hits / max(seen, 1):.3f}"
                f" | held-out auc {figures['auc']:.3f} within-clip {figures['auc_within']:.3f}"
                f"{real} | {(time.perf_counter() - start) / 60:.1f} min"
            )
            losses, hits, seen = [], 0, 0


if __name__ == "__main__":
    main()
