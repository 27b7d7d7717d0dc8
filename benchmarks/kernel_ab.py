"""A/B of two builds of the CSR kernel source, timed interleaved in one process (for kernel work).

    python benchmarks/kernel_ab.py VARIANT.cpp [--base BASE.cpp] [--rounds 31] [--batch 32,256,1024] [--write]
                                   [--block kernel-ab] [--chains [--threads 1,2] [--fresh] [--compiled 0.9,0.99]]

Builds ``VARIANT.cpp`` (a modified ``sparsity_viz/backend/csrc/sparse_kernels.cpp``; default base: the
checkout's own source) with the project's flags and cache (``kernels.Extension``), then for the
per-layer cases of ``sparse_layer.py`` at 90 % (and 95 % for 2048x2048), 64- and 32-sample tiles, one
thread: checks that both builds give the same result and match dense ``addmm``, and times base,
variant and dense in interleaved rounds (``bench.interleaved_ratios``, exactly ``--rounds``).
"variant / base" is the median of the per-round ratios with its interquartile range: on this shared
machine two identical builds read within about ±7 % of 1.00, so smaller differences mean nothing.
``--write`` puts the table into docs/backend.md (block ``--block``, default ``kernel-ab``), for a change worth
recording. ``--chains --threads 1,2`` times whole one-call chains instead (``Chain.forward``, batch-major in and
out, the way a compiled MLP runs): the bundled LeNet-300-100 pruned by global magnitude to 90 % and a
784-2048-2048-10 MLP (seeded init) pruned layer by layer to 90 %, on 1 and 2 threads; ratios are to the dense
model in the same rounds. ``--fresh`` gives every call of every contender the next of several
different inputs (at least 12 MB of them, more than the L2), as a new batch would arrive, instead of one input
that stays in cache from call to call. ``--compiled 0.9,0.99`` builds each model's chain the way ``compile_model``
runs it on one thread (pruned to each sparsity, compacted, its plan's layers, the first layer reading only the
kept input columns: the gathering transpose) instead of the uncompacted 90 % chain.
Example, the previous commit's kernel against the working tree's:

    git show HEAD~1:sparsity_viz/backend/csrc/sparse_kernels.cpp > /tmp/old.cpp
    python benchmarks/kernel_ab.py sparsity_viz/backend/csrc/sparse_kernels.cpp --base /tmp/old.cpp
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from sparsity_viz.backend import compile_model, kernels
from sparsity_viz.backend.bench import interleaved_ratios, random_sparse
from sparsity_viz.backend.ops import NativeCSROp
from sparsity_viz.data import load_dataset
from sparsity_viz.devices import configure_threads, torch_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
from backend_speed import fresh_inputs, models as chain_models  # noqa: E402 (the whole-model cases of --chains)
from doc_block import cpu_line, write_block  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "backend.md"

CASES = [((300, 784), 0.9), ((100, 300), 0.9), ((2048, 784), 0.9), ((2048, 2048), 0.95)]


def build(source: Path, tag: str):
    """``source`` compiled like the main kernel (cached by its content); exits with the reason if it fails.

    The checkout's own source is the main build (``kernels.load()``): a second build under another name would share
    its cache directory and remove its finished-build marker while compiling.
    """
    if not source.is_file():
        sys.exit(f"no such source file: {source}")
    if source.read_bytes() == kernels.SOURCE.read_bytes():
        module = kernels.load()
    else:
        module = kernels.Extension(source.resolve(), f"sparsity_viz_ab_{tag}", f"the {tag} kernel").load()
    if module is None:
        sys.exit(f"could not build {source}: native kernels are off or the compiler failed")
    return module


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", type=Path)
    ap.add_argument("--base", type=Path, default=kernels.SOURCE)
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--batch", default="32,256,1024")
    ap.add_argument("--write", action="store_true", help="write the table into docs/backend.md")
    ap.add_argument("--block", default="kernel-ab", help="the docs/backend.md block --write replaces")
    ap.add_argument("--chains", action="store_true", help="whole MLP chains instead of single layers")
    ap.add_argument("--threads", default="1", help="thread counts for --chains, e.g. 1,2")
    ap.add_argument("--fresh", action="store_true", help="--chains: each call on another input (out of cache)")
    ap.add_argument("--compiled", default="", help="--chains: the compiled (compacted) chains at these sparsities")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    configure_threads(1)
    base, variant = build(args.base, "base"), build(args.variant, "variant")
    command = f"`python benchmarks/kernel_ab.py {' '.join(sys.argv[1:] if argv is None else argv)}`"
    if args.chains:
        lines = [f"{command} — torch {torch.__version__}, {cpu_line()}, whole one-call chains, medians of {args.rounds} "
                 "interleaved rounds (dense model in the same rounds); variant / base = median of the per-round ratios", "",
                 *chains_ab(base, variant, [int(b) for b in args.batch.split(",")],
                            [int(t) for t in args.threads.split(",")], args.rounds, args.fresh,
                            [float(p) for p in args.compiled.split(",") if p])]
        if args.write:
            write_block(DOC, args.block, "\n".join(lines))
        return
    lines = [f"{command} — torch {torch.__version__}, {cpu_line()}, one thread, "
             f"medians of {args.rounds} interleaved rounds; variant / base = median of the per-round ratios", "",
             "| layer | sparsity | batch | tile | base us | variant us | variant / base (IQR) | variant x limit |",
             "|---" * 8 + "|"]
    print("\n".join(lines), flush=True)
    for shape, sparsity in CASES:
        w = random_sparse(shape, sparsity)
        bias = torch.randn(shape[0])
        density = float((w != 0).float().mean())
        for batch in (int(b) for b in args.batch.split(",")):
            x = torch.randn(shape[1], batch)  # (in, B) feature-major
            reference = torch.addmm(bias[:, None], w, x)
            for tile in (64, 32):
                layers = [NativeCSROp(w, bias, relu=False, threads=1, tile=tile).layer()]
                chains = {name: kernels.make_chain(layers, shape[1], module=mod)
                          for name, mod in (("base", base), ("variant", variant))}
                out = {name: chain.forward(x, False) for name, chain in chains.items()}  # (out, B)
                torch.testing.assert_close(out["variant"], out["base"], rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(out["variant"], reference, rtol=1e-4, atol=1e-4)
                res = interleaved_ratios({
                    "base": lambda: chains["base"].forward(x, False),
                    "variant": lambda: chains["variant"].forward(x, False),
                    "dense": lambda: torch.addmm(bias[:, None], w, x)}, "base", rounds=args.rounds, rel_iqr=None)
                v = res["variant"]
                x_limit = v["median_s"] / (res["dense"]["median_s"] * density)
                lines.append(f"| {shape[0]}x{shape[1]} | {sparsity:.0%} | {batch} | {tile} | "
                             f"{res['base']['median_s'] * 1e6:.1f} | {v['median_s'] * 1e6:.1f} | {v['ratio']:.3f} "
                             f"({v['ratio_q25']:.3f}–{v['ratio_q75']:.3f}) | {x_limit:.2f} |")
                print(lines[-1], flush=True)
    if args.write:
        write_block(DOC, args.block, "\n".join(lines))


def chain_cases(threads: list[int], compiled: list[float]):
    """(label, dense model, {"layers", "in", "keep"} per thread count) for ``chains_ab``: the uncompacted 90 % chains
    (64-sample tiles, panels), or with ``compiled`` sparsities the chains ``compile_model`` builds on one thread."""
    if not compiled:
        for name, model in chain_models().items():
            linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
            yield name, model, {n: {"layers": [NativeCSROp(m.weight.detach(), m.bias.detach(), relu=i < len(linears) - 1,
                                                            threads=n, tile=64).layer() for i, m in enumerate(linears)],
                                    "in": linears[0].in_features, "keep": None} for n in threads}
        return
    data = load_dataset("mnist5k").x_test.flatten(1)
    for sparsity in compiled:
        for name, model in chain_models(sparsity).items():
            with torch_threads(1):
                comp = compile_model(model, batch_size=256, device="cpu", calibration=data[:256])
            if comp.one_call() is None:
                print(f"{name} at {sparsity:.0%}: compiled to no native chain, skipped", flush=True)
                continue
            plan = {"layers": [op.layer() for op in comp.ops], "in": comp.ops[0].in_features, "keep": comp.input_keep}
            yield f"{name} {sparsity:.0%} compiled", model, {n: plan for n in threads}


def chains_ab(base, variant, batches: list[int], threads: list[int], rounds: int, fresh: bool = False,
              compiled: list[float] = ()) -> list[str]:
    """Both builds' one-call chains of each model (``chain_cases``), batch-major in and out, vs dense: the
    table's lines (also printed as they come).

    ``fresh``: each contender cycles through its own copy of enough distinct inputs to overflow the L2.
    """
    lines = ["| model | threads | batch | base us | variant us | base / dense | variant / dense | variant / base (IQR) |",
             "|---" * 8 + "|"]
    print("\n".join(lines))
    for name, model, plans in chain_cases(threads, list(compiled)):
        width = next(m for m in model.modules() if isinstance(m, torch.nn.Linear)).in_features
        for n in threads:
            plan = plans[n]
            chains = {k: kernels.make_chain(plan["layers"], plan["in"], module=mod)
                      for k, mod in (("base", base), ("variant", variant))}
            if plan["keep"] is not None:
                for chain in chains.values():
                    chain.set_keep(plan["keep"].to(torch.int64))
            for batch in batches:
                xs = fresh_inputs(batch, width) if fresh else [torch.randn(batch, width)]  # (B, in) batch-major each
                inputs = {k: itertools.cycle(xs) for k in ("base", "variant", "dense")}
                with torch.no_grad(), torch_threads(n):
                    want = model(xs[0])
                    for chain in chains.values():
                        torch.testing.assert_close(chain.forward(xs[0], True, True, n), want, rtol=1e-4, atol=1e-4)
                    res = interleaved_ratios({
                        "base": lambda: chains["base"].forward(next(inputs["base"]), True, True, n),
                        "variant": lambda: chains["variant"].forward(next(inputs["variant"]), True, True, n),
                        "dense": lambda: model(next(inputs["dense"]))}, "base", rounds=rounds, rel_iqr=None)
                b, v, d = (res[k]["median_s"] for k in ("base", "variant", "dense"))
                r = res["variant"]
                lines.append(f"| {name} | {n} | {batch} | {b * 1e6:.1f} | {v * 1e6:.1f} | {b / d:.3f} | {v / d:.3f} | "
                             f"{r['ratio']:.3f} ({r['ratio_q25']:.3f}–{r['ratio_q75']:.3f}) |")
                print(lines[-1], flush=True)
    return lines


if __name__ == "__main__":
    main()
