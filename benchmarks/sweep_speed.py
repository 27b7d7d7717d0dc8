"""Sweep speed: a 6-strategy x 10-level accuracy curve on LeNet-300-100 / MNIST-5k.

    python benchmarks/sweep_speed.py            # best of 3 runs, one torch thread

Times ``comparison.compare_sweep`` (scores once per strategy and seed, every level
a prefix of one sort) against ``experiments.sweep`` (prunes afresh per point),
without fine-tuning, with one fine-tuning epoch per point, and with that in two
local processes. Targets: <= 2 s without and <= 60 s with fine-tuning.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sparsity_viz import load_dataset, load_sample  # noqa: E402
from sparsity_viz.comparison import compare_sweep  # noqa: E402
from sparsity_viz.experiments import sweep  # noqa: E402
from sparsity_viz.training import TrainConfig  # noqa: E402

STRATEGIES = ["magnitude", "global_magnitude", "random", "structured", "n_m_2_4", "snip"]
LEVELS = [i / 10 for i in range(10)]  # 0.0 .. 0.9


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), times


if __name__ == "__main__":
    torch.set_num_threads(1)
    model, _ = load_sample("lenet300")
    ds = load_dataset("mnist5k")
    ft = TrainConfig(epochs=1, lr=1e-4)
    runs = {
        "compare_sweep, no fine-tuning": (lambda: compare_sweep(model, ds, STRATEGIES, LEVELS, baselines=False), 3),
        "experiments.sweep, no fine-tuning": (lambda: sweep(model, ds, STRATEGIES, LEVELS), 3),
        "compare_sweep, 1 fine-tuning epoch/point": (lambda: compare_sweep(model, ds, STRATEGIES, LEVELS, finetune=ft, baselines=False), 1),
        "compare_sweep, 1 fine-tuning epoch/point, 2 processes": (
            lambda: compare_sweep(model, ds, STRATEGIES, LEVELS, finetune=ft, baselines=False, workers=2), 1),
        "experiments.sweep, 1 fine-tuning epoch/point": (lambda: sweep(model, ds, STRATEGIES, LEVELS, finetune=ft), 1),
    }
    print(f"{len(STRATEGIES)} strategies x {len(LEVELS)} levels = {len(STRATEGIES) * len(LEVELS)} points")
    for name, (fn, repeat) in runs.items():
        best, times = best_of(fn, repeat)
        print(f"{name:58s} best {best:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times)})")
