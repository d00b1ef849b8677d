"""The ``audioscope`` command: separate users' videos, evaluate a model on any AudioScope-format
MoM lists. Argument parsing and reporting only: the work is done by
:mod:`audioscope_kedro.inference` and :mod:`audioscope_kedro.evaluation.mom_lists`.
(Not ``cli.py``: Kedro loads that module of a project for its own commands.)

    audioscope separate VIDEO... --model DIR --out DIR
    audioscope evaluate --video-root DIR --on-mom CSV --off-mom CSV --model DIR --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from audioscope_kedro import device
from audioscope_kedro.data.decode import BadClipError
from audioscope_kedro.data.lists import ListValidationError
from audioscope_kedro.evaluation.calibration import CalibrationMismatchError
from audioscope_kedro.evaluation.mom_lists import evaluate_mom_lists
from audioscope_kedro.inference import separate_video, write_separation
from audioscope_kedro.release import ReleasedModel


def cmd_separate(args: argparse.Namespace) -> int:
    release = ReleasedModel.load(Path(args.model))
    target = device.choose(args.device)
    out = Path(args.out)
    failed = 0
    for video in tqdm([Path(v) for v in args.videos], desc="separate", unit="video"):
        try:
            result = separate_video(release, video, device=target)
        except BadClipError as err:
            tqdm.write(f"{video}: skipped: {err.reason}")
            failed += 1
            continue
        write_separation(result, out, video.stem, video)
        tqdm.write(f"{video}: wrote {video.stem}.on_screen.wav and {video.stem}.off_screen.wav")
    return 1 if failed else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    release = ReleasedModel.load(Path(args.model))
    try:
        result = evaluate_mom_lists(
            release,
            args.video_root,
            args.on_mom,
            args.off_mom,
            args.out,
            args.workers,
            args.batch_size,
            args.examples,
        )
    except ListValidationError as err:
        print(err, file=sys.stderr)
        return 2
    for line in result.quarantine:
        print(f"quarantined {line}", file=sys.stderr)
    print(json.dumps({**result.ingest_summary, **result.metrics}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audioscope", description=__doc__.split("\n\n")[0].split(" Argument")[0]
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
    sep.add_argument("--device", default="cpu", help="cpu, cuda, cuda:<n> or auto")
    sep.set_defaults(func=cmd_separate)
    ev = sub.add_parser("evaluate", help="metrics and report on AudioScope-format MoM lists")
    ev.add_argument("--video-root", required=True, help="folder the list paths are relative to")
    ev.add_argument(
        "--on-mom", required=True, help="MoM list whose clip 1 is on-screen only (V1 or V2 name)"
    )
    ev.add_argument(
        "--off-mom", required=True, help="MoM list whose clip 1 is off-screen only (V1 or V2 name)"
    )
    ev.add_argument("--model", required=True)
    ev.add_argument("--out", required=True)
    ev.add_argument("--batch-size", type=int, default=16)
    ev.add_argument("--examples", type=int, default=1, help="examples of each MoM kind")
    ev.add_argument("--workers", type=int, default=2, help="decoding processes")
    ev.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, CalibrationMismatchError, RuntimeError) as err:
        print(f"audioscope: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
