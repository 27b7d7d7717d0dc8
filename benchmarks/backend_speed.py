"""Whole MLPs at 90 %: dense vs torch CSR vs DeepSparse vs this backend, 1 and 2 threads, idle and busy.

    python benchmarks/backend_speed.py [--rounds 21] [--batches 1,8,32,256,1024] [--threads 1,2]
                                      [--states idle,busy] [--write]

Models: the bundled trained LeNet-300-100 pruned by global magnitude to 90 %, and a 784-2048-2048-10
MLP (seeded random init) pruned layer by layer (magnitude) to 90 %. For every (model, batch, threads) the backend compiles once
(``compile_model``, measure policy) on the idle machine; then, in each state, every contender is
timed whole-call by ``bench.interleaved_ratios`` (exactly ``--rounds`` rounds, each a burst of about 1 ms of
calls per contender, after one untimed call, in an order shuffled per round (``bench.round_order``): a call
right after another contender ran ~15-20 % slower, its caches full of the other's data); ratio =
median of the per-round ratios to dense. "busy": a second process
spinning (a Python busy loop) pinned to the last core, the normal state of a shared class server.
Ratios are to the dense torch model in the same rounds and state; "limit" is the FLOP limit (the
share of weights left). "1-thread backend": the backend compiled and run with one thread, timed
in the same rounds (the 2-thread backend must never be worse). DeepSparse is timed only when
installed and only if its logits match the dense model (checked first); otherwise the reason is
printed. ``--write`` puts the table into docs/backend.md (block ``backend-speed``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from doc_block import INTERLEAVED, cpu_line, write_block  # noqa: E402 (this script's folder is on sys.path)
from sparsity_viz.backend import compile_model  # noqa: E402
from sparsity_viz.backend.bench import interleaved_ratios  # noqa: E402
from sparsity_viz.checkpoints import load_sample  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.devices import torch_threads  # noqa: E402
from sparsity_viz.models import MLP  # noqa: E402
from sparsity_viz.pruning import prune  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "backend.md"
SPARSITY = 0.9


def models(sparsity: float = SPARSITY) -> dict[str, torch.nn.Module]:
    """The two MLPs pruned to ``sparsity``: LeNet-300-100 by global magnitude, the wide one layer by layer."""
    lenet, _card = load_sample("lenet300")
    torch.manual_seed(0)
    wide = MLP(784, (2048, 2048), 10)
    # layer-wise for the wide MLP: global magnitude on its random init would empty layers 2-3
    return {"LeNet-300-100": prune(lenet.eval(), "global_magnitude", sparsity).model.eval(),
            "784-2048-2048-10": prune(wide.eval(), "magnitude", sparsity).model.eval()}


def batch_of(data: torch.Tensor, batch: int) -> torch.Tensor:
    """The first ``batch`` rows of ``data``, repeated from the start when it has fewer: (batch, features)."""
    return data[torch.arange(batch) % len(data)].contiguous()


def fresh_inputs(batch: int, width: int, megabytes: int = 12) -> list[torch.Tensor]:
    """Distinct random ``(batch, width)`` inputs, at least ``megabytes`` of them (more than an L2): cycling through
    them gives each call an input out of cache, as a new batch would arrive."""
    return [torch.randn(batch, width) for _ in range(max(2, -(-(megabytes << 20) // (batch * width * 4))))]


def density(model: torch.nn.Module) -> float:
    ws = [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]
    return sum(int((w != 0).sum()) for w in ws) / sum(w.numel() for w in ws)


def deepsparse_runner(model: torch.nn.Module, x: torch.Tensor, threads: int):
    """A DeepSparse engine for ``model`` at batch len(x), or the reason there is none."""
    try:
        import deepsparse  # noqa: F401
    except ImportError:
        return None, "not installed"
    import tempfile

    import numpy as np
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    torch.onnx.export(model, x, str(path), input_names=["x"], output_names=["y"])
    engine = deepsparse.compile_model(str(path), batch_size=len(x), num_cores=threads)
    got = torch.from_numpy(np.asarray(engine([x.numpy()])[0]))
    with torch.no_grad():
        want = model(x)
    diff = float((got - want).abs().max())
    if diff > 1e-3 * float(want.abs().max()) + 1e-4:
        return None, f"wrong logits (max |diff| {diff:.3g}); not timed"
    return (lambda: engine([x.numpy()])), None


class Busy:
    """A Python busy loop pinned to the last core while the context is open."""

    def __enter__(self):
        cpu = (os.cpu_count() or 1) - 1

        def pinned_and_tied():  # in the child: the last core, and killed with this process (a killed run left one)
            os.sched_setaffinity(0, {cpu})
            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pinned_and_tied)
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def timed(fns: dict, reference: str, rounds: int, state: str) -> dict[str, dict]:
    """``bench.interleaved_ratios`` over exactly ``rounds`` rounds, with a busy second core when ``state`` is busy."""
    with Busy() if state == "busy" else contextlib.nullcontext():
        return interleaved_ratios(fns, reference, rounds=rounds, rel_iqr=None)


def threads_used(compiled, batch: int) -> str:
    """What the compiled model runs on: the ThreadGuard's current choice, the layers' threads, or the module."""
    return "module" if compiled.module is not None else str(compiled.threads_at(batch))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--batches", default="1,8,32,256,1024")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--states", default="idle,busy")
    ap.add_argument("--write", action="store_true", help="write the table into docs/backend.md")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    states = args.states.split(",")
    data = load_dataset("mnist5k").x_test.flatten(1)
    rows = ["| model | batch | threads | state | dense ms | torch CSR | DeepSparse | **this backend** "
            "| 1-thread backend | backend threads | limit | load |", "|---" * 12 + "|"]
    notes: dict[str, str] = {}
    for name, model in models().items():
        limit = density(model)
        for batch in batches:
            x = batch_of(data, batch)
            calib = data[:256]
            with torch_threads(1):
                one = compile_model(model, batch_size=batch, device="cpu", calibration=calib)
            for threads in thread_counts:
                with torch_threads(threads):
                    ours = one if threads == 1 else compile_model(model, batch_size=batch, device="cpu",
                                                                  calibration=calib)
                    csr = compile_model(model, batch_size=batch, device="cpu", formats=("csr-torch",), compact=False)
                    for a, b in ((ours, model), (csr, model), (one, model)):
                        torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-4)
                    ds, why = deepsparse_runner(model, x, threads)
                    if why:
                        notes["DeepSparse"] = why
                    fns = {"dense": lambda: model(x), "csr": lambda: csr(x), "ours": lambda: ours(x),
                           "one": lambda: one(x)}
                    if ds is not None:
                        fns["ds"] = ds
                    for state in states:
                        load = os.getloadavg()[0]
                        t = timed(fns, "dense", args.rounds, state)
                        used = threads_used(ours, batch)
                        r = {k: v["ratio"] for k, v in t.items()}
                        ds_cell = f"{r['ds']:.2f}" if "ds" in r else "–"
                        one_cell = f"{r['one']:.2f}" if threads > 1 else "(same)"
                        dense_ms = t["dense"]["median_s"] * 1e3
                        line = (f"| {name} | {batch} | {threads} | {state} | {dense_ms:.3f} | {r['csr']:.2f} | {ds_cell} "
                                f"| **{r['ours']:.2f}** | {one_cell} | {used} | {limit:.2f} | {load:.1f} |")
                        rows.append(line)
                        print(line, flush=True)
    cmd = "python benchmarks/backend_speed.py " + " ".join(sys.argv[1:])
    head = (f"`{cmd.strip()}` — torch {torch.__version__}, {cpu_line()}, {os.cpu_count()} cores; "
            f"ratios = time / dense torch model (same rounds, same state, same threads), medians of the per-round "
            f"ratios over {args.rounds} interleaved rounds ({INTERLEAVED}); dense ms = its median; "
            "busy = a Python busy loop pinned to the last core; 'backend threads' = what the "
            "ThreadGuard was running at the end of the state, else the layers' thread count ('module': the original "
            "module runs); load = the 1-minute load average as the state began (other processes on the machine).")
    tail = "\n".join(f"{k}: {v}." for k, v in notes.items())
    table = head + "\n\n" + "\n".join(rows) + ("\n\n" + tail if tail else "")
    if args.write:
        write_block(DOC, "backend-speed", table)


if __name__ == "__main__":
    main()
