"""LeNet-5 at 90 % global magnitude: dense vs im2col + torch CSR vs this backend (sparse conv units).

    python benchmarks/sparse_conv.py [--rounds 21] [--batches 32,256] [--threads 1,2] [--states idle,busy]
                                     [--sparsity 0.9] [--write]

Model: the bundled trained LeNet-5, pruned by global magnitude; inputs: MNIST test digits. For every
(batch, threads) each contender is compiled once, its logits checked against the dense model
(``assert_close``), then every contender is timed whole-call, interleaved round by round
(``backend_speed.timed``: exactly ``--rounds`` rounds of ~1 ms bursts in an order shuffled per round, medians of the
per-round ratios); "busy": a Python busy loop pinned to the last core.
Contenders:
  * dense: the pruned model as it is (torch: oneDNN conv, ReLU, max pool);
  * im2col + torch CSR: ``compile_model(formats=("csr-torch",))`` (unfold + torch.sparse CSR per conv);
  * fusion only: the *unpruned* model compiled with every conv forced to ``direct-native`` and its
    Linear layers dense: every tap is run, so this is what fusing ReLU + pool into the conv saves
    without any sparsity (median of the per-round ratios to the unpruned dense model, timed in the same rounds);
  * this backend: ``compile_model`` (measure policy) on the pruned model, calibrated on test digits.
"limit" is the FLOP limit: the share of multiply-adds left (convs counted per output position).
``--write`` puts the table into docs/backend.md (block ``sparse-conv``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from backend_speed import batch_of, deepsparse_runner, timed  # noqa: E402 (this script's folder)
from doc_block import INTERLEAVED, cpu_line, write_block  # noqa: E402
from sparsity_viz.backend import compile_model  # noqa: E402
from sparsity_viz.backend.bench import ratio_between  # noqa: E402
from sparsity_viz.checkpoints import load_sample  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.devices import torch_threads  # noqa: E402
from sparsity_viz.pruning import prune  # noqa: E402

DOC = Path(__file__).resolve().parent.parent / "docs" / "backend.md"
POSITIONS = {"conv1": 24 * 24, "conv2": 8 * 8, "fc1": 1, "fc2": 1}  # output positions per image (LeNet-5)


def flop_limit(model: torch.nn.Module) -> float:
    """Multiply-adds left / dense multiply-adds of LeNet-5 (each weight counted once per output position)."""
    kept = total = 0
    for name, pos in POSITIONS.items():
        w = getattr(model, name).weight
        kept += int((w != 0).sum()) * pos
        total += w.numel() * pos
    return kept / total


def layer_formats(compiled) -> str:
    if compiled.module is None or not compiled.plans:
        return "?"
    return ", ".join(f"{p.name} {p.format}" for p in compiled.plans)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--batches", default="32,256")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--states", default="idle,busy")
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--write", action="store_true", help="write the table into docs/backend.md")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    thread_counts = [int(t) for t in args.threads.split(",")]
    states = args.states.split(",")
    load_before = os.getloadavg()[0]
    full, _card = load_sample("lenet5")
    full = full.eval()
    model = prune(full, "global_magnitude", args.sparsity).model.eval()
    data = load_dataset("mnist5k").x_test
    data = data.reshape(-1, 1, 28, 28)
    calib = data[:256].contiguous()
    limit = flop_limit(model)
    dens = {n: float((getattr(model, n).weight != 0).float().mean()) for n in POSITIONS}
    rows = ["| batch | threads | state | dense ms | im2col + torch CSR | DeepSparse | fusion only (all taps) "
            "| **this backend** | limit |", "|---" * 9 + "|"]
    notes: dict[str, str] = {}
    for batch in batches:
        x = batch_of(data, batch)
        for threads in thread_counts:
            with torch_threads(threads):
                ours = compile_model(model, batch_size=batch, device="cpu", calibration=calib)
                csr = compile_model(model, batch_size=batch, device="cpu", formats=("csr-torch",))
                fused = compile_model(full, batch_size=batch, device="cpu", formats=("direct-native", "dense"),
                                      policy="heuristic")
                for a, ref in ((ours, model), (csr, model), (fused, full)):
                    with torch.no_grad():
                        torch.testing.assert_close(a(x), ref(x), rtol=1e-4, atol=1e-4)
                ds, why = deepsparse_runner(model, x, threads)
                if why:
                    notes["DeepSparse"] = why
                notes[f"batch {batch}, {threads} thread(s): this backend"] = layer_formats(ours)
                fns = {"dense": lambda: model(x), "csr": lambda: csr(x), "full": lambda: full(x),
                       "fused": lambda: fused(x), "ours": lambda: ours(x)}
                if ds is not None:
                    fns["ds"] = ds
                for state in states:
                    t = timed(fns, "dense", args.rounds, state)
                    r = {k: v["ratio"] for k, v in t.items()}
                    ds_cell = f"{r['ds']:.2f}" if "ds" in r else "–"
                    fusion = ratio_between(t, "fused", "full")  # round by round, as every other ratio
                    line = (f"| {batch} | {threads} | {state} | {t['dense']['median_s'] * 1e3:.2f} | {r['csr']:.2f} "
                            f"| {ds_cell} | {fusion:.2f} | **{r['ours']:.2f}** | {limit:.2f} |")
                    rows.append(line)
                    print(line, flush=True)
    cmd = "python benchmarks/sparse_conv.py " + " ".join(sys.argv[1:])
    head = (f"`{cmd.strip()}` — torch {torch.__version__}, {cpu_line()}, {os.cpu_count()} cores; trained "
            f"LeNet-5 at {args.sparsity:.0%} global magnitude (weights left: "
            + ", ".join(f"{n} {d:.1%}" for n, d in dens.items())
            + f"); ratios = time / dense model (same rounds, state and threads), medians of the per-round ratios over "
            f"{args.rounds} interleaved rounds ({INTERLEAVED}); busy = a Python busy loop pinned to "
            "the last core; 'fusion only' = the unpruned model with "
            "every conv on the direct kernel (all taps) over the unpruned dense model (median of the per-round "
            "ratios too); 1-minute load average "
            f"{load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end (other processes).")
    tail = "\n".join(f"- {k}: {v}." for k, v in notes.items())
    table = head + "\n\n" + "\n".join(rows) + ("\n\n" + tail if tail else "")
    print(table)
    if args.write:
        write_block(DOC, "sparse-conv", table)


if __name__ == "__main__":
    main()
