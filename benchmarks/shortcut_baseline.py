"""Shortcut baselines on the demo scenes: can on-screen-only clips be told from off-screen-only
clips without relating what is heard to what is seen?

    .venv/bin/python benchmarks/shortcut_baseline.py [--splits validate test] [--clips N]
        [--env demo | demo_real] [--workers 2] [--json OUT]

Generates the demo's labelled clips (the ``<split>_onscreen`` and ``<split>_offscreen`` lists of
``demo_data`` at ``conf/base`` + ``conf/<env>``; ``--clips N`` makes N of each per split
instead of the configured counts), encodes each to ``.mp4`` and decodes it back to the format
the demo ingests (``ingest.decode``: 32x32 frames at 8 fps, 8 kHz for ``--env demo``; 64x64 for
``--env demo_real``, the realistic variant, whose pictures are fetched first if need be), then
scores every clip with single-modality, clip-level features:

- motion energy: mean absolute difference of consecutive frames, on the generated frames
  (96x96 or 128x128, 15 fps) and on the ingested ones; its 95th percentile over time
  (``motion_peak``);
- appearance: mean saturation, mean brightness, and the fraction of pixels that stand out from
  the frame's median colour (``foreground``);
- audio loudness: RMS level of the soundtrack in dB;
- ``video_probe``: all the video features together, in a logistic regression scored out of
  fold (5-fold cross-validation), in case a combination tells what no single one does.

For each it prints the AUC of "score is higher for on-screen-only clips" with a stratified
bootstrap 95% confidence interval, and the separability ``max(AUC, 1 - AUC)`` (a detector may
use either direction). A shortcut-free demo has every separability near 0.5 (goal: motion
<= 0.6). For contrast, the last row, ``av_sync``, uses both modalities: the highest
correlation, over a 4x4 grid of image cells, between a cell's brightness and the soundtrack's
loudness over time. It is the cue the model is meant to learn and should be well above chance.
The same detector at the level of sources, as the model is scored, closes the report: on
(on-screen-only, off-screen-only) MoMs, each ground-truth source's loudness against clip 1's
cells, AUC of on-screen vs off-screen sources (the bound a perfect separator would give this
hand-made detector).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
FEATURES = {
    "motion_generated": "motion energy, generated frames",
    "motion": "motion energy, ingested frames",
    "motion_peak": "motion energy 95th pct, ingested",
    "saturation": "mean saturation, ingested",
    "brightness": "mean brightness, ingested",
    "foreground": "non-background pixel fraction",
    "audio_rms": "soundtrack RMS (dB)",
    "video_probe": "all video features, linear probe",
    "av_sync": "audio-visual synchrony (the cue)",
}


def demo_settings(env: str) -> tuple[dict, dict]:
    """The ``demo_data`` block (with the clip length as ``duration``) and ``ingest.decode`` of
    ``conf/base`` + ``conf/<env>``, read as ``kedro run --env <env>`` reads them (globals
    resolved, the environment's keys merged over the base's)."""
    from kedro.config import OmegaConfigLoader

    from audioscope_kedro.settings import CONFIG_LOADER_ARGS

    loader = OmegaConfigLoader(
        str(ROOT / "conf"), env=None if env == "base" else env, **CONFIG_LOADER_ARGS
    )
    params = loader["parameters"]
    demo = {**params["demo_data"], "duration": float(params["clip_seconds"])}
    return demo, dict(params["ingest"]["decode"])


def frame_features(frames: np.ndarray) -> dict[str, float]:
    """Clip-level video-only features of uint8 frames [F, H, W, 3]."""
    x = frames.astype(np.float32)
    diff = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2, 3)) if len(x) > 1 else np.zeros(1)
    hi, lo = x.max(axis=-1), x.min(axis=-1)
    saturation = np.where(hi > 0, (hi - lo) / np.maximum(hi, 1e-6), 0.0)
    median = np.median(x.reshape(len(x), -1, 3), axis=1)[:, None, None, :]
    foreground = np.linalg.norm(x - median, axis=-1) > 40.0
    return {
        "motion": float(diff.mean()),
        "motion_peak": float(np.percentile(diff, 95)),
        "saturation": float(saturation.mean()),
        "brightness": float(x.mean()),
        "foreground": float(foreground.mean()),
    }


def loudness(audio: np.ndarray, num_frames: int) -> np.ndarray:
    """RMS of the audio over each video frame's span."""
    hop = audio.size / num_frames
    return np.array(
        [
            np.sqrt(np.mean(audio[int(k * hop) : int((k + 1) * hop)].astype(np.float64) ** 2))
            for k in range(num_frames)
        ]
    )


