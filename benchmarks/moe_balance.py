"""The effect of the load-balancing weight on the bundled MoE architectures (docs/moe.md, "Effect of the weight").

    python benchmarks/moe_balance.py [--only moe_moons]

Each architecture trained from seed 0 (Adam, batch 64; moons 30 epochs at lr 1e-2, MNIST-5k 5 epochs at lr 1e-3)
at balance weights 0, 0.01 and 0.1; prints one markdown row per run: test accuracy, load per expert, balance loss.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.moe import expert_report, get_moe_spec, train_moe  # noqa: E402
from sparsity_viz.samples import MOE_RECIPES  # noqa: E402

RUNS = {"moe_moons": (30, 1e-2, "top-1"), "moe_mnist": (5, 1e-3, "top-2")}  # epochs, lr, routing
WEIGHTS = (0.0, 0.01, 0.1)


def rows(name: str) -> list[str]:
    """The table's rows for one architecture."""
    epochs, lr, routing = RUNS[name]
    spec = get_moe_spec(name)
    data = load_dataset(spec.dataset)
    out = []
    for weight in WEIGHTS:
        config = replace(MOE_RECIPES[name].config, epochs=epochs, lr=lr, batch_size=64, seed=0, device="cpu")
        model = train_moe(spec.build(0), data, config, balance_weight=weight)[0].model
        r = expert_report(model, data, "test")
        out.append(f"| {name} ({routing}) | {weight:g} | {100 * r['accuracy']:.1f} % | "
                   f"{' / '.join(map(str, r['load']))} | {r['balance_loss']:.2f} |")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(RUNS), help="comma-separated: moe_moons, moe_mnist")
    args = ap.parse_args(argv)
    print("| model | balance weight | test accuracy | load per expert (test) | balance loss |")
    print("|---|---:|---:|---|---:|")
    for name in args.only.split(","):
        for row in rows(name):
            print(row, flush=True)


if __name__ == "__main__":
    main()
