"""Column panels of a fixed 160 features against ``ops.panel_width`` (the fewest equal panels of <= 224), interleaved.

    python benchmarks/panel_widths.py [--rounds 21] [--no-write]

Whole one-call chains (``Chain.forward``, batch-major in and out, as a compiled MLP runs) of the bundled
LeNet-300-100 at 90 % global magnitude and a 784-2048-2048-10 MLP pruned layer by layer to 90 %, each
compacted as ``compile_model`` compacts it (dead inputs and neurons removed: LeNet-300-100's layers become
545 -> 276 -> 100 -> 10), on 1 and 2 threads at batch 256 and 1,024, every call on the next of 12 MB of
distinct inputs (out of L2, as a new batch arrives); then single layers (random 90 %, feature-major input)
on one thread at batch 32, 256 and 1,024. The two panel layouts of one weight are built the same way
(``NativeCSROp.panels``), checked equal to dense, and timed in the same rounds
(``bench.interleaved_ratios``, exactly ``--rounds``): "balanced / fixed" is the median of the per-round
ratios with its interquartile range. Writes the table into docs/backend.md (block ``panel-widths``)
unless ``--no-write``.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend_speed import fresh_inputs, models  # noqa: E402 (this script's folder)
from doc_block import cpu_line, publish, rounds_args  # noqa: E402
from sparsity_viz.backend import compile_model, kernels  # noqa: E402
from sparsity_viz.backend import ops as ops_mod  # noqa: E402
from sparsity_viz.backend.bench import interleaved_ratios, random_sparse  # noqa: E402
from sparsity_viz.backend.ops import NativeCSROp  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.devices import configure_threads, torch_threads  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "backend.md"
FIXED = 160
LAYERS = [((300, 784), 0.9), ((100, 300), 0.9), ((2048, 784), 0.9), ((2048, 2048), 0.9), ((276, 545), 0.87)]


def op_with(width_of, weight, bias, relu: bool, threads: int) -> NativeCSROp:
    """A CSR operator whose column panels are ``width_of(in_features)`` wide (its panels built now)."""
    balanced = ops_mod.panel_width
    ops_mod.panel_width = width_of
    try:
        op = NativeCSROp(weight, bias, relu=relu, threads=threads, tile=64)
        op.panels()
    finally:
        ops_mod.panel_width = balanced
    return op


def cell(res: dict) -> str:
    r = res["balanced"]
    return f"{r['ratio']:.3f} ({r['ratio_q25']:.3f}–{r['ratio_q75']:.3f})"


def chain_rows(rounds: int) -> list[str]:
    data = load_dataset("mnist5k").x_test.flatten(1)
    rows = []
    for name, model in models().items():
        with torch_threads(1):
            compiled = compile_model(model, batch_size=256, device="cpu", calibration=data[:256])
        weights = [(op.csr.to_dense(), op.bias) for op in compiled.ops]  # the compacted layers
        keep = None if compiled.input_keep is None else compiled.input_keep.to(torch.int64)
        widths = [ops_mod.panel_width(w.shape[1]) for w, _ in weights]
        for n in (1, 2):
            chains = {}
            for label, width_of in (("fixed", lambda i: FIXED), ("balanced", ops_mod.panel_width)):
                layers = [op_with(width_of, w, b, i < len(weights) - 1, n).layer() for i, (w, b) in enumerate(weights)]
                chains[label] = kernels.make_chain(layers, weights[0][0].shape[1])
                if keep is not None:
                    chains[label].set_keep(keep)
            for batch in (256, 1024):
                xs = fresh_inputs(batch, 784)
                inputs = {k: itertools.cycle(xs) for k in chains}
                with torch.no_grad(), torch_threads(n):
                    want = model(xs[0])
                    for chain in chains.values():
                        torch.testing.assert_close(chain.forward(xs[0], True, True, n), want, rtol=1e-4, atol=1e-4)
                    res = interleaved_ratios({k: (lambda c=c, it=inputs[k]: c.forward(next(it), True, True, n))
                                              for k, c in chains.items()}, "fixed", rounds=rounds, rel_iqr=None)
                shape = " → ".join(str(w.shape[1]) for w, _ in weights) + f" → {weights[-1][0].shape[0]}"
                rows.append(f"| {name} chain ({shape}) | {n} | {batch} | {', '.join(map(str, widths))} | "
                            f"{res['fixed']['median_s'] * 1e6:.0f} | {res['balanced']['median_s'] * 1e6:.0f} | {cell(res)} |")
                print(rows[-1], flush=True)
    return rows


def layer_rows(rounds: int) -> list[str]:
    rows = []
    for (out, inp), sparsity in LAYERS:
        w, b = random_sparse((out, inp), sparsity), torch.randn(out)
        ops = {"fixed": op_with(lambda i: FIXED, w, b, False, 1), "balanced": op_with(ops_mod.panel_width, w, b, False, 1)}
        for batch in (32, 256, 1024):
            x = torch.randn(inp, batch)  # (in, B) feature-major
            for op in ops.values():
                torch.testing.assert_close(op.forward(x), torch.addmm(b[:, None], w, x), rtol=1e-4, atol=1e-4)
            res = interleaved_ratios({k: (lambda o=o: o.forward(x)) for k, o in ops.items()}, "fixed", rounds=rounds,
                                     rel_iqr=None)
            rows.append(f"| {out}x{inp} at {sparsity:.0%} | 1 | {batch} | {ops_mod.panel_width(inp)} | "
                        f"{res['fixed']['median_s'] * 1e6:.0f} | {res['balanced']['median_s'] * 1e6:.0f} | {cell(res)} |")
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    args = rounds_args(__doc__.splitlines()[0], argv)
    if kernels.load() is None:
        sys.exit(f"the native kernel is not available: {kernels.notice()}")
    configure_threads(2)
    head = [f"`python benchmarks/panel_widths.py --rounds {args.rounds}` — torch {torch.__version__}, {cpu_line()}; "
            f"fixed = panels of {FIXED} features, balanced = `ops.panel_width`; medians of {args.rounds} interleaved "
            "rounds; balanced / fixed = median of the per-round ratios (IQR)", "",
            "| case | threads | batch | balanced widths | fixed us | balanced us | balanced / fixed |", "|---" * 7 + "|"]
    print("\n".join(head), flush=True)
    rows = chain_rows(args.rounds) + layer_rows(args.rounds)
    publish(DOC, "panel-widths", "\n".join(head + rows), write=not args.no_write)


if __name__ == "__main__":
    main()
