"""The media format a model consumes and the clip store holds: one definition for both.

Decoding writes clips in this format; a model records the format it was trained on in its
``config.json``, and inference decodes a user's video to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MediaFormat:
    sample_rate: int = 16000  # Hz, mono (as in the papers)
    fps: float = 8.0  # video frames per second
    frame_height: int = 64
    frame_width: int = 64

    def __post_init__(self) -> None:
        if min(self.sample_rate, self.fps, self.frame_height, self.frame_width) <= 0:
            raise ValueError(f"sample_rate, fps and frame size must be positive: {self}")

    def num_samples(self, seconds: float) -> int:
        return int(round(seconds * self.sample_rate))

    def num_frames(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.fps)))

    @property
    def samples_per_frame(self) -> float:
        return self.sample_rate / self.fps

    def to_dict(self) -> dict:
        return asdict(self)
