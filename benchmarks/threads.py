"""Torch intra-op threads: 1 vs all cores, per bundled model, idle and with the other core busy.

    python benchmarks/threads.py [--repeats 200] [--states idle,busy] [--write]

Prints the median time of one training step (batch 64) and of a forward pass over the whole test split,
for each thread count, interleaved so that machine noise hits both alike; "busy" runs the same with a
Python busy loop pinned to the last core (``backend_speed.Busy``), the normal state of a server in class.
This is what ``devices.DEFAULT_NUM_THREADS`` rests on. ``--write`` puts the table into README.md
(block ``threads``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from backend_speed import Busy  # noqa: E402 (this script's folder)
from doc_block import command, cpu_line, publish  # noqa: E402
from sparsity_viz import load_dataset, load_sample  # noqa: E402
from sparsity_viz.models import MODELS  # noqa: E402

README = Path(__file__).resolve().parent.parent / "README.md"
STATE_LABELS = {"idle": "idle machine", "busy": "other core busy"}


def _time(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(name: str, cores: int, repeats: int) -> dict[tuple[str, int], float]:
    """Median ms of a training step and a test-split forward pass of bundled model ``name``, 1 and ``cores`` threads."""
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

    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(3):  # interleave rounds: 1 thread, N threads, 1 thread, ...
        for threads in (1, cores):
            torch.set_num_threads(threads)
            step(), forward()  # warm-up at this thread count
            results.setdefault(("step", threads), []).append(_time(step, max(1, repeats // 3)))
            results.setdefault(("fwd", threads), []).append(_time(forward, max(3, repeats // 30)))
    return {k: statistics.median(v) * 1e3 for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--states", default="idle,busy")
    parser.add_argument("--write", action="store_true", help="write the table into README.md")
    args = parser.parse_args()
    states = args.states.split(",")
    if args.repeats < 1 or not states or any(s not in STATE_LABELS for s in states):
        parser.error("--repeats must be >= 1 and --states a list of idle, busy")
    cores = os.cpu_count() or 1
    rows = [f"| model | step, 1 thread | step, {cores} threads | forward, 1 thread | forward, {cores} threads |",
            "|---|---:|---:|---:|---:|"]
    for state in states:
        with Busy() if state == "busy" else contextlib.nullcontext():
            for name in MODELS:
                med = measure(name, cores, args.repeats)
                rows.append(f"| {STATE_LABELS[state]}: {name} | {med['step', 1]:.2f} | {med['step', cores]:.2f} "
                            f"| {med['fwd', 1]:.2f} | {med['fwd', cores]:.2f} |")
                print(rows[-1], flush=True)
    head = (f"`{command('threads.py')}` — torch {torch.__version__}, {cpu_line()}, {cores} cores; medians in ms of "
            f"one training step (batch 64) and a forward pass over the test split, the thread counts interleaved in "
            f"one process; busy = a Python busy loop pinned to the last core.")
    publish(README, "threads", head + "\n\n" + "\n".join(rows), args.write)


if __name__ == "__main__":
    main()
