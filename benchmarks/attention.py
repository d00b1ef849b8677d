"""Attention variants: forward time and peak memory against clip length.

    .venv/bin/python benchmarks/attention.py [--lengths 5 10 20 40]

Default model sizes (M = 4 sources, 64-dim embeddings, 2 layers, 4 heads, 8 fps, 8x8 = 64
positions from 64x64 frames), batch 1, 2 threads. Each (variant, length) runs in a fresh
process so that its peak resident memory can be read; memory is the peak minus the process's
resident size before the forward pass. Prints the exponent k of a least-squares fit
time ~ length^k: about 1 for the separable variants, towards 2 for the joint ones.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource

import numpy as np


def measure(variant: str, seconds: float, queue) -> None:
    import time

    import torch

    from audioscope_kedro.models.attention import AttentionConfig, build_attention

    torch.set_num_threads(2)
    torch.manual_seed(0)
    frames = int(seconds * 8)
    att = build_attention(AttentionConfig(variant=variant)).eval()
    audio, video = torch.randn(1, 4, frames, 64), torch.randn(1, frames, 64, 64)
    with torch.no_grad():
        att(audio[:, :, :8], video[:, :8])  # warm-up on a short clip
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        times = []
        for _ in range(3):
            start = time.perf_counter()
            att(audio, video)
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put({"time_s": min(times), "memory_mb": max(0, peak - base) / 1024})


def run(variant: str, seconds: float) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=measure, args=(variant, seconds, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=float, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--variants", nargs="+", default=["pool", "sa", "cma", "sep_sa", "sep_cma"])
    args = parser.parse_args()
    header = " ".join(f"{s:>5.0f} s" for s in args.lengths)
    print(f"{'variant':<8} {'':<10} {header}   fitted exponent (time)")
    results = {}
    for variant in args.variants:
        rows = [run(variant, s) for s in args.lengths]
        results[variant] = rows
        times = np.array([r["time_s"] for r in rows])
        k = np.polyfit(np.log(args.lengths), np.log(times), 1)[0]
        print(
            f"{variant:<8} {'time ms':<10} "
            + " ".join(f"{1e3 * t:7.1f}" for t in times)
            + f"   {k:4.2f}"
        )
        print(f"{'':<8} {'memory MB':<10} " + " ".join(f"{r['memory_mb']:7.1f}" for r in rows))
    print(json.dumps({"lengths_s": args.lengths, "results": results}))


if __name__ == "__main__":
    main()
