"""Attention variants: forward time and peak memory against clip length.

    .venv/bin/python benchmarks/attention.py [--lengths 5 10 20 40 60] [--repeats 5] [--threads 1]

Default attention config (64-dim, 4 heads, 2 layers) on the default model's inputs: M = 4
sources, 8 fps, 8x8 = 64 positions from 64x64 frames; batch 1, no gradients, one thread by
default: on a machine shared with other jobs, two OpenMP threads that wait on each other
measure the scheduler, not the work (``sep_sa`` at 5 s: 32 ms with one thread, 960 ms with two
at a load average of 6 on 2 cores).

- time: median wall time of ``--repeats`` forward passes (three where one takes over 2 s),
  after one warm-up pass (the median, not the minimum, because other jobs may share the cores;
  the repeats go round the lengths, and the load average is printed at the start and the end).
- CPU: median CPU time of the process over the same passes (``time.process_time``): the work
  done, which time-slicing with other jobs does not inflate as it does the wall time (with one
  thread; with several, threads waiting on each other under contention add to it too).
- memory: peak bytes of live tensors during one forward pass, above those live when it
  starts (inputs and weights), from ``torch.profiler.profile(profile_memory=True)``'s memory
  timeline (every allocation and free of PyTorch's CPU allocator, scaled-dot-product
  workspaces included): what the pass adds, not the process's resident size, which malloc's
  caching blurs.

Prints a table and the exponent k of a least-squares fit ``y ~ length^k`` over all lengths and
over the last three (where the leading term dominates), then the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # before torch: no profiler start/stop chatter
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from audioscope_kedro.models.attention import (  # noqa: E402
    ATTENTION_VARIANTS,
    AttentionConfig,
    build_attention,
)

FPS, SOURCES, POSITIONS = 8, 4, 64
SLOW_S = 2.0  # a pass longer than this is repeated three times, not --repeats


def peak_memory_mb(fn) -> float:
    """Peak live-tensor bytes of ``fn()`` above those live at its start, in MB (1e6 bytes)."""
    with profile(
        activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True
    ) as prof:
        fn()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "memory.json"
        with warnings.catch_warnings():  # deprecated in favour of a CUDA-only snapshot tool
            warnings.simplefilter("ignore", FutureWarning)
            prof.export_memory_timeline(str(path), device="cpu")
        _, sizes = json.loads(path.read_text())
    total = np.asarray(sizes, dtype=np.float64).sum(axis=1)  # bytes live, summed over categories
    return float(total.max() - total[0]) / 1e6


def measure(variant: str, lengths: list[float], repeats: int) -> list[dict]:
    """Time and memory of one variant at each length. The repeats go round the lengths, so
    that a change of load on the machine touches every length alike."""
    torch.manual_seed(0)
    att = build_attention(AttentionConfig(variant=variant)).eval()
    inputs = []
    for seconds in lengths:
        frames = int(seconds * FPS)
        audio = torch.randn(1, SOURCES, frames, att.config.dim)
        inputs.append((audio, torch.randn(1, frames, POSITIONS, att.config.dim)))
    times, cpu = [[] for _ in lengths], [[] for _ in lengths]
    with torch.no_grad():
        att(*inputs[0])  # warm-up
        for round_ in range(repeats):
            for i, (audio, video) in enumerate(inputs):
                if round_ >= 3 and statistics.median(times[i]) > SLOW_S:
                    continue  # three passes of a slow one are enough
                start, start_cpu = time.perf_counter(), time.process_time()
                att(audio, video)
                times[i].append(time.perf_counter() - start)
                cpu[i].append(time.process_time() - start_cpu)
        memory = [peak_memory_mb(lambda a=a, v=v: att(a, v)) for a, v in inputs]
    return [
        {
            "time_ms": 1e3 * statistics.median(t),
            "cpu_ms": 1e3 * statistics.median(c),
            "memory_mb": m,
        }
        for t, c, m in zip(times, cpu, memory, strict=True)
    ]


def exponent(lengths, values) -> float:
    return float(np.polyfit(np.log(lengths), np.log(values), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=float, nargs="+", default=[5, 10, 20, 40, 60])
    parser.add_argument("--variants", nargs="+", default=list(ATTENTION_VARIANTS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lengths = args.lengths
    print(
        "load average (1, 5, 15 min) at the start: "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print(
        f"batch 1, M = {SOURCES} sources, P = {POSITIONS} positions, {FPS} fps, "
        f"{torch.get_num_threads()} threads; time: median of {args.repeats}, "
        "memory: peak live tensors above the inputs (torch.profiler)"
    )
    header = " ".join(f"{s:>7.0f}s" for s in lengths)
    print(f"{'variant':<8} {'':<10} {header}   exponent: all lengths, last three")
    results = {}
    for variant in args.variants:
        started = time.perf_counter()
        rows = results[variant] = measure(variant, lengths, args.repeats)
        for key, label in (
            ("time_ms", "time ms"),
            ("cpu_ms", "CPU ms"),
            ("memory_mb", "memory MB"),
        ):
            values = [r[key] for r in rows]
            fits = ""
            if len(lengths) >= 3:
                fits = (
                    f"   {exponent(lengths, values):4.2f}, "
                    f"{exponent(lengths[-3:], values[-3:]):4.2f}"
                )
            name = variant if key == "time_ms" else ""
            print(f"{name:<8} {label:<10}" + "".join(f"{v:8.1f}" for v in values) + fits)
        print(f"  {variant}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print(
        "load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print(json.dumps({"lengths_s": lengths, "results": results}))


if __name__ == "__main__":
    main()
