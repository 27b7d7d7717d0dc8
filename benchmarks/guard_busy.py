"""The ThreadGuard on a loaded machine: the 2-thread compiled model against the 1-thread one, and what a
2-thread region costs the 1-thread call after it.

    python benchmarks/guard_busy.py [--reps 6] [--rounds 21] [--processes 8] [--other VARIANT_thread_guard.py] [--write]

With a Python busy loop pinned to the last core (``backend_speed.Busy``), for LeNet-300-100 and the 784-2048-2048-10
MLP at 90 % (``backend_speed.models``), batch 256 and 1,024:

1. **guard / 1-thread**: the model compiled on 2 threads (its ``ThreadGuard`` choosing 1 or 2 per call) and the
   model compiled on 1 thread, timed with dense by ``bench.interleaved_ratios`` (``--rounds`` rounds); the ratio of
   their ratios to dense, over ``--reps`` fresh compiles (each guard starts from 8 calls on the idle machine, as
   after a compile; then the load starts). ``--other FILE`` loads another ``thread_guard.py`` (a variant, or
   ``git show REV:sparsity_viz/backend/thread_guard.py``) and runs it in the same reps, alternating which goes
   first; its column is named after the file.
2. **after-cost**: one 1-thread call right after a 2-thread region (the 2-thread model's chain forced onto 2
   threads) against one right after a 1-thread call, alternating, 30 of each, the ratio of their medians; in
   ``--processes`` child processes (the cost shows in some processes and not in others, probably by where the
   scheduler puts the OpenMP worker), then in as many with ``GOMP_SPINCOUNT=1000`` (libgomp's idle workers
   stop spinning after ~1,000 spins instead of its default 300,000); with the default, also with the workers
   released between the region and the call (``kernels.release_openmp_threads``, what the ThreadGuard does).

``--write`` puts the tables into docs/backend.md (blocks ``guard-busy`` and ``gomp-spin``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from backend_speed import DOC, Busy, batch_of, models  # noqa: E402 (this script's folder is on sys.path)
from doc_block import INTERLEAVED, cpu_line, publish  # noqa: E402
from sparsity_viz.backend import compile_model  # noqa: E402
from sparsity_viz.backend.bench import interleaved_ratios  # noqa: E402
from sparsity_viz.backend.kernels import release_openmp_threads  # noqa: E402
from sparsity_viz.backend.thread_guard import ThreadGuard  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.devices import torch_threads  # noqa: E402

CASES = (("LeNet-300-100", 256), ("LeNet-300-100", 1024), ("784-2048-2048-10", 256), ("784-2048-2048-10", 1024))
IDLE_CALLS = 8  # calls a fresh guard makes on the idle machine before the load starts


def guard_class(path: Path | None):
    """``ThreadGuard`` from the file at ``path`` (another version of thread_guard.py), or None."""
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location(f"other_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ThreadGuard


def guard_vs_one(model, x, calib, guards: dict, reps: int, rounds: int) -> dict[str, list[float]]:
    """Per guard name: (2-thread compiled model / dense) / (1-thread compiled model / dense), one per rep, busy."""
    batch = len(x)
    with torch_threads(1):
        one = compile_model(model, batch_size=batch, device="cpu", calibration=calib)
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(one(x), want, rtol=1e-4, atol=1e-4)  # checked before it is timed
    out: dict[str, list[float]] = {name: [] for name in guards}
    with torch_threads(2):
        for rep in range(reps):
            order = list(guards) if rep % 2 == 0 else list(reversed(guards))
            for name in order:
                ours = compile_model(model, batch_size=batch, device="cpu", calibration=calib)
                ours.thread_guard = guards[name](2)
                with torch.no_grad():
                    torch.testing.assert_close(ours(x), want, rtol=1e-4, atol=1e-4)
                    for _ in range(IDLE_CALLS):
                        ours(x)
                fns = {"dense": lambda: model(x), "ours": lambda: ours(x), "one": lambda: one(x)}
                with Busy():
                    t = interleaved_ratios(fns, "dense", rounds=rounds, rel_iqr=None)
                out[name].append(t["ours"]["ratio"] / t["one"]["ratio"])
    return out


def after_cost(name: str, batch: int, calls: int = 30) -> dict[str, float]:
    """Median ms of a 1-thread chain call right after a 2-thread region (its workers left spinning, or released as the
    ThreadGuard releases them) and right after a 1-thread call, busy."""
    model = models()[name]
    x = batch_of(load_dataset("mnist5k").x_test.flatten(1), batch)  # (B, 784)
    with torch_threads(2):
        compiled = compile_model(model, batch_size=batch, device="cpu", calibration=x[:256])
        chain, single = compiled.one_call(), compiled.one_call(single=True)
        if chain is None:
            raise SystemExit(f"{name} did not compile to one native chain (native kernels unavailable?)")
        after: dict[str, list[float]] = {"after 2 threads": [], "after 2 threads, released": [], "after 1 thread": []}
        keys = list(after)
        with Busy(), torch.no_grad():
            for i in range(len(keys) * calls):
                key = keys[i % len(keys)]
                if key == "after 1 thread":
                    single.forward(x, True, True, 1)
                else:
                    chain.forward(x, True, True, 2)
                    if key.endswith("released"):
                        release_openmp_threads()  # what the ThreadGuard does before a 1-thread call
                t0 = time.perf_counter()
                single.forward(x, True, True, 1)
                after[key].append(time.perf_counter() - t0)
    return {k: statistics.median(v) * 1e3 for k, v in after.items()}


def guard_table(args) -> str:
    """Table 1: guard / 1-thread per case, for this guard (and ``--other``)."""
    guards = {"this guard": ThreadGuard}
    if args.other is not None:
        guards[args.other.stem] = guard_class(args.other)
    data = load_dataset("mnist5k").x_test.flatten(1)
    all_models = models()
    cols = " | ".join(f"{g}: median (range)" for g in guards)
    rows = [f"| model | batch | {cols} |", "|---|---|" + "---|" * len(guards)]
    for name, batch in CASES:
        x = batch_of(data, batch)
        got = guard_vs_one(all_models[name], x, data[:256], guards, args.reps, args.rounds)
        cells = " | ".join(f"{statistics.median(v):.3f} ({min(v):.2f}–{max(v):.2f})" for v in got.values())
        rows.append(f"| {name} | {batch} | {cells} |")
        print(rows[-1], flush=True)
    other = f" --other {args.other.name}" if args.other else ""
    head = (f"`python benchmarks/guard_busy.py --reps {args.reps} --rounds {args.rounds} --processes 0{other}` — torch "
            f"{torch.__version__}, {cpu_line()}, {os.cpu_count()} cores, a busy loop on the last core. Guard / 1-thread "
            f"= (2-thread compiled model / dense) / (1-thread compiled model / dense), each a median of per-round "
            f"ratios over {args.rounds} interleaved rounds ({INTERLEAVED}), over {args.reps} fresh compiles (each guard after "
            f"{IDLE_CALLS} idle calls); below 1: the guard is ahead.")
    return head + "\n\n" + "\n".join(rows)


def spin_table(args) -> str:
    """Table 2: the after-cost per child process, with libgomp's default spin count (workers left spinning, and
    released as the ThreadGuard releases them) and with GOMP_SPINCOUNT=1000."""
    rows = ["| libgomp | model, batch | 1-thread call after a 2-thread region / after a 1-thread call, per process "
            "| processes with ≥ 1.10 |", "|---|---|---|---|"]
    for env in ({}, {"GOMP_SPINCOUNT": "1000"}):
        ratios: dict[tuple[str, str], list[float]] = {}  # (model and batch, how) -> one ratio per process
        for _ in range(args.processes):  # the cost differs from process to process
            run = subprocess.run([sys.executable, __file__, "--after-cost-only"], env={**os.environ, **env},
                                 capture_output=True, text=True, check=True)
            for case, ms in json.loads(run.stdout.splitlines()[-1]).items():
                ratios.setdefault((case, ""), []).append(ms["after 2 threads"] / ms["after 1 thread"])
                if not env:
                    ratios.setdefault((case, ", workers released"), []).append(
                        ms["after 2 threads, released"] / ms["after 1 thread"])
        label = " ".join(f"{k}={v}" for k, v in env.items()) or "default"
        for (case, how), v in sorted(ratios.items(), key=lambda kv: kv[0][1]):
            label_how = label + how
            rows.append(f"| {label_how} | {case} | {' '.join(f'{r:.2f}' for r in v)} | "
                        f"{sum(r >= 1.10 for r in v)} of {len(v)} |")
            print(rows[-1], flush=True)
    head = (f"`python benchmarks/guard_busy.py --reps 0 --processes {args.processes}` — torch {torch.__version__}, "
            f"{cpu_line()}, {os.cpu_count()} cores, a busy loop on the last core; per child process, the median of 30 "
            "1-thread calls right after a 2-thread region over the median of 30 right after a 1-thread call; 'workers "
            "released': `kernels.release_openmp_threads()` between the region and the call, as the ThreadGuard does.")
    return head + "\n\n" + "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=6, help="fresh compiles per case (0: skip table 1)")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--other", type=Path, help="another thread_guard.py to compare in the same reps")
    ap.add_argument("--processes", type=int, default=8, help="child processes per libgomp setting (0: skip table 2)")
    ap.add_argument("--write", action="store_true", help="write the tables into docs/backend.md")
    ap.add_argument("--after-cost-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.after_cost_only:
        print(json.dumps({f"{n} {b}": after_cost(n, b) for n, b in CASES if b == 1024}))
        return
    if args.reps > 0:
        publish(DOC, "guard-busy", guard_table(args), args.write)
    if args.processes > 0:
        publish(DOC, "gomp-spin", spin_table(args), args.write)


if __name__ == "__main__":
    main()
