"""Separating a whole video with a released model: the public entry point of the
:mod:`audioscope_kedro.separate` package (streaming decode, overlapping windows, stitching,
the outputs), kept at this path for the command, notebooks and pipelines."""

from audioscope_kedro.separate import (
    SeparateOptions,
    SeparationReport,
    Timings,
    find_videos,
    output_folder,
    separate_file,
)

__all__ = [
    "SeparateOptions",
    "SeparationReport",
    "Timings",
    "find_videos",
    "output_folder",
    "separate_file",
]
