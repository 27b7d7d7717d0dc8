"""Whole MLPs at 90, 95 and 99 % against the FLOP limit, one thread (issue 11, item 2: "whole MLPs at 95-99 %").

    python benchmarks/mlp_limit.py [--rounds 21] [--no-write]

The two models of ``backend_speed.py`` (bundled LeNet-300-100 by global magnitude, the seeded 784-2048-2048-10
MLP layer by layer), pruned to each sparsity and compiled on one thread (``compile_model``, measure policy) for
each batch. Timed in interleaved rounds (``bench.interleaved_ratios``, exactly ``--rounds``) against the dense
model, with a third contender: copying the input once (``buf.copy_(x)``, the bytes any kernel that reads
``x`` moves, which the FLOP limit does not count). "limit" = the share of weights left (Linear layers);
"x limit" = (time / dense time) / limit; "input copy x limit" the same for the copy. Compaction removes the
rows and columns pruning emptied, so a model can run below its limit. Writes the table into docs/backend.md
(block ``mlp-limit``) unless ``--no-write``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from backend_speed import batch_of, density, models  # noqa: E402
from doc_block import INTERLEAVED, command, cpu_line, publish, rounds_args  # noqa: E402
from sparsity_viz.backend import compile_model, kernels  # noqa: E402
from sparsity_viz.backend.bench import interleaved_ratios  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.devices import configure_threads  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "backend.md"
SPARSITIES = (0.9, 0.95, 0.99)
BATCHES = (32, 256, 1024)


def measure(name: str, model: torch.nn.Module, sparsity: float, batch: int, data: torch.Tensor, rounds: int) -> str:
    """One table row: the compiled model and an input copy against the dense model at ``batch``."""
    x = batch_of(data, batch)  # (batch, 784)
    compiled = compile_model(model, batch_size=batch, device="cpu", calibration=data[:256])
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-4)
    buf = torch.empty_like(x)
    res = interleaved_ratios({"dense": lambda: model(x), "ours": lambda: compiled(x), "copy": lambda: buf.copy_(x)},
                             "dense", rounds=rounds, rel_iqr=None)
    limit = density(model)
    plans = compiled.plans
    widths = [plans[0].compiled_shape[1], *(p.compiled_shape[0] for p in plans)]  # after compaction
    shapes = " → ".join(map(str, widths)) if compiled.module is None else "module"
    return (f"| {name} | {sparsity:.0%} | {batch} | {limit:.4f} | {res['dense']['median_s'] * 1e6:.1f} | "
            f"{res['ours']['median_s'] * 1e6:.1f} | {res['ours']['ratio']:.4f} | **{res['ours']['ratio'] / limit:.2f}** | "
            f"{res['copy']['ratio'] / limit:.2f} | {shapes} |")


def main(argv: list[str] | None = None) -> None:
    args = rounds_args(__doc__.splitlines()[0], argv)
    if kernels.load() is None:
        sys.exit(f"the native kernel is not available: {kernels.notice()}")
    threads = configure_threads(1)
    data = load_dataset("mnist5k").x_test.flatten(1)
    lines = [f"`{command('mlp_limit.py', argv)}` — torch {torch.__version__}, {cpu_line()}, threads {threads}, "
             f"medians of {args.rounds} interleaved rounds ({INTERLEAVED}); ratio = time / dense model; limit = share of "
             "weights left; x limit = ratio / limit; input copy = `buf.copy_(x)` in the same rounds",
             "", "| model | sparsity | batch | limit | dense us | backend us | backend / dense | x limit "
             "| input copy x limit | compiled widths |", "|---" * 10 + "|"]
    print("\n".join(lines), flush=True)
    for sparsity in SPARSITIES:
        for name, model in models(sparsity).items():
            for batch in BATCHES:
                lines.append(measure(name, model, sparsity, batch, data, args.rounds))
                print(lines[-1], flush=True)
    publish(DOC, "mlp-limit", "\n".join(lines), not args.no_write)


if __name__ == "__main__":
    main()
