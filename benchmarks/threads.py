"""Torch intra-op threads: 1 vs all cores, per bundled model, measured side by side.

    python benchmarks/threads.py [--repeats 200]

Prints the median time of one training step (batch 64) and of a forward pass
over the whole test split, for each thread count, interleaved so that machine
noise hits both alike. This is what ``devices.DEFAULT_NUM_THREADS`` rests on.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from sparsity_viz import load_dataset, load_sample  # noqa: E402
from sparsity_viz.models import MODELS  # noqa: E402


def _time(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{'model':<12} {'step 1 thr':>11} {'step ' + str(cores) + ' thr':>11} {'fwd 1 thr':>10} {'fwd ' + str(cores) + ' thr':>10}  (medians, ms)")
    for name in MODELS:
        model, card = load_sample(name)
        data = load_dataset(card["dataset"]["name"])
        xb, yb = data.x_train[:64], data.y_train[:64]
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step():
            opt.zero_grad()
            F.cross_entropy(model(xb), yb).backward()
            opt.step()

        def forward():
            with torch.no_grad():
                model(data.x_test)

        results = {}
        for _ in range(3):  # interleave rounds: 1 thread, N threads, 1 thread, ...
            for threads in (1, cores):
                torch.set_num_threads(threads)
                step(), forward()  # warm-up at this thread count
                results.setdefault(("step", threads), []).append(_time(step, args.repeats // 3))
                results.setdefault(("fwd", threads), []).append(_time(forward, max(3, args.repeats // 30)))
        med = {k: statistics.median(v) * 1e3 for k, v in results.items()}
        print(f"{name:<12} {med['step', 1]:>11.3f} {med['step', cores]:>11.3f} {med['fwd', 1]:>10.3f} {med['fwd', cores]:>10.3f}")


if __name__ == "__main__":
    main()
