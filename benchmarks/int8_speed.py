"""int8 weights on the sparse CPU kernel, timed in one run against fp32 dense, fp32 sparse and dense int8.

    python benchmarks/int8_speed.py [--rounds 21] [--no-write]

LeNet-300-100 (the bundled trained sample) pruned by global magnitude to 90 %, one torch
thread. Per layer (fc1, fc2, fc3, ReLU fused where the model has it) and for the whole
model, at batch 1, 32 and 256, every format is timed interleaved (round-robin bursts,
median of ``--rounds`` rounds), and each ratio is to fp32 dense ``F.linear`` (batch-major)
from the same run:

    fp32-dense             F.linear (+ ReLU), batch-major: the reference
    fp32-csr-native        the fp32 native CSR kernel (ops.NativeCSROp), feature-major activations
    int8-csr-native        int8 values + per-row scale on the int8 kernel (int8.Int8CSROp), feature-major
    int8-dense-weightonly  torch._weight_int8pack_mm (int8 weights, fp32 activations), batch-major
    int8-dense-dynamic     torch.ao quantize_dynamic, per-channel int8 weights, uint8 activations, batch-major

Whole-model rows run batch-major in and out for every format (compile_model(formats=("csr-native",),
compact=False) for fp32 sparse, Int8SparseMLP for int8 sparse). Before timing, every int8 path
is checked against the fake-quantized model (torch.fake_quantize_per_channel_affine); the
dynamic one also quantizes activations, so its error is reported, not asserted.
The table goes to docs/backend.md (section "int8"), between the markers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doc_block import command, cpu_line, publish, rounds_args  # noqa: E402 (this script's folder is on sys.path)
from sparsity_viz.backend import int8, kernels  # noqa: E402
from sparsity_viz.backend.compiled import compile_model  # noqa: E402
from sparsity_viz.backend.ops import NativeCSROp  # noqa: E402
from sparsity_viz.checkpoints import load_sample  # noqa: E402
from sparsity_viz.pruning import prune  # noqa: E402

DOC = ROOT / "docs" / "backend.md"
TABLE = "int8-table"  # the doc's <!-- int8-table:begin/end --> markers
BATCHES = (1, 32, 256)
FORMATS = ("fp32-dense", "fp32-csr-native", "int8-csr-native", "int8-dense-weightonly", "int8-dense-dynamic")


def _model():
    model, _card = load_sample("lenet300")
    return prune(model, "global_magnitude", 0.9).model.eval()


def _layer_fns(w, b, relu, batch):
    x_bm = torch.randn(batch, w.shape[1])
    x_fm = x_bm.t().contiguous()
    tile = 64 if batch >= 64 else 32
    fp32 = NativeCSROp(w, b, relu, tile=tile)
    q8 = int8.Int8CSROp(w, b, relu)
    lin = torch.nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    wo = int8.WeightOnlyInt8Linear(lin)
    dyn = int8.int8_dense_model(torch.nn.Sequential(lin), "dynamic")
    act = torch.relu if relu else (lambda t: t)
    ref = act(F.linear(x_bm, int8.fake_quantize_rows(w), b))
    torch.testing.assert_close(q8.forward(x_fm).t(), ref)
    torch.testing.assert_close(act(wo(x_bm)), ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fp32.forward(x_fm).t(), act(F.linear(x_bm, w, b)), rtol=1e-4, atol=1e-4)  # fp32 too
    dyn_err = float((act(dyn(x_bm)) - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
    fns = {
        "fp32-dense": lambda: act(F.linear(x_bm, w, b)),
        "fp32-csr-native": lambda: fp32.forward(x_fm),
        "int8-csr-native": lambda: q8.forward(x_fm),
        "int8-dense-weightonly": lambda: act(wo(x_bm)),
        "int8-dense-dynamic": lambda: act(dyn(x_bm)),
    }
    nbytes = {"fp32-dense": w.numel() * 4, "fp32-csr-native": fp32.nbytes, "int8-csr-native": q8.nbytes,
              "int8-dense-weightonly": w.numel() + 4 * w.shape[0], "int8-dense-dynamic": w.numel() + 4 * w.shape[0]}
    return fns, nbytes, dyn_err


def _model_fns(model, batch):
    x = torch.randn(batch, 784)
    fp32 = compile_model(model, batch_size=batch, device="cpu", formats=("csr-native",), compact=False)
    q8 = int8.Int8SparseMLP(model)
    wo = int8.int8_dense_model(model, "weightonly")
    dyn = int8.int8_dense_model(model, "dynamic")
    fq = int8.int8_dense_model(model, "weightonly")  # same numbers as the fake-quantized model
    with torch.no_grad():
        ref = model.__class__.forward(_fake_quantized(model), x)
        torch.testing.assert_close(q8(x), ref)
        torch.testing.assert_close(fq(x), ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(fp32(x), model(x), rtol=1e-4, atol=1e-4)  # the fp32 CSR contender too
        dyn_err = float((dyn(x) - ref).abs().max() / ref.abs().max())
    fns = {"fp32-dense": lambda: model(x), "fp32-csr-native": lambda: fp32(x), "int8-csr-native": lambda: q8(x),
           "int8-dense-weightonly": lambda: wo(x), "int8-dense-dynamic": lambda: dyn(x)}
    dense_bytes = sum(m.weight.numel() * 4 for m in model.modules() if isinstance(m, torch.nn.Linear))
    nbytes = {"fp32-dense": dense_bytes, "fp32-csr-native": fp32.nbytes, "int8-csr-native": q8.nbytes,
              "int8-dense-weightonly": int8.int8_weight_bytes(model, "int8-dense-weightonly"),
              "int8-dense-dynamic": int8.int8_weight_bytes(model, "int8-dense-dynamic")}
    return fns, nbytes, dyn_err


def _fake_quantized(model):
    import copy

    m = copy.deepcopy(model)
    with torch.no_grad():
        for lin in m.modules():
            if isinstance(lin, torch.nn.Linear):
                lin.weight.copy_(int8.fake_quantize_rows(lin.weight))
    return m


def measure(rounds: int) -> pd.DataFrame:
    torch.set_num_threads(1)
    if not int8.available() or not kernels.available():
        raise SystemExit("native kernels unavailable: " + str(int8.notice() or kernels.notice()))
    model = _model()
    rows = []
    configs = [(name, lin.weight.detach(), lin.bias.detach(), i < model.num_layers)
               for i, (name, lin) in enumerate(((f"fc{i}", getattr(model, f"fc{i}"))
                                                for i in range(1, model.num_layers + 1)), start=1)]
    for batch in BATCHES:
        for name, w, b, relu in [*configs, ("model", None, None, None)]:
            if name == "model":
                fns, nbytes, dyn_err = _model_fns(model, batch)
                shape, density = "784-300-100-10", sum(int((m.weight != 0).sum()) for m in model.modules()
                                                         if isinstance(m, torch.nn.Linear)) / 266200
            else:
                fns, nbytes, dyn_err = _layer_fns(w, b, relu, batch)
                shape, density = f"{w.shape[0]}x{w.shape[1]}", float((w != 0).float().mean())
            med = int8.interleaved_medians(fns, rounds=rounds)
            for fmt in FORMATS:
                rows.append({"layer": name, "shape": shape, "density": density, "batch": batch, "format": fmt,
                             "median_us": med[fmt] * 1e6, "ratio_dense": med[fmt] / med["fp32-dense"],
                             "weight_bytes": nbytes[fmt], "dynamic_rel_err": dyn_err})
            print(f"batch {batch:4d} {name:6s} " + "  ".join(f"{f} {med[f] * 1e6:8.1f}us" for f in FORMATS), flush=True)
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame, rounds: int, cmd: str = "python benchmarks/int8_speed.py") -> str:
    lines = [f"`{cmd}` — torch {torch.__version__}, {cpu_line()}, 1 torch thread", "",
             "| layer | batch | density | fp32 dense µs | fp32 CSR native | int8 CSR native | int8 dense weight-only "
             "| int8 dense dynamic | int8 vs fp32 CSR |", "|---|---|---|---|---|---|---|---|---|"]
    for (layer, batch), g in df.groupby(["layer", "batch"], sort=False):
        r = g.set_index("format")
        lines.append(f"| {layer} ({r['shape'].iloc[0]}) | {batch} | {100 * r['density'].iloc[0]:.1f} % "
                     f"| {r.loc['fp32-dense', 'median_us']:.1f} | "
                     + " | ".join(f"{r.loc[f, 'ratio_dense']:.2f}×" for f in FORMATS[1:])
                     + f" | {r.loc['int8-csr-native', 'median_us'] / r.loc['fp32-csr-native', 'median_us']:.2f}× |")
    model = df[df.layer == "model"].drop_duplicates("format").set_index("format")["weight_bytes"]
    lines.append("")
    lines.append("Weight bytes, whole model: " + ", ".join(f"{f} {int(model[f]):,}" for f in FORMATS) + ".")
    err = df[df.layer == "model"]["dynamic_rel_err"].max()
    lines.append(f"Ratios are to fp32 dense `F.linear` in the same run; medians of {rounds} interleaved rounds, "
                 "1 torch thread. int8 CSR native and int8 dense "
                 "weight-only equal the fake-quantized model (`assert_close`, checked before timing); dynamic "
                 f"quantization also rounds the activations (max error {100 * err:.2f} % of the largest logit).")
    return "\n".join(lines)

def main(argv: list[str] | None = None) -> None:
    args = rounds_args(__doc__.splitlines()[0], argv)
    df = measure(args.rounds)
    publish(DOC, TABLE, markdown(df, args.rounds, command("int8_speed.py", argv)), write=not args.no_write)


if __name__ == "__main__":
    main()
