"""Sweep sparsity 0-99 % for a 300x784 layer; write the speed-up curves and crossovers.

    python benchmarks/sparse_crossover.py [--repeats 20] [--threads 1]

Writes docs/backend_crossover.csv (tidy curves), docs/backend_crossover.md (crossover
table + the command) and docs/backend_crossover_batch<B>.png (one figure per batch size).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from sparsity_viz.backend.bench import crossovers, speedup_curves
from sparsity_viz.devices import configure_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_block import command, cpu_line  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"
SPARSITIES = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--shape", default="300x784")
    args = ap.parse_args()
    threads = configure_threads(args.threads)
    shape = tuple(int(v) for v in args.shape.split("x"))
    curves = speedup_curves(shape, SPARSITIES, (1, 32, 256),
                            formats=("dense", "csr-torch", "bsr-torch", "csr-native"), repeats=args.repeats,
                            threads=threads)
    cross = crossovers(curves)
    DOCS.mkdir(exist_ok=True)
    curves.to_csv(DOCS / "backend_crossover.csv", index=False)
    cmd = command("sparse_crossover.py")
    md = [f"# Crossover: {args.shape} layer, torch {torch.__version__}, {cpu_line()}, {threads} thread(s)", "",
          f"Command: `{cmd}`", "", "Lowest swept sparsity from which the format stays faster than dense:", "",
          "```\n" + cross.to_string(index=False) + "\n```", "",
          "Speed-up vs dense (dense time / format time):", ""]
    pivot = curves.pivot_table(index="sparsity", columns=["batch", "format"], values="speedup_vs_dense")
    md.append("```\n" + pivot.round(2).to_string() + "\n```")
    (DOCS / "backend_crossover.md").write_text("\n".join(md) + "\n")
    from sparsity_viz.figures import speedup_curve_figure

    for batch in sorted(curves["batch"].unique()):
        fig = speedup_curve_figure(curves, cross, batch=int(batch), title=f"{args.shape} layer, batch {batch}: speed-up vs dense")
        fig.write_image(DOCS / f"backend_crossover_batch{batch}.png", width=1100, height=600)
    print(cross.to_string(index=False))


if __name__ == "__main__":
    main()
