"""``ingest``: lists (or a folder of videos) to a sharded, indexed clip store."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
