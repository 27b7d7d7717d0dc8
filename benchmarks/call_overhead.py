"""What a compiled model's Python layer adds to one call of its native chain.

    python benchmarks/call_overhead.py [--rounds 21] [--no-write]

The bundled LeNet-300-100 at 90 % global magnitude, compiled (measure policy) at batch 1 and 8, on one
torch thread. Contenders, timed by ``bench.interleaved_ratios`` (bursts of ~1 ms after one untimed call, order shuffled per round):

    chain      the compiled model's native chain called directly (``one_call().forward``)
    model      the compiled model called as a module (what the app and the CLI do)
    guarded    the same chain call through a ``ThreadGuard`` (two torch threads, so the guard is
               active; the call runs the chain on one thread whichever count the guard picks)
    no-op      a ``ThreadGuard`` around a function that does nothing: the guard's own cost

"model - chain" and "guarded - chain" are the per-call overheads in microseconds (medians). The table
goes to docs/backend.md (block ``call-overhead``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from doc_block import INTERLEAVED, cpu_line, publish, rounds_args  # noqa: E402
from sparsity_viz.backend import compile_model  # noqa: E402
from sparsity_viz.backend.bench import interleaved_ratios  # noqa: E402
from sparsity_viz.backend.thread_guard import ThreadGuard  # noqa: E402
from sparsity_viz.checkpoints import load_sample  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.devices import torch_threads  # noqa: E402
from sparsity_viz.pruning import prune  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "backend.md"


def main(argv: list[str] | None = None) -> None:
    args = rounds_args(__doc__.splitlines()[0], argv)
    lenet, _card = load_sample("lenet300")
    model = prune(lenet.eval(), "global_magnitude", 0.9).model.eval()
    data = load_dataset("mnist5k").x_test.flatten(1)
    rows = ["| batch | chain us | model us | guarded us | no-op guard us | model − chain us | guarded − chain us |",
            "|---|---|---|---|---|---|---|"]
    for batch in (1, 8):
        x = data[:batch].contiguous()
        with torch_threads(1):
            compiled = compile_model(model, batch_size=batch, device="cpu", calibration=data[:256])
        chain = compiled.one_call()
        if chain is None:
            sys.exit("the compiled model has no native one-call chain here (native kernels off?)")
        guard, idle = ThreadGuard(2), ThreadGuard(2)
        with torch_threads(2):  # the guard chooses between 1 and 2; the chain runs on 1 either way
            fns = {"chain": lambda: chain.forward(x, True, True),
                   "model": lambda: compiled(x),
                   "guarded": lambda: guard.run(lambda n: chain.forward(x, True, True, 1), batch),
                   "no-op": lambda: idle.run(lambda n: None, batch)}
            t = interleaved_ratios(fns, "chain", rounds=args.rounds, rel_iqr=None)
        us = {k: v["median_s"] * 1e6 for k, v in t.items()}
        rows.append(f"| {batch} | {us['chain']:.1f} | {us['model']:.1f} | {us['guarded']:.1f} | {us['no-op']:.2f} "
                    f"| {us['model'] - us['chain']:.1f} | {us['guarded'] - us['chain']:.1f} |")
        print(rows[-1], flush=True)
    cmd = "python benchmarks/call_overhead.py " + " ".join(sys.argv[1:] if argv is None else argv)
    head = (f"`{cmd.strip()}` — torch {torch.__version__}, {cpu_line()}, {os.cpu_count()} cores; "
            f"LeNet-300-100 at 90 % global magnitude, compiled on 1 thread; medians over {args.rounds} interleaved "
            f"rounds ({INTERLEAVED})")
    publish(DOC, "call-overhead", head + "\n\n" + "\n".join(rows), write=not args.no_write)


if __name__ == "__main__":
    main()
