"""Real-time factor of inference on this CPU: separation network and the whole model.

    .venv/bin/python benchmarks/realtime.py

Default config (16 kHz, M = 4, learned basis 256/64, 8 blocks of 64/128 channels, 8 fps,
64x64 frames), a 5 s clip, batch 1, 2 threads, no gradients. RTF = compute time / audio
duration (goal: whole model below 0.01). Every attention variant is timed.
"""

from __future__ import annotations

import time

import torch

from audioscope_kedro.models.attention import ATTENTION_VARIANTS, AttentionConfig
from audioscope_kedro.models.audioscope import AudioScope, AudioScopeConfig


def best_time(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    seconds = 5.0
    mixture = torch.randn(1, int(16000 * seconds))
    frames = torch.randint(0, 256, (1, int(8 * seconds), 64, 64, 3), dtype=torch.uint8)
    print(f"{seconds:.0f} s clip at 16 kHz, batch 1, {torch.get_num_threads()} threads")
    with torch.no_grad():
        for variant in sorted(ATTENTION_VARIANTS):
            model = AudioScope(AudioScopeConfig(attention=AttentionConfig(variant=variant))).eval()
            n_params = sum(p.numel() for p in model.parameters())
            t_sep = best_time(lambda m=model: m.separator(mixture))
            t_all = best_time(lambda m=model: m(mixture, frames))
            print(
                f"{variant:<8} {n_params / 1e3:6.0f}k params | separator RTF {t_sep / seconds:.4f} "
                f"({1e3 * t_sep:5.1f} ms) | whole model RTF {t_all / seconds:.4f} ({1e3 * t_all:5.1f} ms)"
            )


if __name__ == "__main__":
    main()
