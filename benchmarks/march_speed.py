"""The native kernels built for CPUs without AVX-512, timed on this one: AVX2 (x86-64-v3) and SSE2 (x86-64) builds
against the native build, one thread.

    python benchmarks/march_speed.py [--rounds 21] [--no-write]

Each build runs in its own process (``SPARSITY_VIZ_MARCH``, its own cache key; a first build takes a minute or two)
and times, in interleaved rounds (``bench.interleaved_ratios``, exactly ``--rounds``), the 300x784 layer of
``sparse_layer.py`` at 90 % as ``csr-native`` (64-sample tiles) and ``csr-int8-native``, the same layer dense as
``dense-native`` and as ``act-dense-native`` on inputs with half their entries zero, against torch's dense ``addmm``;
and LeNet-5's second convolution (20 -> 50 channels, 5x5, on 12x12 inputs, 90 % of its taps pruned, ReLU and
2x2 pool) as ``direct-native`` against torch's ``Conv2d`` + ReLU + pool. torch's own kernels are the same in every process
(its build picks AVX-512 at run time here), so "/ torch dense" says how a build's kernels compare with what this
core can do, not what torch would do on an AVX2 machine; "/ native build" compares the builds' medians. Writes the
table into docs/backend.md (block ``march-speed``) unless ``--no-write``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from doc_block import INTERLEAVED, command, cpu_line, publish, rounds_args  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "backend.md"
TARGETS = ("native", "x86-64-v3", "x86-64")
BATCHES = (1, 64, 256)
SHAPE, SPARSITY = (300, 784), 0.9


def worker(rounds: int) -> list[dict]:
    """In a process built for one target: each op at each batch against torch's dense addmm (rows as dicts)."""
    from torch import nn

    from sparsity_viz.backend import act_sparse, conv_sparse, int8, kernels
    from sparsity_viz.backend.bench import interleaved_ratios, random_sparse
    from sparsity_viz.backend.ops import NativeCSROp, NativeDenseOp
    from sparsity_viz.devices import configure_threads

    extensions = (int8.EXTENSION, act_sparse.EXTENSION, conv_sparse.EXTENSION)
    if kernels.load() is None or any(e.load() is None for e in extensions):
        sys.exit(f"the native kernels did not build: {kernels.notice()} {[e.notice() for e in extensions]}")
    configure_threads(1)
    w = random_sparse(SHAPE, SPARSITY)
    bias = torch.randn(SHAPE[0], generator=torch.Generator().manual_seed(1))
    dense_w = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2))
    ops = {"csr-native": NativeCSROp(w, bias, False, 1, 64).chain(),
           "csr-int8-native": int8.make_chain([int8.Int8CSROp(w, bias, False).layer()], SHAPE[1], 64),
           "dense-native": NativeDenseOp(dense_w, bias, False, 1, 64).chain(),
           "act-dense-native": act_sparse.ActDenseOp(dense_w, bias, False).chain()}
    rows = []
    for batch in BATCHES:
        x = torch.randn(SHAPE[1], batch, generator=torch.Generator().manual_seed(batch))  # (in, B) feature-major
        x = x * (torch.rand(x.shape, generator=torch.Generator().manual_seed(batch + 1)) < 0.5)  # half zeros
        col = bias.unsqueeze(1)
        torch.testing.assert_close(ops["csr-native"].forward(x, False), torch.addmm(col, w, x), rtol=1e-4, atol=1e-4)
        wq = int8.fake_quantize_rows(w)  # the int8 kernel computes with the per-row quantized weight
        torch.testing.assert_close(ops["csr-int8-native"].forward(x, False), torch.addmm(col, wq, x), rtol=1e-4,
                                   atol=1e-4)
        for name in ("dense-native", "act-dense-native"):
            torch.testing.assert_close(ops[name].forward(x, False), torch.addmm(col, dense_w, x), rtol=1e-4, atol=1e-4)
        fns = {"torch dense": lambda: torch.addmm(col, dense_w, x),
               **{name: (lambda op=op: op.forward(x, False)) for name, op in ops.items()}}
        res = interleaved_ratios(fns, "torch dense", rounds=rounds, rel_iqr=None)
        rows += [{"op": name, "batch": batch, "us": res[name]["median_s"] * 1e6, "ratio": res[name]["ratio"]}
                 for name in ops]
    conv = nn.Conv2d(20, 50, 5)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        conv.weight.mul_(torch.rand(conv.weight.shape, generator=g) >= 0.9)
    dense_unit = nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2))
    unit = conv_sparse.DirectConv2d(conv, True, 2)
    for batch in BATCHES:
        xc = torch.randn(batch, 20, 12, 12, generator=g)
        with torch.no_grad():
            torch.testing.assert_close(unit(xc), dense_unit(xc), rtol=1e-4, atol=1e-4)
            res = interleaved_ratios({"torch dense": lambda: dense_unit(xc), "direct-native": lambda: unit(xc)},
                                     "torch dense", rounds=rounds, rel_iqr=None)
        rows.append({"op": "direct-native", "batch": batch, "us": res["direct-native"]["median_s"] * 1e6,
                     "ratio": res["direct-native"]["ratio"]})
    return rows


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        print(json.dumps(worker(int(argv[1]))))
        return
    args = rounds_args(__doc__.splitlines()[0], argv)
    results = {}
    for target in TARGETS:
        env = dict(os.environ, SPARSITY_VIZ_MARCH="" if target == "native" else target)
        run = subprocess.run([sys.executable, __file__, "--worker", str(args.rounds)], env=env, capture_output=True,
                             text=True)
        if run.returncode != 0:
            sys.exit(f"{target}: {run.stderr.strip().splitlines()[-1] if run.stderr.strip() else run.returncode}")
        results[target] = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"{target}: done", flush=True)
    native = {(r["op"], r["batch"]): r["us"] for r in results["native"]}
    lines = [f"`{command('march_speed.py', argv)}` — torch {torch.__version__}, {cpu_line()}, one thread, each build in "
             f"its own process, medians of {args.rounds} interleaved rounds ({INTERLEAVED}); layer {SHAPE[0]}x"
             f"{SHAPE[1]} at {SPARSITY:.0%} (dense-native, act-dense-native: the same shape dense; inputs half zeros); "
             "direct-native: a 20 -> 50 channel 5x5 convolution at 90 % on 12x12 inputs with ReLU and pool; / torch "
             "dense = median of the per-round ratios to torch's addmm (Conv2d + ReLU + pool) in the same process",
             "",
             "| build | op | batch | us | / torch dense | / native build |", "|---" * 6 + "|"]
    for target in TARGETS:
        for r in results[target]:
            lines.append(f"| {target} | {r['op']} | {r['batch']} | {r['us']:.1f} | {r['ratio']:.3f} | "
                         f"{r['us'] / native[(r['op'], r['batch'])]:.2f} |")
    publish(DOC, "march-speed", "\n".join(lines), not args.no_write)


if __name__ == "__main__":
    main()
