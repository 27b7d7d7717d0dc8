"""Sweep speed: a 6-strategy x 10-level accuracy curve on LeNet-300-100 / MNIST-5k.

    python benchmarks/sweep_speed.py [--repeats 3]     # one torch thread

Times ``experiments.sweep`` (each strategy scored once per seed, every level cut
from that one ranking) against the naive loop (``prune`` + ``evaluate`` afresh per
point), without fine-tuning, with one fine-tuning epoch per point, and with that
in two local processes (``executor="process"``). Medians of the runs, measured side by side in one
process. Targets: <= 2 s without and <= 60 s with fine-tuning.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sparsity_viz import load_dataset, load_sample  # noqa: E402
from sparsity_viz.data import data_batch  # noqa: E402
from sparsity_viz.experiments import sweep  # noqa: E402
from sparsity_viz.pruning import prune  # noqa: E402
from sparsity_viz.training import TrainConfig, evaluate_dataset, train  # noqa: E402

STRATEGIES = ["magnitude", "global_magnitude", "random", "structured", "n_m_2_4", "snip"]
LEVELS = [i / 10 for i in range(10)]  # 0.0 .. 0.9


def naive(model, ds, finetune=None):
    """The reference loop: prune the dense model afresh for every point."""
    for name in STRATEGIES:
        batch = data_batch(ds)
        for level in LEVELS:
            pruned = prune(model, name, level, batch=batch)
            net = train(pruned.model, ds, finetune, masks=pruned.masks).model if finetune and level > 0 else pruned.model
            evaluate_dataset(net, ds)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, _ = load_sample("lenet300")
    ds = load_dataset("mnist5k")
    ft = TrainConfig(epochs=1, lr=1e-4)
    runs = {
        "sweep, no fine-tuning": (lambda: sweep(model, ds, STRATEGIES, LEVELS), args.repeats),
        "naive loop, no fine-tuning": (lambda: naive(model, ds), args.repeats),
        "sweep, 1 fine-tuning epoch/point": (lambda: sweep(model, ds, STRATEGIES, LEVELS, finetune=ft), 1),
        "sweep, 1 fine-tuning epoch/point, 2 processes": (
            lambda: sweep(model, ds, STRATEGIES, LEVELS, finetune=ft, executor="process", workers=2), 1),
        "naive loop, 1 fine-tuning epoch/point": (lambda: naive(model, ds, ft), 1),
    }
    print(f"{len(STRATEGIES)} strategies x {len(LEVELS)} levels = {len(STRATEGIES) * len(LEVELS)} points")
    for name, (fn, repeat) in runs.items():
        med, times = median_time(fn, repeat)
        print(f"{name:50s} median {med:6.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times)})")
