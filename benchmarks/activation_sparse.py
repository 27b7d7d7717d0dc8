"""Activation-sparse kernels (skip zero inputs) against dense and the weight-sparse kernel, on LeNet-300-100.

    python benchmarks/activation_sparse.py [--rounds 21] [--no-write]

The bundled trained LeNet-300-100 sample, dense and pruned by global magnitude to 90 %, on real
MNIST-5k test images (normalised as the app trains on them), one torch thread. Every layer
(fc1..fc3, ReLU fused where the model has it, not compacted) and the whole model, at batch 1,
4, 16 and 32; each contender cycles through 16 different input slices, so a median covers many
inputs, and all contenders of one row are timed interleaved (round-robin bursts, median of
``--rounds`` rounds, ``int8.interleaved_medians``). Ratios are to dense ``F.linear`` (batch-major)
of the same run:

    dense         F.linear (+ ReLU); for the whole model the torch model itself
    csr-native    the weight-sparse CSR kernel (ops.NativeCSROp); whole model: one fused native chain
    act-dense     act-dense-native, per sample (and "union" of active inputs for B > 1): W^T rows, skips zero inputs
    act-csc       act-csc-native, per sample / union: CSC, skips zero inputs and zero weights
    auto          compile_model(batch_size=B, calibration=<256 test images>): what the dispatcher picks

A second table times single layers with the same weights on synthetic inputs (standard normal, a
given share set exactly to zero at random places) at 0/50/80/95 % zeros, batch 1, to show the
crossover. Every contender is checked against F.linear (assert_close) before timing. The tables go
to docs/backend.md (section "Activation sparsity"), between the markers.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doc_block import command, cpu_line, publish, rounds_args  # noqa: E402 (this script's folder is on sys.path)
from sparsity_viz.backend import act_sparse, kernels  # noqa: E402
from sparsity_viz.backend.compiled import compile_model  # noqa: E402
from sparsity_viz.backend.int8 import interleaved_medians  # noqa: E402
from sparsity_viz.backend.ops import NativeCSROp  # noqa: E402
from sparsity_viz.checkpoints import load_sample  # noqa: E402
from sparsity_viz.data import load_dataset  # noqa: E402
from sparsity_viz.pruning import prune  # noqa: E402

DOC = ROOT / "docs" / "backend.md"
TABLE = "act-sparse-table"  # the doc's <!-- act-sparse-table:begin/end --> markers
BATCHES = (1, 4, 16, 32)
SLICES = 16
SYNTH_ZEROS = (0.0, 0.5, 0.8, 0.95)
CALIBRATION = 256


def _slices(x_bm: torch.Tensor, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """SLICES blocks of different samples (wrapping around): (batch-major (B, F), feature-major (F, B))."""
    n = x_bm.shape[0]
    blocks = [x_bm[torch.arange(k * batch, (k + 1) * batch) % n].contiguous() for k in range(SLICES)]
    return [(x, x.t().contiguous()) for x in blocks]


def _cycling(fn, xs):
    it = itertools.cycle(xs)
    return lambda: fn(next(it))


def _layer_contenders(w, b, relu, batch) -> dict:
    act = torch.relu if relu else (lambda t: t)
    ops = {"csr-native": NativeCSROp(w, b, relu, tile=64 if batch >= 64 else 32)}
    modes = ("sample", "union") if batch > 1 else ("sample",)
    for fmt, short in (("act-dense-native", "act-dense"), ("act-csc-native", "act-csc")):
        for mode in modes:
            ops[f"{short}[{mode}]"] = act_sparse.act_op(fmt, w, b, relu, mode)
    fns = {"dense": lambda x: act(F.linear(x[0], w, b))}  # batch-major, as torch models run
    for name, op in ops.items():
        fns[name] = lambda x, op=op: op.forward(x[1])  # feature-major (in, B), the backend's layout
    return fns


def _check(fns: dict, xs: list[torch.Tensor], ref_fn) -> None:
    with torch.no_grad():
        for x in xs[:2]:
            ref = ref_fn(x)
            for name, fn in fns.items():
                y = fn(x)
                y = y if y.shape == ref.shape else y.t()
                torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4, msg=f"{name} differs from dense")


def _layers(model):
    return [(f"fc{i}", getattr(model, f"fc{i}")) for i in range(1, model.num_layers + 1)]


def _layer_inputs(model, x_bm) -> list[torch.Tensor]:
    """The batch-major input of every layer on x_bm."""
    h, out = x_bm.flatten(1), []
    with torch.no_grad():
        for i, (_, lin) in enumerate(_layers(model)):
            out.append(h)
            h = lin(h)
            if i < model.num_layers - 1:
                h = torch.relu(h)
    return out


def measure(rounds: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    torch.set_num_threads(1)
    if not kernels.available() or not act_sparse.available():
        raise SystemExit("native kernels unavailable: " + str(act_sparse.notice() or kernels.notice()))
    base, _card = load_sample("lenet300")
    x_all = load_dataset("mnist5k").x_test.flatten(1)  # (N, 784) normalised pixels
    models = {"dense": base.eval(), "pruned 90 %": prune(base, "global_magnitude", 0.9).model.eval()}
    rows, synth = [], []
    for mname, model in models.items():
        inputs = _layer_inputs(model, x_all)
        n_layers = model.num_layers
        for batch in BATCHES:
            for li, (lname, lin) in enumerate(_layers(model)):
                w, b, relu = lin.weight.detach(), lin.bias.detach(), li < n_layers - 1
                xs = _slices(inputs[li], batch)
                fns = _layer_contenders(w, b, relu, batch)
                _check(fns, xs, fns["dense"])
                med = interleaved_medians({k: _cycling(f, xs) for k, f in fns.items()}, rounds=rounds)
                rows += _rows(mname, lname, f"{w.shape[0]}x{w.shape[1]}", float((w != 0).float().mean()), batch,
                              float((inputs[li] == 0).float().mean()), med, "")
            xs = _slices(x_all, batch)
            auto = compile_model(model, batch_size=batch, calibration=x_all[:CALIBRATION])
            fns = {"dense": model,
                   "csr-native": compile_model(model, batch_size=batch, formats=("csr-native",), compact=False),
                   "act-dense[sample]": compile_model(model, batch_size=batch, formats=("act-dense-native",),
                                                      compact=False, calibration=x_all[:CALIBRATION]),
                   "act-csc[sample]": compile_model(model, batch_size=batch, formats=("act-csc-native",),
                                                    compact=False, calibration=x_all[:CALIBRATION]),
                   "auto": auto}
            fns = {k: (lambda x, m=m: m(x[0])) for k, m in fns.items()}
            _check(fns, xs, fns["dense"])
            med = interleaved_medians({k: _cycling(f, xs) for k, f in fns.items()}, rounds=rounds)
            picks = ", ".join(f"{p.name} {p.format}" for p in auto.plans)
            rows += _rows(mname, "model", "784-300-100-10", float("nan"), batch, float("nan"), med, picks)
            print(f"{mname} batch {batch}: {picks}", flush=True)
        for li, (lname, lin) in enumerate(_layers(model)):
            if li == n_layers - 1:
                continue  # fc3 (10 outputs) is call-overhead bound at batch 1
            w, b = lin.weight.detach(), lin.bias.detach()
            for z in SYNTH_ZEROS:
                g = torch.Generator().manual_seed(int(100 * z) + li)
                x = torch.randn(256, w.shape[1], generator=g)
                x.view(-1)[torch.randperm(x.numel(), generator=g)[: round(z * x.numel())]] = 0
                xs = _slices(x, 1)
                fns = _layer_contenders(w, b, True, 1)
                _check(fns, xs, fns["dense"])
                med = interleaved_medians({k: _cycling(f, xs) for k, f in fns.items()}, rounds=rounds)
                synth += _rows(mname, lname, f"{w.shape[0]}x{w.shape[1]}", float((w != 0).float().mean()), 1, z,
                               med, "")
    return pd.DataFrame(rows), pd.DataFrame(synth)


def _rows(mname, layer, shape, density, batch, zeros, med, picks) -> list[dict]:
    return [{"model": mname, "layer": layer, "shape": shape, "density": density, "batch": batch,
             "input_zeros": zeros, "contender": k, "median_us": v * 1e6, "ratio_dense": v / med["dense"],
             "auto_picks": picks} for k, v in med.items()]


def _best_act(r: pd.DataFrame, prefix: str) -> str:
    """The better of the per-sample and union variants, naming union when it won."""
    sub = r[r.index.str.startswith(prefix)]
    if sub.empty:
        return "–"
    k = sub["ratio_dense"].idxmin()
    return f"{sub.loc[k, 'ratio_dense']:.2f}×" + (" (union)" if k.endswith("[union]") else "")


def markdown(df: pd.DataFrame, synth: pd.DataFrame, rounds: int,
             cmd: str = "python benchmarks/activation_sparse.py") -> str:
    lines = [f"`{cmd}` — torch {torch.__version__}, {cpu_line()}, 1 torch thread", "",
             "| model | layer | batch | weight density | input zeros | dense µs | csr-native | act-dense | act-csc | auto |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for (mname, layer, batch), g in df.groupby(["model", "layer", "batch"], sort=False):
        r = g.set_index("contender")
        dens = "–" if layer == "model" else f"{100 * r['density'].iloc[0]:.1f} %"
        zeros = "–" if layer == "model" else f"{100 * r['input_zeros'].iloc[0]:.0f} %"
        auto = f"{r.loc['auto', 'ratio_dense']:.2f}×" if "auto" in r.index else ""
        lines.append(f"| {mname} | {layer} ({r['shape'].iloc[0]}) | {batch} | {dens} | {zeros} "
                     f"| {r.loc['dense', 'median_us']:.1f} | {r.loc['csr-native', 'ratio_dense']:.2f}× "
                     f"| {_best_act(r, 'act-dense')} | {_best_act(r, 'act-csc')} | {auto} |")
    lines += ["", "What `auto` (compile_model with a 256-image calibration batch) picked:", ""]
    picks = df[df.layer == "model"].drop_duplicates(["model", "batch"])
    lines += [f"- {r.model}, batch {r.batch}: {r.auto_picks}" for r in picks.itertuples()]
    lines += ["", "Synthetic inputs (standard normal, the given share set to zero at random), batch 1, same weights:", "",
              "| model | layer | weight density | input zeros | dense µs | csr-native | act-dense | act-csc |",
              "|---|---|---|---|---|---|---|---|"]
    for (mname, layer, z), g in synth.groupby(["model", "layer", "input_zeros"], sort=False):
        r = g.set_index("contender")
        lines.append(f"| {mname} | {layer} ({r['shape'].iloc[0]}) | {100 * r['density'].iloc[0]:.1f} % | {100 * z:.0f} % "
                     f"| {r.loc['dense', 'median_us']:.1f} | {r.loc['csr-native', 'ratio_dense']:.2f}× "
                     f"| {_best_act(r, 'act-dense')} | {_best_act(r, 'act-csc')} |")
    lines.append("")
    lines.append(f"Ratios are to dense `F.linear` (whole model: the torch model) in the same run; medians of {rounds} "
                 f"interleaved rounds over {SLICES} input slices, 1 torch thread. act columns: the better of per-sample "
                 "and union (union named when it won). "
                 "Every contender equals F.linear / the model (`assert_close`, checked before timing).")
    return "\n".join(lines)

def main(argv: list[str] | None = None) -> None:
    args = rounds_args(__doc__.splitlines()[0], argv)
    df, synth = measure(args.rounds)
    publish(DOC, TABLE, markdown(df, synth, args.rounds, command("activation_sparse.py", argv)), write=not args.no_write)


if __name__ == "__main__":
    main()
