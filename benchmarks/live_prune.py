"""Seconds one live-slider step costs per strategy and bundled model: the measurement behind the "slow" marks.

    python benchmarks/live_prune.py [--models lenet300 lenet5] [--repeats 3] [--level 0.9]

One step is what the Prune page does when the slider moves to a level not pruned before: a seeded data batch
(for strategies that need data, ``data.data_batch``) and ``pruning.prune`` on the dense bundled model. Medians over
``--repeats`` rounds; in each round the strategies run interleaved (one after another), so machine load hits them
alike. Writes ``sparsity_viz/pruning/live_cost.json`` (read by ``pruning.live_cost``: the menus mark a strategy
whose median is above ``LIVE_SLOW_S`` on the chosen model) and the table in ``docs/app.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def step_seconds(model, dataset, name: str, level: float, seed: int) -> float:
    """Wall seconds of one live step: data batch (if needed) + prune."""
    from sparsity_viz.data import data_batch
    from sparsity_viz.pruning import STRATEGIES, prune

    start = time.perf_counter()
    batch = data_batch(dataset, seed=seed) if STRATEGIES[name].needs_data else None
    prune(model, name, level, seed=seed, batch=batch)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.data import load_dataset
    from sparsity_viz.devices import configure_threads
    from sparsity_viz.models import MODELS
    from sparsity_viz.pruning import live_cost, strategy_names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--level", type=float, default=0.9)
    parser.add_argument("--no-write", action="store_true", help="print only; leave the JSON and the doc alone")
    args = parser.parse_args(argv)
    threads = configure_threads()

    names = strategy_names()
    measured: dict[str, dict[str, float]] = {}
    for model_name in args.models:
        model, card = load_sample(model_name)
        dataset = load_dataset(card["dataset"]["name"])  # the dataset the app opens the model on
        for name in names:  # warm-up: imports, first allocations
            step_seconds(model, dataset, name, args.level, 0)
        runs: dict[str, list[float]] = {n: [] for n in names}
        for r in range(args.repeats):  # interleaved: every strategy once per round
            for name in names:
                runs[name].append(step_seconds(model, dataset, name, args.level, r + 1))
        measured[model_name] = {n: round(statistics.median(t), 4) for n, t in runs.items()}
        print(model_name, json.dumps(measured[model_name]), flush=True)

    if args.no_write:
        return 0
    old = live_cost.load()
    data = {
        "command": "python benchmarks/live_prune.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "level": args.level,
        "repeats": args.repeats,
        "machine": f"{platform.machine()}, {threads} torch threads",
        "seconds": {**old.get("seconds", {}), **measured},  # models not measured this time keep their numbers
    }
    live_cost.PATH.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {live_cost.PATH}")
    from doc_block import write_block

    write_block(ROOT / "docs" / "app.md", "live-prune", live_cost.markdown_table(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
