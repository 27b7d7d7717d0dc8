"""How close the CSR kernel gets to the FLOP limit on ideal data, next to a real random layer (issue 11, item 2).

    python benchmarks/csr_ceiling.py [--rounds 21] [--no-write]

"Ideal" layers give the kernel's grouped-panel path its best case: 300 rows (a multiple of the
three rows it runs at once), exactly ``c`` nonzeros in every row of every panel (``ops.panel_width``: one
count group per panel: no loop-exit mispredictions, no single-row remainder). ``in = 160`` is one
panel (no partial sums between panels); ``in = 800`` is four of 200 features. ``c = 0`` times what a tile
costs without any multiply: repacking the input tile and writing the bias. The real layer is
LeNet-300-100's fc1 shape at 90 % random unstructured sparsity (``sparse_layer.py``'s case).
One thread; csr-native and dense ``addmm`` on the same feature-major activations, timed in
interleaved rounds (``bench.interleaved_ratios``, exactly ``--rounds`` rounds); "x limit" =
time ratio / density (1.00 = the FLOP limit); useful GFLOP/s = 2 · nnz · B / time.
Writes the table into docs/backend.md (block ``csr-ceiling``) unless ``--no-write``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from sparsity_viz.backend import kernels
from sparsity_viz.backend.bench import interleaved_ratios, random_sparse
from sparsity_viz.backend.ops import NativeCSROp, panel_width
from sparsity_viz.devices import configure_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_block import cpu_line, publish, rounds_args  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "backend.md"
ROWS = 300
BATCHES = (64, 256, 1024)
IDEAL = [(160, 0), (160, 8), (160, 16), (160, 32), (800, 20)]  # (in features, nonzeros per row and panel): 0-20 %


def ideal_weight(in_features: int, per_panel: int, seed: int = 0) -> torch.Tensor:
    """(ROWS, in) with exactly ``per_panel`` nonzeros (random columns, values ~ N(0, 1)) per row and panel."""
    g = torch.Generator().manual_seed(seed)
    w = torch.zeros(ROWS, in_features)
    pw = panel_width(in_features)
    for start in range(0, in_features, pw):
        width = min(pw, in_features - start)
        cols = torch.rand(ROWS, width, generator=g).argsort(dim=1)[:, :per_panel] + start  # (ROWS, c)
        w.scatter_(1, cols, torch.randn(ROWS, per_panel, generator=g))
    return w


def measure(name: str, w: torch.Tensor, batch: int, rounds: int) -> str:
    """One table row: csr-native against dense addmm for ``w`` at ``batch``, checked equal first."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(w.shape[1], batch, generator=g)  # (in, B) feature-major
    bias = torch.randn(w.shape[0], generator=g)
    op = NativeCSROp(w, bias, relu=False, threads=1, tile=64)
    col = bias[:, None]
    torch.testing.assert_close(op.forward(x), torch.addmm(col, w, x), rtol=1e-4, atol=1e-4)
    res = interleaved_ratios({"dense": lambda: torch.addmm(col, w, x), "native": lambda: op.forward(x)}, "dense",
                             rounds=rounds, rel_iqr=None)
    nnz = int((w != 0).sum())
    density = nnz / w.numel()
    dense_s, native_s, ratio = res["dense"]["median_s"], res["native"]["median_s"], res["native"]["ratio"]
    x_limit = ratio / density if density else float("nan")
    useful = 2 * nnz * batch / native_s / 1e9
    return (f"| {name} | {w.shape[0]}x{w.shape[1]} | {batch} | {density:.1%} | {dense_s * 1e6:.1f} | "
            f"{native_s * 1e6:.1f} | {ratio:.3f} | " + (f"{x_limit:.2f}" if density else "–")
            + f" | {2 * w.numel() * batch / dense_s / 1e9:.0f} | " + (f"{useful:.0f}" if nnz else "–") + " |")


def main(argv: list[str] | None = None) -> None:
    args = rounds_args(__doc__.splitlines()[0], argv)
    if kernels.load() is None:
        sys.exit(f"the native kernel is not available: {kernels.notice()}")
    threads = configure_threads(1)
    lines = [f"`python benchmarks/csr_ceiling.py --rounds {args.rounds}` — torch {torch.__version__}, {cpu_line()}, threads "
             f"{threads}, medians of {args.rounds} interleaved rounds; x limit = (native / dense) / density",
             "", "| layer | shape | batch | density | dense us | native us | native / dense | x limit "
             "| dense GFLOP/s | native useful GFLOP/s |", "|---" * 10 + "|"]
    print("\n".join(lines), flush=True)
    cases = [(f"ideal, {c} per row and panel", ideal_weight(n, c)) for n, c in IDEAL]
    cases.append(("random, 90 %", random_sparse((ROWS, 784), 0.9)))
    for name, w in cases:
        for batch in BATCHES:
            lines.append(measure(name, w, batch, args.rounds))
            print(lines[-1], flush=True)
    publish(DOC, "csr-ceiling", "\n".join(lines), not args.no_write)


if __name__ == "__main__":
    main()