def cell_brightness(frames: np.ndarray, grid: int = 4) -> np.ndarray:
    """Mean brightness of each cell of a grid x grid split of the image: [F, grid * grid]."""
    f, h, w, _ = frames.shape
    x = frames.astype(np.float32).mean(axis=-1)
    cells = x[:, : h - h % grid, : w - w % grid].reshape(f, grid, h // grid, grid, w // grid)
    return cells.mean(axis=(2, 4)).reshape(f, -1)


def best_cell_corr(loud: np.ndarray, cells: np.ndarray) -> float:
    """Highest correlation over image cells between a cell's brightness and ``loud``."""
    a = loud - loud.mean()
    c = cells - cells.mean(axis=0)
    denom = np.linalg.norm(a) * np.linalg.norm(c, axis=0) + 1e-9
    return float(np.max(a @ c / denom))


def score_clip(job: tuple[dict, dict, dict, str]) -> dict:
    from audioscope_kedro.data.decode import DecodeSettings, decode_clip
    from audioscope_kedro.data.video_io import write_mp4
    from audioscope_kedro.demo.dataset import render_clip_arrays, scene_config

    row, params, decode, tmp = job
    config = scene_config(params)
    frames, scene = render_clip_arrays(row, params)
    path = Path(tmp) / f"{row['split']}_{row['kind']}_{row['seed']}.mp4"
    write_mp4(path, frames, config.fps, scene.mixture, config.sample_rate)
    settings = DecodeSettings.from_params(decode)
    clip = decode_clip(path, 0.0, float(params["duration"]), settings)
    path.unlink()
    out = frame_features(clip.frames)
    out["motion_generated"] = frame_features(frames)["motion"]
    out["audio_rms"] = float(10 * np.log10(np.mean(clip.audio.astype(np.float64) ** 2) + 1e-12))
    cells = cell_brightness(clip.frames)
    out["av_sync"] = best_cell_corr(loudness(clip.audio, len(cells)), cells)
    # For the source-level figure: the ground-truth stems' loudness on the video's time axis.
    stems = [s.audio for s in scene.sources if s.role in ("on_screen", "off_screen")]
    out["cells"] = cells
    out["stem_loudness"] = [loudness(a, len(cells)) for a in stems]
    return {"label": row["kind"], **out}


VIDEO_FEATURES = [
    "motion_generated",
    "motion",
    "motion_peak",
    "saturation",
    "brightness",
    "foreground",
]


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Weights (bias last) of an L2-regularised logistic regression, by Newton's method."""
    x = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        grad = x.T @ (p - y) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    return w


def probe_scores(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Out-of-fold scores of a logistic regression on standardised features."""
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    out = np.empty(len(y))
    for f in range(folds):
        train, test = fold != f, fold == f
        mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-9
        w = _logistic((x[train] - mean) / std, y[train])
        out[test] = ((x[test] - mean) / std) @ w[:-1] + w[-1]
    return out


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted one half (Mann-Whitney)."""
    scores = np.concatenate([pos, neg])
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(scores.size)
    ranks[order] = np.arange(1, scores.size + 1)
    for value in np.unique(scores):  # average ranks over ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def auc_with_ci(
    pos: np.ndarray, neg: np.ndarray, n_boot: int, seed: int
) -> tuple[float, float, float]:
    """AUC and a stratified bootstrap 95% interval (on and off clips resampled separately)."""
    rng = np.random.default_rng(seed)
    boots = [auc(rng.choice(pos, pos.size), rng.choice(neg, neg.size)) for _ in range(n_boot)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return auc(pos, neg), float(lo), float(hi)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="demo", help="conf/<env> over conf/base")
    parser.add_argument("--splits", nargs="+", default=["validate", "test"])
    parser.add_argument("--clips", type=int, default=None, help="clips per label and split")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    from audioscope_kedro.demo.dataset import image_manifest, plan_scenes
    from audioscope_kedro.demo.images import DemoInputMissing

    os.chdir(ROOT)  # relative paths of the settings (sound bank, image cache) as in kedro run
    params, decode = demo_settings(args.env)
    try:
        # the realistic variant's pictures, fetched and cut once before the workers start
        image_manifest(params)
    except DemoInputMissing as err:
        sys.exit(f"shortcut_baseline: {err}")
    if args.clips is not None:
        params["counts"] = {
            f"{s}_{k}": args.clips for s in args.splits for k in ("onscreen", "offscreen")
        }
    plan = plan_scenes(params)
    plan = plan[plan.split.isin(args.splits) & plan.kind.isin(["onscreen", "offscreen"])]
    with tempfile.TemporaryDirectory() as tmp:
        jobs = [(row, params, decode, tmp) for row in plan.to_dict("records")]
        with mp.get_context("spawn").Pool(args.workers) as pool:
            rows = list(
                tqdm(pool.imap(score_clip, jobs), total=len(jobs), desc="clips", unit="clip")
            )
    x = np.array([[r[k] for k in VIDEO_FEATURES] for r in rows])
    y = np.array([r["label"] == "onscreen" for r in rows], dtype=float)
    for r, score in zip(rows, probe_scores(x, y), strict=True):
        r["video_probe"] = float(score)
    on = [r for r in rows if r["label"] == "onscreen"]
    off = [r for r in rows if r["label"] == "offscreen"]
    print(
        f"{len(on)} on-screen-only vs {len(off)} off-screen-only clips, splits {args.splits}, "
        f"generated {params['width']}x{params['height']} at {params['fps']:g} fps, ingested "
        f"{decode['frame_width']}x{decode['frame_height']} at {decode['fps']:g} fps"
    )
    print(f"{'baseline':36s} {'on mean':>9s} {'off mean':>9s}  {'AUC [95% CI]':22s} separability")
    result: dict = {"n_onscreen": len(on), "n_offscreen": len(off), "baselines": {}}
    for i, (key, title) in enumerate(FEATURES.items()):
        pos = np.array([r[key] for r in on])
        neg = np.array([r[key] for r in off])
        value, lo, hi = auc_with_ci(pos, neg, args.bootstrap, seed=i)
        sep = max(value, 1 - value)
        result["baselines"][key] = {
            "title": title,
            "on_mean": float(pos.mean()),
            "off_mean": float(neg.mean()),
            "auc": value,
            "ci95": [lo, hi],
            "separability": sep,
        }
        print(
            f"{title:36s} {pos.mean():9.3f} {neg.mean():9.3f}  "
            f"{value:.3f} [{lo:.3f}, {hi:.3f}]   {sep:.3f}"
        )
    # Source level, as the model is scored on (on, off) MoMs: each on-screen-only clip with a
    # random off-screen-only partner; every ground-truth source scored against clip 1's video.
    rng = np.random.default_rng(0)
    pos, neg = [], []
    for r in on:
        partner = off[int(rng.integers(len(off)))]
        pos += [best_cell_corr(loud, r["cells"]) for loud in r["stem_loudness"]]
        neg += [best_cell_corr(loud, r["cells"]) for loud in partner["stem_loudness"]]
    value, lo, hi = auc_with_ci(np.array(pos), np.array(neg), args.bootstrap, seed=len(FEATURES))
    result["source_sync_auc"] = {"auc": value, "ci95": [lo, hi], "n": [len(pos), len(neg)]}
    print(
        f"source level, (on, off) MoMs, ground-truth stems: synchrony of a source with clip 1's "
        f"video, on-screen vs off-screen sources ({len(pos)} vs {len(neg)}): AUC {value:.3f} "
        f"[{lo:.3f}, {hi:.3f}]"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
