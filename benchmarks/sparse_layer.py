"""Per-layer latency of every CPU format vs dense, side by side in one run (medians).

    python benchmarks/sparse_layer.py [--repeats 50] [--threads 1] [--write]

Layers: 300x784 (LeNet-300-100 fc1) and 100x300 (fc2) with random unstructured
sparsity; activations feature-major (in, B), as the compiled model runs them.
Prints a markdown table of ratio = time / dense time (dense = ``addmm`` on the same
feature-major activations); ``F.linear`` on batch-major input is shown for reference.
"x limit" = csr-native ratio / density (1.00 = at the FLOP limit); the geometric mean over the
rows with batch >= 32 and sparsity >= 90 % is issue 11's item 2 (target <= 1.3 on one thread).
The same gap as rates: "dense GFLOP/s" (2 * out * in * B / dense time) against "native useful
GFLOP/s" (2 * nnz * B / csr-native time); x limit = their quotient.
``--write`` puts the table into docs/backend.md (block ``sparse-layer``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import torch.nn.functional as F

from sparsity_viz.backend.bench import benchmark_layer, median_time, random_sparse
from sparsity_viz.devices import configure_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_block import cpu_line, write_block  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "backend.md"

CASES = [((300, 784), 0.9), ((300, 784), 0.99), ((100, 300), 0.9), ((100, 300), 0.5),
         ((2048, 784), 0.9), ((2048, 2048), 0.9), ((2048, 2048), 0.95)]
FORMATS = ("dense", "csr-torch", "bsr-torch", "csr-native", "dense-native")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", default="1,32,256")
    ap.add_argument("--write", action="store_true", help="write the table into docs/backend.md")
    args = ap.parse_args()
    threads = configure_threads(args.threads)
    batches = [int(b) for b in args.batch.split(",")]
    lines = [f"`python benchmarks/sparse_layer.py {' '.join(sys.argv[1:])}`".replace(" `", "`") +
             f" — torch {torch.__version__}, {cpu_line()}, threads {threads}, median of {args.repeats}; ratio = time / dense time",
             "", "| layer | batch | sparsity | dense us | F.linear us | " + " | ".join(FORMATS[1:])
             + " | native vs csr-torch | FLOP limit | x limit | dense GFLOP/s | native useful GFLOP/s |",
             "|---" * (len(FORMATS) + 9) + "|"]
    print("\n".join(lines))
    over = []
    for shape, s in CASES:
        w = random_sparse(shape, s)
        nnz = int((w != 0).sum())
        df = benchmark_layer(w, torch.randn(shape[0]), batches, formats=FORMATS, repeats=args.repeats,
                             threads=threads, layer=f"{shape[0]}x{shape[1]}")
        bias = torch.randn(shape[0])
        for b in batches:
            xb = torch.randn(b, shape[1])  # batch-major, as nn.Linear sees it
            t_lin = median_time(lambda: F.linear(xb, w, bias), args.repeats) * 1e6
            g = df[df.batch == b].set_index("format")
            cells = [f"{g.ratio_dense[f]:.2f}" if f in g.index and g.ratio_dense[f] == g.ratio_dense[f] else "-"
                     for f in FORMATS[1:]]
            vs = g.median_us["csr-torch"] / g.median_us["csr-native"] if "csr-native" in g.index else float("nan")
            x_limit = g.ratio_dense["csr-native"] / (1 - s) if "csr-native" in g.index else float("nan")
            if b >= 32 and s >= 0.9 and x_limit == x_limit:
                over.append((s, round(x_limit, 2)))  # the mean of the values the table shows
            gflops = lambda n_mac, us: 2 * n_mac * b / (us * 1e3)  # noqa: E731  (us -> GFLOP/s)
            dense_rate = gflops(shape[0] * shape[1], g.median_us["dense"])
            native_rate = gflops(nnz, g.median_us["csr-native"]) if "csr-native" in g.index else float("nan")
            lines.append(f"| {shape[0]}x{shape[1]} | {b} | {s:.0%} | {g.median_us['dense']:.1f} | {t_lin:.1f} | "
                         + " | ".join(cells) + f" | {vs:.2f}x faster | {1 - s:.2f} | {x_limit:.2f} | "
                         f"{dense_rate:.0f} | {native_rate:.0f} |")
            print(lines[-1], flush=True)
    if over:
        def geo(values: list[float]) -> float:
            return math.exp(sum(map(math.log, values)) / len(values))

        below_99 = [x for s, x in over if s < 0.99]
        tail = f"; without the 99 % rows: {geo(below_99):.2f}" if below_99 else ""
        lines.append(f"\nGeometric mean of x limit over batch >= 32, sparsity >= 90 %: {geo([x for _, x in over]):.2f} "
                     f"(target <= 1.3, one thread){tail}.")
        print(lines[-1])
    if args.write:
        write_block(DOC, "sparse-layer", "\n".join(lines))


if __name__ == "__main__":
    main()
