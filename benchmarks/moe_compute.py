"""Conditional compute of a mixture-of-experts MLP, timed: routed vs all experts vs a dense MLP.

    python benchmarks/moe_compute.py [--rounds 21] [--no-write]

Untrained, seeded MoEs (timing does not depend on the weights, only on the shapes and on
how the router spreads the batch; a fresh router spreads it roughly evenly): 784-input
experts of LeNet-300-100 shape (784-300-100-10), N = 4 or 8, top-1 and top-2. One torch
thread. At batch 1, 32 and 256, three paths are timed interleaved (round-robin bursts,
median of ``--rounds`` rounds):

    routed (top-k only)           MoEMLP.forward: router, then each expert on only its inputs
    all experts (dense-gated)     every expert on every input, gated sum (the reference)
    dense MLP, same active size   one MLP with the expert's widths x k (about the active parameters)

Before timing, the routed forward is checked against the dense-gated reference with
``torch.testing.assert_close``. The table goes to docs/moe.md, between the markers.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doc_block import publish, rounds_args  # noqa: E402 (this script's folder is on sys.path)
from sparsity_viz.moe import MoEMLP, compare_compute, dense_gated_forward  # noqa: E402

DOC = ROOT / "docs" / "moe.md"
TABLE = "moe-table"  # the doc's <!-- moe-table:begin/end --> markers
CONFIGS = ((4, 1), (4, 2), (8, 1), (8, 2))  # (experts, top_k)


def run(rounds: int) -> pd.DataFrame:
    torch.set_num_threads(1)
    rows = []
    for n, k in CONFIGS:
        torch.manual_seed(0)
        model = MoEMLP(784, (300, 100), 10, num_experts=n, top_k=k).eval()
        x = torch.randn(256, 784, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            torch.testing.assert_close(model(x), dense_gated_forward(model, x))
        for row in compare_compute(model, rounds=rounds):
            rows.append({"experts": n, "top_k": k, **row})
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    lines = ["| experts | top-k | batch | path | ms / batch | µs / input | MFLOPs / input | parameters used "
             "| time vs routed |",
             "|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in frame.itertuples():
        lines.append(f"| {r.experts} | {r.top_k} | {r.batch} | {r.path} | {r.ms:.3f} | {r.ms_per_input * 1e3:.1f} | "
                     f"{r.flops_per_input / 1e6:.3f} | {r.parameters_used:,} | {r.vs_routed:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    args = rounds_args(__doc__.splitlines()[0])
    frame = run(args.rounds)
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, {args.rounds} rounds"
    publish(DOC, TABLE, f"Measured on {machine}.\n\n{markdown(frame)}", write=not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
