"""The ``audioscope`` command: separate users' videos, evaluate a model on any AudioScope-format
MoM lists. Argument parsing and reporting only: the work is done by
:mod:`audioscope_kedro.separate` and :mod:`audioscope_kedro.evaluation.mom_lists`.
(Not ``cli.py``: Kedro loads that module of a project for its own commands.)

    audioscope separate VIDEO_OR_FOLDER... --model DIR --out DIR [--threshold P |
        --target-suppression DB] [--device auto] [--window S --hop S] [--format flac] [--no-video]
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
from audioscope_kedro.evaluation.calibration import (
    RAW,
    CalibrationMismatchError,
    OperatingPoint,
    PointKind,
)
from audioscope_kedro.evaluation.mom_lists import evaluate_mom_lists
from audioscope_kedro.models.persistence import ModelFolderError
from audioscope_kedro.release import ReleasedModel
from audioscope_kedro.separate import SeparateOptions, find_videos, separate_file


class UsageError(ValueError):
    """A command line that cannot be run (exit code 2)."""


def operating_point(release: ReleasedModel, args: argparse.Namespace) -> tuple[OperatingPoint, str]:
    """The operating point asked for, and where it comes from (for the report). A
    ``--target-suppression`` must be one the calibration has a point for."""
    cal = release.calibration
    if args.threshold is not None:
        if not 0 < args.threshold < 1:
            raise UsageError(f"--threshold must be between 0 and 1, not {args.threshold}")
        return OperatingPoint(PointKind.THRESHOLD, threshold=args.threshold), "--threshold"
    if args.target_suppression is not None:
        if cal is None:
            raise UsageError("--target-suppression needs the model's calibration.json")
        points = {cal.target_suppression_db: cal.point, **cal.points_by_target}
        for target, point in points.items():
            if abs(target - args.target_suppression) < 1e-9:
                return point, f"calibrated to {target:g} dB of suppression"
        known = ", ".join(f"{t:g}" for t in sorted(points))
        raise UsageError(
            f"the calibration has no point for {args.target_suppression:g} dB (it has: {known} "
            "dB); use one of them or --threshold"
        )
    if cal is None:
        return RAW, "no calibration.json: the raw probabilities"
    return cal.point, f"the saved calibration ({cal.target_suppression_db:g} dB of suppression)"


class WindowBar:
    """The progress bar over one input's windows, shown once there is more than one."""

    def __init__(self, name: str):
        self.name = name
        self.bar: tqdm | None = None

    def update(self, done: int, total: int) -> None:
        if self.bar is None and total > 1:
            self.bar = tqdm(total=total, desc=self.name, unit="window", leave=False, disable=None)
        if self.bar is not None:
            self.bar.total = max(self.bar.total, total)
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_separate(args: argparse.Namespace) -> int:
    if args.window is not None and args.window <= 0:
        raise UsageError(f"--window must be positive, not {args.window}")
    if args.hop is not None and (args.hop <= 0 or args.hop > (args.window or float("inf"))):
        raise UsageError(f"--hop must be positive and at most the window, not {args.hop}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, not {args.batch_size}")
    release = ReleasedModel.load(Path(args.model))
    point, origin = operating_point(release, args)
    options = SeparateOptions(
        point=point,
        window_seconds=args.window,
        hop_seconds=args.hop,
        batch_size=args.batch_size,
        audio_format=args.format,
        video=not args.no_video,
        device=device.choose(args.device),
    )
    try:
        options.window_and_hop(release.model.config.clip_seconds)
    except ValueError as err:
        raise UsageError(str(err)) from None
    inputs: list[Path] = []
    failures: list[tuple[Path, str]] = []
    for name in args.videos:
        found = find_videos(Path(name))
        if not found:
            failures.append((Path(name), "no video files in this folder"))
        inputs.extend(found)
    out = Path(args.out)
    tqdm.write(f"operating point: {point.describe()} ({origin}); device {options.device}")
    for video in tqdm(inputs, desc="separate", unit="video", disable=None):
        bar = WindowBar(video.name)
        try:
            report = separate_file(release.model, video, out, options, bar.update)
        except BadClipError as err:
            failures.append((video, err.reason))
            tqdm.write(f"{video}: skipped: {err.reason}")
            continue
        except Exception as err:  # noqa: BLE001 - one input's failure must not stop the others
            # (an encoder's or PyAV's own error on an odd file, a full disk): named, and the
            # command goes on; its output folder was never renamed into place
            failures.append((video, f"{type(err).__name__}: {err}"))
            tqdm.write(f"{video}: failed: {type(err).__name__}: {err}")
            continue
        finally:
            bar.close()
        rtf = report.timings.total / max(report.duration, 1e-9)
        tqdm.write(
            f"{video}: {report.duration:.1f} s, {report.windows} windows -> {report.folder} "
            f"(real-time factor {rtf:.3f})"
        )
    done = len(inputs) - sum(1 for v, _ in failures if v in inputs)
    print(f"separated {done} of {len(inputs)} video(s) into {out}")
    if failures:
        print(f"{len(failures)} failed:", file=sys.stderr)
        for video, reason in failures:
            print(f"  {video}: {reason}", file=sys.stderr)
    return 1 if failures else 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.examples < 1:
        raise UsageError(f"--examples must be at least 1, not {args.examples}")
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
    sep.add_argument("videos", nargs="+", metavar="VIDEO_OR_FOLDER", help="folders are walked")
    sep.add_argument(
        "--model", required=True, help="model folder (model.pt, config.json, calibration.json)"
    )
    sep.add_argument("--out", required=True, help="one folder per input is made in it")
    point = sep.add_mutually_exclusive_group()
    point.add_argument(
        "--threshold", type=float, help="keep the sources whose on-screen probability is above"
    )
    point.add_argument(
        "--target-suppression",
        type=float,
        metavar="DB",
        help="the calibration's point for this off-screen suppression (default: the saved one)",
    )
    sep.add_argument("--device", default="auto", help="cpu, cuda, cuda:<n> or auto")
    sep.add_argument("--batch-size", type=int, default=4, help="windows per model call")
    sep.add_argument("--window", type=float, help="seconds (default: the model's clip length)")
    sep.add_argument("--hop", type=float, help="seconds between windows (default: half a window)")
    sep.add_argument("--format", choices=("wav", "flac"), default="wav")
    sep.add_argument("--no-video", action="store_true", help="no remuxed on_screen.mp4")
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
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse's usage errors (2) and --help (0)
        return int(exit_.code or 0)
    try:
        return args.func(args)
    except (
        FileNotFoundError,
        CalibrationMismatchError,
        ModelFolderError,
        UsageError,
        RuntimeError,
    ) as err:
        print(f"audioscope: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
