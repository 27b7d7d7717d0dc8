"""Sweep executors: serial, 2 local processes and a local Ray (num_cpus=2) on the same 6 x 10 x 3-seed sweep.

    python benchmarks/sweep_executors.py [--repeats 1] [--write-doc]

LeNet-300-100 on MNIST-5k, 6 strategies x 10 levels x 3 seeds, with one fine-tuning
epoch per point and without fine-tuning. Ray's wall time includes starting (and
stopping) its local instance, as a user's first sweep pays it; Ray's start-up is
also timed on its own (init, a first task's round trip through a fresh worker,
shutdown). Contenders run interleaved in one process, medians over ``--repeats``;
every contender's rows are checked equal to the serial sweep's (accuracies bit
for bit). ``--write-doc`` puts the table into docs/sweeps.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from doc_block import write_block  # noqa: E402

from sparsity_viz import load_dataset, load_sample  # noqa: E402
from sparsity_viz.executors import ProcessExecutor, RayExecutor, SerialExecutor  # noqa: E402
from sparsity_viz.experiments import sweep  # noqa: E402
from sparsity_viz.training import TrainConfig  # noqa: E402

STRATEGIES = ["magnitude", "global_magnitude", "random", "structured", "n_m_2_4", "snip"]
LEVELS = [i / 10 for i in range(10)]  # 0.0 .. 0.9
SEEDS = [0, 1, 2]
CONTENDERS = {
    "serial": lambda: SerialExecutor(),
    "process (2 workers)": lambda: ProcessExecutor(workers=2),
    "ray (local, num_cpus=2, start-up included)": lambda: RayExecutor(num_cpus=2),
}


def ray_startup() -> float:
    """Seconds to start a local Ray (num_cpus=2), run one task in a fresh worker that imports torch, shut down."""
    import ray

    t = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.get(ray.remote(_torch_threads).remote())
    ray.shutdown()
    return time.perf_counter() - t


def _torch_threads() -> int:
    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--write-doc", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, _ = load_sample("lenet300")
    ds = load_dataset("mnist5k")
    modes = {"one fine-tuning epoch per point": TrainConfig(epochs=1, lr=1e-4), "no fine-tuning": None}
    times: dict[tuple[str, str], list[float]] = {}
    startup: list[float] = []
    reference: dict[str, object] = {}
    for r in range(args.repeats):
        startup.append(ray_startup())
        for mode, finetune in modes.items():
            for name, make in CONTENDERS.items():
                t = time.perf_counter()
                frame = sweep(model, ds, STRATEGIES, LEVELS, SEEDS, finetune=finetune, executor=make(), device="cpu")
                times.setdefault((mode, name), []).append(time.perf_counter() - t)
                rows = frame.drop(columns="seconds")
                if mode not in reference:
                    reference[mode] = rows
                assert rows.equals(reference[mode]), f"{name} gave other rows than serial ({mode})"
                print(f"repeat {r + 1}: {mode}, {name}: {times[(mode, name)][-1]:.1f} s ({len(frame)} rows)",
                      flush=True)
    lines = [f"Command: `python benchmarks/sweep_executors.py --repeats {args.repeats} --write-doc` "
             f"({os.cpu_count()} cores, torch {torch.__version__}, one torch thread per worker; medians of "
             f"{args.repeats} interleaved run(s); {len(STRATEGIES)} strategies x {len(LEVELS)} levels x "
             f"{len(SEEDS)} seeds on LeNet-300-100 / MNIST-5k, rows equal across executors).", "",
             "| sweep | executor | wall time (s) |", "|---|---|---:|"]
    for (mode, name), ts in times.items():
        lines.append(f"| {mode} | {name} | {statistics.median(ts):.1f} |")
    lines += ["", f"Ray's own start-up (local instance with 2 CPUs, one task in a fresh worker that imports torch, "
                  f"shutdown): **{statistics.median(startup):.1f} s** (median of {len(startup)})."]
    table = "\n".join(lines)
    print(table)
    if args.write_doc:
        write_block(ROOT / "docs" / "sweeps.md", "sweep-executors", table)


if __name__ == "__main__":
    main()
