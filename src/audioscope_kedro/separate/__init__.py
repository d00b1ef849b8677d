"""Separating users' videos of any length (what ``audioscope separate`` runs), in a stream.

``reader`` (PyAV decode) -> ``engine`` (windows, model, ``stitch``ing, ``channels``) ->
``writers`` (stems, remuxed video, CSV) and ``page`` (figures, ``index.html``); ``run`` ties
them together for one input: :func:`separate_file`.
"""

from audioscope_kedro.separate.run import (
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
