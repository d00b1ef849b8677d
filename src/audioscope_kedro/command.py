"""The ``audioscope`` command: separate users' videos, evaluate a model on any AudioScope-format
MoM lists. (Not ``cli.py``: Kedro loads that module of a project for its own commands.)

    audioscope separate VIDEO... --model DIR --out DIR
    audioscope evaluate --video-root DIR --on-mom CSV --off-mom CSV --model DIR --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

from audioscope_kedro.evaluation import report as reporting
from audioscope_kedro.evaluation.calibration import operating_point
from audioscope_kedro.data.clip_table import assemble_clip_table, assemble_mom_table
from audioscope_kedro.data.decode import BadClipError, DecodeSettings, decode_clip, probe_duration
from audioscope_kedro.data.lists import ListValidationError, read_mom_list
from audioscope_kedro.data.store import ClipStore, ShardBatch, build_clip_store, plan_shards
from audioscope_kedro.models.audioscope import AudioScope
from audioscope_kedro.data.batches import MoMSet
from audioscope_kedro.evaluation.runner import evaluate

CALIBRATION_FILE = "calibration.json"


def load_model_and_calibration(folder: Path) -> tuple[AudioScope, dict]:
    model = AudioScope.load(folder)
    path = folder / CALIBRATION_FILE
    calibration = json.loads(path.read_text()) if path.exists() else {}
    return model, calibration


def _decode_settings(model: AudioScope, **overrides) -> DecodeSettings:
    c = model.config
    return DecodeSettings(
        sample_rate=c.sample_rate,
        fps=c.fps,
        frame_height=c.frame_height,
        frame_width=c.frame_width,
        **overrides,
    )


def separate_video(
    model: AudioScope, calibration: dict, video: Path
) -> dict[str, np.ndarray | list]:
    """On-screen and off-screen soundtracks of a whole video, processed in clip-length chunks."""
    settings = _decode_settings(model, short_audio="pad", max_pad_seconds=1e9, silence_db=-1e9)
    duration = probe_duration(video)
    clip = decode_clip(video, 0.0, duration, settings)
    point = operating_point(calibration)
    c = model.config
    frames_per_chunk = max(1, int(round(c.clip_seconds * c.fps)))
    samples_per_frame = c.sample_rate / c.fps
    on = np.zeros_like(clip.audio)
    probabilities = []
    with torch.no_grad():
        for f0 in range(0, len(clip.frames), frames_per_chunk):
            f1 = min(len(clip.frames), f0 + frames_per_chunk)
            a0 = int(round(f0 * samples_per_frame))
            a1 = clip.audio.size if f1 == len(clip.frames) else int(round(f1 * samples_per_frame))
            audio = torch.from_numpy(clip.audio[a0:a1]).unsqueeze(0)
            if audio.shape[-1] < c.separator.window:  # too short a tail to separate: keep as is
                on[a0:a1] = clip.audio[a0:a1]
                continue
            out = model(
                audio, torch.from_numpy(np.ascontiguousarray(clip.frames[f0:f1])).unsqueeze(0)
            )
            weights = point.weights(out.logits)
            on[a0:a1] = (weights.unsqueeze(-1) * out.sources).sum(1)[0].numpy()
            probabilities.append(torch.sigmoid(out.logits)[0].tolist())
    return {
        "mixture": clip.audio,
        "on_screen": on,
        "off_screen": clip.audio - on,
        "probabilities": probabilities,
    }


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp.wav")
    sf.write(str(tmp), audio.astype(np.float32), sample_rate, subtype="FLOAT")
    tmp.replace(path)


def cmd_separate(args: argparse.Namespace) -> int:
    model, calibration = load_model_and_calibration(Path(args.model))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for video in tqdm([Path(v) for v in args.videos], desc="separate", unit="video"):
        try:
            result = separate_video(model, calibration, video)
        except BadClipError as err:
            tqdm.write(f"{video}: skipped: {err.reason}")
            failed += 1
            continue
        sr = model.config.sample_rate
        _write_wav(out / f"{video.stem}.on_screen.wav", result["on_screen"], sr)
        _write_wav(out / f"{video.stem}.off_screen.wav", result["off_screen"], sr)
        (out / f"{video.stem}.json").write_text(
            json.dumps(
                {
                    "video": str(video),
                    "sample_rate": sr,
                    "chunk_source_probabilities": result["probabilities"],
                    "operating_point": operating_point(calibration).to_dict(),
                },
                indent=2,
            )
        )
        tqdm.write(f"{video}: wrote {video.stem}.on_screen.wav and {video.stem}.off_screen.wav")
    return 1 if failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    model, calibration = load_model_and_calibration(Path(args.model))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        lists = {
            "test_on_off_mom": read_mom_list(args.on_mom),
            "test_off_off_mom": read_mom_list(args.off_mom),
        }
    except ListValidationError as err:
        print(err, file=sys.stderr)
        return 2
    settings = _decode_settings(model)
    plans = plan_shards(assemble_clip_table(lists), args.video_root, settings, 64)
    summary = build_clip_store(ShardBatch(plans, args.workers, settings), out / "clip_store")
    store = ClipStore(out / "clip_store")
    for row in store.quarantine.itertuples(index=False):
        print(
            f"quarantined {row.video_path} [{row.start_time}-{row.end_time}]: {row.reason}",
            file=sys.stderr,
        )
    moms = MoMSet.from_table(store, assemble_mom_table(lists), model.config.clip_seconds, "test")
    result = evaluate(model, moms, operating_point(calibration), args.batch_size, args.examples)
    (out / "metrics.json").write_text(json.dumps(result.metrics, indent=2))
    for name, fig in zip(
        ("trade_off", "roc", "examples"),
        reporting.evaluation_figures(result, calibration, model.config.sample_rate),
        strict=True,
    ):
        (out / f"{name}.png").write_bytes(reporting.figure_png(fig))
    (out / "report.html").write_text(
        reporting.evaluation_report(result, calibration, model, "the given MoM lists")
    )
    print(json.dumps({**summary, **result.metrics}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audioscope", description=__doc__.split("\n\n")[0].split(" (Not")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sep = sub.add_parser(
        "separate", help="split videos' soundtracks into on-screen and off-screen sound"
    )
    sep.add_argument("videos", nargs="+", metavar="VIDEO")
    sep.add_argument(
        "--model", required=True, help="model folder (model.pt, config.json, calibration.json)"
    )
    sep.add_argument(
        "--out", required=True, help="folder for <name>.on_screen.wav, <name>.off_screen.wav"
    )
    sep.set_defaults(func=cmd_separate)
    ev = sub.add_parser("evaluate", help="metrics and report on AudioScope-format MoM lists")
    ev.add_argument("--video-root", required=True, help="folder the list paths are relative to")
    ev.add_argument("--on-mom", required=True, help="on-screen + off-screen MoM list (CSV)")
    ev.add_argument("--off-mom", required=True, help="off-screen + off-screen MoM list (CSV)")
    ev.add_argument("--model", required=True)
    ev.add_argument("--out", required=True)
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--examples", type=int, default=3)
    ev.add_argument("--workers", type=int, default=2, help="decoding processes")
    ev.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FileNotFoundError as err:
        print(f"audioscope: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
