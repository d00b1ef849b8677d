"""The streaming separation engine: decoded blocks in, finished output chunks out.

``Windower`` cuts the decoded stream into overlapping windows (model-rate mono audio, frames,
and the same span of the input's own audio); a separator (the model, or any function with its
contract) gives each window's sources and on-screen logits; ``Stitcher`` aligns, cross-fades and
splits them (see :mod:`.stitch` and :mod:`.channels`) and hands back chunks of finished audio as
soon as no later window can change them. Only a few windows are held at any time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from audioscope_kedro import device as devices
from audioscope_kedro.evaluation.calibration import OperatingPoint
from audioscope_kedro.media import MediaFormat
from audioscope_kedro.separate.channels import on_screen_channels
from audioscope_kedro.separate.reader import Block
from audioscope_kedro.separate.stitch import (
    OverlapAdd,
    WindowPlan,
    best_permutation,
    interpolate_weights,
)

VIDEO_LAG_SECONDS = 30.0  # audio this far ahead of the last frame: the video has ended


@dataclass(frozen=True)
class Geometry:
    """Where window ``k`` lies at the model's rate and at the input's rate."""

    plan: WindowPlan  # in model samples
    model_rate: int
    input_rate: int
    frames_per_window: int
    fps: float

    @classmethod
    def create(
        cls, media: MediaFormat, input_rate: int, window_seconds: float, hop_seconds: float
    ) -> Geometry:
        plan = WindowPlan(media.num_samples(window_seconds), media.num_samples(hop_seconds))
        return cls(plan, media.sample_rate, input_rate, media.num_frames(window_seconds), media.fps)

    def input_start(self, k: int) -> int:
        return int(round(self.plan.start(k) * self.input_rate / self.model_rate))

    @property
    def input_window(self) -> int:
        return int(round(self.plan.window * self.input_rate / self.model_rate))

    def first_frame(self, k: int) -> int:
        return int(round(self.plan.start(k) / self.model_rate * self.fps))

    def seconds(self, model_samples: float) -> float:
        return model_samples / self.model_rate


@dataclass
class Window:
    index: int
    mixture: np.ndarray  # float32 [W], model rate, zero-padded past the end
    frames: np.ndarray  # uint8 [F, H, W, 3]
    original: np.ndarray  # float32 [C, Wo], input rate, zero-padded past the end


@dataclass
class Separated:
    window: Window
    sources: np.ndarray  # float32 [M, W]
    logits: np.ndarray  # float32 [M]


# A separator: windows -> (sources [B, M, W], logits [B, M]); the model, or a fake in tests.
Separator = Callable[[list[Window]], tuple[np.ndarray, np.ndarray]]


def model_separator(model: torch.nn.Module, device: torch.device) -> Separator:
    """The AudioScope model as a :data:`Separator`, run on ``device`` without gradients."""

    def run(windows: list[Window]) -> tuple[np.ndarray, np.ndarray]:
        mixture = torch.from_numpy(np.stack([w.mixture for w in windows]))
        frames = torch.from_numpy(np.stack([w.frames for w in windows]))
        with torch.inference_mode():
            out = model(devices.move(mixture, device), devices.move(frames, device))
        return out.sources.float().cpu().numpy(), out.logits.float().cpu().numpy()

    return run


class SampleQueue:
    """A stream of ``[channels, n]`` samples appended in pieces and read in spans.

    The pieces are joined only when a span is read: joining on every decoded block copied the
    whole held buffer each time (one window of 44.1 kHz stereo per AAC frame), the costliest
    line of a separation after the model."""

    def __init__(self, channels: int):
        self.channels = channels
        self.pieces: list[np.ndarray] = []
        self.offset = 0  # absolute index of the first held sample
        self.held = 0

    @property
    def total(self) -> int:
        """Samples appended so far (absolute end of the stream)."""
        return self.offset + self.held

    def append(self, piece: np.ndarray) -> None:
        if piece.shape[-1]:
            self.pieces.append(piece)
            self.held += piece.shape[-1]

    def span(self, start: int, length: int) -> np.ndarray:
        """Samples ``[start, start + length)`` (absolute, not before ``offset``), zero-padded
        past the end: ``[channels, length]`` float32."""
        out = np.zeros((self.channels, length), np.float32)
        if self.pieces:
            piece = self._joined()[:, start - self.offset : start - self.offset + length]
            out[:, : piece.shape[1]] = piece
        return out

    def drop_before(self, position: int) -> None:
        """Forget the samples before absolute ``position``."""
        drop = max(0, min(position - self.offset, self.held))
        if not drop:
            return
        self.pieces = [self._joined()[:, drop:]]
        self.offset, self.held = self.offset + drop, self.held - drop

    def _joined(self) -> np.ndarray:
        """The held samples as one array (joined once, then kept as the only piece)."""
        if len(self.pieces) > 1:
            self.pieces = [np.concatenate(self.pieces, axis=-1)]
        return self.pieces[0]


class Windower:
    """Decoded :class:`Block` s in, complete :class:`Window` s out, in order."""

    def __init__(self, geometry: Geometry, channels: int, frame_shape: tuple[int, int]):
        self.g = geometry
        self.channels = channels
        self.frame_shape = frame_shape
        self.model = SampleQueue(1)  # mono, model rate
        self.input = SampleQueue(channels)  # the input's channels and rate
        self.frames: dict[int, np.ndarray] = {}
        self.last_frame: np.ndarray | None = None
        self.last_frame_index = -1
        self.k = 0
        self.done = False  # the last window has been emitted

    @property
    def model_total(self) -> int:
        return self.model.total

    @property
    def input_total(self) -> int:
        return self.input.total

    def push(self, block: Block) -> list[Window]:
        if block.model_audio is not None:
            self.model.append(block.model_audio[None])
        if block.audio is not None:
            audio = block.audio
            if audio.shape[0] != self.channels:  # a mid-stream layout change: fit it
                audio = np.resize(audio.mean(0, keepdims=True), (self.channels, audio.shape[1]))
            self.input.append(audio)
        for k, rgb in block.frames or []:
            self.frames[k] = rgb
            self.last_frame, self.last_frame_index = rgb, max(self.last_frame_index, k)
        out = []
        while self._ready(self.k):
            out.append(self._cut(self.k))
            self.k += 1
        return out

    def _ready(self, k: int) -> bool:
        if self.done:
            return False
        end = self.g.plan.start(k) + self.g.plan.window
        if self.model_total < end or self.input_total < self.g.input_start(k) + self.g.input_window:
            return False
        need = self.g.first_frame(k) + self.g.frames_per_window - 1
        video_over = self.g.seconds(self.model_total) - self.last_frame_index / self.g.fps
        return self.last_frame_index >= need or video_over > VIDEO_LAG_SECONDS

    def finish(self) -> list[Window]:
        """The remaining windows once the stream has ended (at least one in all)."""
        out = []
        # cover every decoded sample at both rates (their resamplers may differ by a few)
        length = max(
            self.model_total,
            int(np.ceil(self.input_total * self.g.model_rate / self.g.input_rate)),
        )
        while not self.done and (self.k == 0 or self.g.plan.start(self.k) < length):
            if self.k > 0 and self.g.plan.start(self.k - 1) + self.g.plan.window >= length:
                break
            out.append(self._cut(self.k))
            self.k += 1
        self.done = True
        return out

    def _cut(self, k: int) -> Window:
        g = self.g
        mixture = self.model.span(g.plan.start(k), g.plan.window)[0]
        original = self.input.span(g.input_start(k), g.input_window)
        blank = np.zeros((*self.frame_shape, 3), np.uint8)
        first = g.first_frame(k)
        frames = []
        for j in range(first, first + g.frames_per_window):
            rgb = self.frames.get(j)
            if rgb is None:  # before the first frame or after the video ended: nearest one
                rgb = self.last_frame if self.last_frame is not None and j > 0 else blank
                earlier = [i for i in self.frames if i <= j]
                if earlier:
                    rgb = self.frames[max(earlier)]
            frames.append(rgb)
        # drop what the next window does not need
        self.model.drop_before(g.plan.start(k + 1))
        self.input.drop_before(g.input_start(k + 1))
        keep_from = g.first_frame(k + 1)
        for j in [j for j in self.frames if j < keep_from]:
            if j != self.last_frame_index:
                del self.frames[j]
        return Window(k, mixture, np.stack(frames), original)


@dataclass
class WindowRecord:
    """One window's decision, for ``probabilities.csv`` and the plot."""

    index: int
    start: float  # s
    end: float  # s
    probabilities: np.ndarray  # [M], aligned source order
    weights: np.ndarray  # [M]


