"""``demo_data``: a synthetic audio-visual dataset in the AudioScope release layout."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
