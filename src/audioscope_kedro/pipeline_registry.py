"""Project pipelines: every package under ``pipelines/`` with a ``create_pipeline``."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# `demo_data` writes the example dataset and `tune` runs many trainings: neither belongs to the
# default chain, which goes from ingestion to evaluation on whatever dataset is configured.
_NOT_IN_DEFAULT = {"demo_data", "tune"}


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (p for name, p in pipelines.items() if name not in _NOT_IN_DEFAULT), Pipeline([])
    )
    return pipelines