@dataclass
class Chunk:
    """Finished output samples ``[start, start + n)`` (input rate) and the sources' samples
    ``[source_start, ...)`` (model rate)."""

    start: int
    original: np.ndarray  # float32 [C, n]
    on_screen: np.ndarray  # float32 [C, n]
    off_screen: np.ndarray  # float32 [C, n], original - on_screen
    sources: np.ndarray  # float32 [M, n'] at the model's rate


@dataclass
class _Pending:
    separated: Separated
    sources: np.ndarray  # aligned [M, W]
    weights: np.ndarray  # aligned [M]


@dataclass
class Stitcher:
    """Aligns, cross-fades and splits separated windows, in order; see the module docstring."""

    geometry: Geometry
    point: OperatingPoint
    channels: int
    records: list[WindowRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.previous: np.ndarray | None = None  # aligned sources of the last window
        self.pending: deque[_Pending] = deque()
        self.centres: deque[tuple[float, np.ndarray]] = deque()  # (model sample, weights [M])
        self.on = OverlapAdd(self.channels)
        self.sources: OverlapAdd | None = None
        self.input_done = 0  # input samples handed out
        self.model_done = 0

    def push(self, item: Separated) -> list[Chunk]:
        g, k = self.geometry, item.window.index
        overlap = g.plan.window - g.plan.hop
        if self.previous is None or overlap <= 0:
            perm = np.arange(item.sources.shape[0])
        else:
            perm = best_permutation(self.previous[:, g.plan.hop :], item.sources[:, :overlap])
        sources, logits = item.sources[perm], item.logits[perm]
        weights = self.point.weights(torch.from_numpy(logits)).numpy().astype(np.float64)
        self.previous = sources
        start = g.plan.start(k)
        self.records.append(
            WindowRecord(
                k,
                g.seconds(start),
                g.seconds(start + g.plan.window),
                1 / (1 + np.exp(-logits.astype(np.float64))),
                weights,
            )
        )
        self.pending.append(_Pending(item, sources, weights))
        self.centres.append((g.plan.centre(k), weights))
        out = []
        # a window is final once the weights at every one of its samples are known: some
        # later window's centre lies at or after its end
        while (
            len(self.pending) > 1
            and self.centres[-1][0]
            >= g.plan.start(self.pending[0].separated.window.index) + g.plan.window
        ):
            out.append(self._finalise(self.pending.popleft(), last=False))
        return out

    def finish(self, input_length: int, model_length: int) -> list[Chunk]:
        out = []
        while self.pending:
            p = self.pending.popleft()
            out.append(
                self._finalise(p, last=not self.pending, lengths=(input_length, model_length))
            )
        return out

    def _finalise(self, p: _Pending, last: bool, lengths: tuple[int, int] | None = None) -> Chunk:
        g, w = self.geometry, p.separated.window
        start = g.plan.start(w.index)
        while len(self.centres) > 2 and self.centres[1][0] <= start:  # no longer needed
            self.centres.popleft()
        centres = np.array([c for c, _ in self.centres])
        weights = np.stack([v for _, v in self.centres])
        times = start + np.arange(g.plan.window, dtype=np.float64)
        on_model = (interpolate_weights(centres, weights, times) * p.sources).sum(0)
        on_input = on_screen_channels(
            w.original, g.input_rate, w.mixture, on_model.astype(np.float32), g.model_rate
        )
        a = g.input_start(w.index)
        self.on.add(a, on_input)
        if self.sources is None:
            self.sources = OverlapAdd(p.sources.shape[0])
        self.sources.add(start, p.sources)
        if last:
            assert lengths is not None
            input_end, model_end = lengths
        else:
            input_end, model_end = g.input_start(w.index + 1), g.plan.start(w.index + 1)
        on = self.on.pop(input_end)
        first = self.input_done
        original = w.original[:, first - a : first - a + on.shape[1]].astype(np.float64)
        if original.shape[1] < on.shape[1]:  # past the window (lengths disagree by a sample)
            original = np.pad(original, ((0, 0), (0, on.shape[1] - original.shape[1])))
        self.input_done += on.shape[1]
        sources = self.sources.pop(model_end)
        self.model_done += sources.shape[1]
        return Chunk(
            first,
            original.astype(np.float32),
            on.astype(np.float32),
            (original - on).astype(np.float32),
            sources.astype(np.float32),
        )
