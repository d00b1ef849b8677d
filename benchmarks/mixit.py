"""MixIT: the vectorised search against a per-assignment Python loop (as asteroid's wrapper does).

    .venv/bin/python benchmarks/mixit.py

Batch 8, 5 s at 16 kHz, M = 4 and 8, forward + backward. Prints milliseconds per call, the
speed-up, and the largest difference of the losses (goal: >= 10x at M = 8, identical values).
"""

from __future__ import annotations

import itertools
import time

import torch

from audioscope_kedro.losses import mixit, snr_loss


def loop_mixit(est, mix1, mix2):
    """Reference: build each assignment's two mixtures and keep the best loss, one by one."""
    m = est.shape[1]
    best = None
    for bits in itertools.product([0.0, 1.0], repeat=m):
        a = torch.tensor(bits, dtype=est.dtype)[None, :, None]
        loss = snr_loss((a * est).sum(1), mix1) + snr_loss(((1 - a) * est).sum(1), mix2)
        best = loss if best is None else torch.minimum(best, loss)
    return best


def timed(fn, *args, repeats=3):
    times = []
    for _ in range(repeats):
        est = args[0].detach().requires_grad_(True)
        start = time.perf_counter()
        out = fn(est, *args[1:])
        loss = out[0] if isinstance(out, tuple) else out
        loss.sum().backward()
        times.append(time.perf_counter() - start)
    return min(times), loss.detach()


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    b, t = 8, 5 * 16000
    print(f"batch {b}, {t} samples, torch threads {torch.get_num_threads()}")
    for m in (4, 8):
        est = torch.randn(b, m, t)
        mix1, mix2 = torch.randn(b, t), torch.randn(b, t)
        t_vec, l_vec = timed(mixit, est, mix1, mix2)
        t_loop, l_loop = timed(loop_mixit, est, mix1, mix2, repeats=1 if m == 8 else 3)
        print(
            f"M={m}: vectorised {1e3 * t_vec:8.1f} ms | loop over {2**m:3d} assignments {1e3 * t_loop:8.1f} ms "
            f"| speed-up {t_loop / t_vec:5.1f}x | max |loss difference| {(l_vec - l_loop).abs().max().item():.2e} dB"
        )


if __name__ == "__main__":
    main()
