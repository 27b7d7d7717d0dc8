"""Per-layer latency of every CPU format vs dense, side by side in one run (medians).

    python benchmarks/sparse_layer.py [--repeats 50] [--threads 1]

Layers: 300x784 (LeNet-300-100 fc1) and 100x300 (fc2) with random unstructured
sparsity; activations feature-major (in, B), as the compiled model runs them.
Prints a markdown table of ratio = time / dense time (dense = ``addmm`` on the same
feature-major activations); ``F.linear`` on batch-major input is shown for reference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

import torch.nn.functional as F

from sparsity_viz.backend.bench import benchmark_layer, median_time, random_sparse
from sparsity_viz.devices import configure_threads

CASES = [((300, 784), 0.9), ((300, 784), 0.99), ((100, 300), 0.9), ((100, 300), 0.5)]
FORMATS = ("dense", "csr-torch", "bsr-torch", "csr-native", "dense-native")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", default="1,32,256")
    args = ap.parse_args()
    threads = configure_threads(args.threads)
    batches = [int(b) for b in args.batch.split(",")]
    print(f"torch {torch.__version__}, threads {threads}, median of {args.repeats}; ratio = time / dense time")
    print("| layer | batch | sparsity | dense us | F.linear us | " + " | ".join(FORMATS[1:])
          + " | native vs csr-torch | FLOP limit |")
    print("|---" * (len(FORMATS) + 6) + "|")
    for shape, s in CASES:
        w = random_sparse(shape, s)
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
            print(f"| {shape[0]}x{shape[1]} | {b} | {s:.0%} | {g.median_us['dense']:.1f} | {t_lin:.1f} | "
                  + " | ".join(cells) + f" | {vs:.2f}x faster | {1 - s:.2f} |")


if __name__ == "__main__":
    main()
