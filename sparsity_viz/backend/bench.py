"""Measurement: latency per format x batch size as tidy DataFrames, and crossover curves.

All timings are medians of ``repeats`` runs after warm-up, every format measured in
the same process and run, so ratios to dense torch and to torch.sparse CSR are
like-for-like. Ideal ratios are what a perfect sparse kernel would reach: the FLOP
ratio is nnz / numel, the byte ratio nnz * 4 / dense bytes (values only).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import pandas as pd
import torch
from torch import nn

from ..devices import resolve_device
from ..models import prunable_layers
from .compiled import compile_model
from .dispatch import FormatUnavailable, default_formats, make_op

MODEL_FORMATS = ("dense", "csr-torch", "bsr-torch", "csr-native", "nm-native", "compact+dense", "auto")


def median_time(fn: Callable[[], object], repeats: int = 30, warmup: int = 3, cuda: bool = False) -> float:
    """Median seconds of ``fn()``."""
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        sync()
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


CALIBRATION_INPUTS = 256  # real test inputs a benchmark is timed on and the dispatcher calibrates on


def _input(model: nn.Module, batch: int, device, real: torch.Tensor | None = None) -> torch.Tensor:
    """``batch`` inputs: rows of ``real`` (repeated cyclically if too few), else random normal ones."""
    if real is not None and len(real):
        idx = torch.arange(batch) % len(real)
        return real[idx].to(device, torch.float32)
    first = prunable_layers(model)[0][1]
    if isinstance(first, nn.Conv2d):
        return torch.randn(batch, first.in_channels, 28, 28, device=device)
    return torch.randn(batch, first.in_features, device=device)


def _add_ratios(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if df.empty:
        return df
    base = df[df.format.isin(["dense", "dense-cuda"])].set_index(keys)["median_us"]
    csr = df[df.format.isin(["csr-torch", "csr-cuda"])].set_index(keys)["median_us"]
    idx = df.set_index(keys).index
    df["ratio_dense"] = df["median_us"].values / base.reindex(idx).values
    df["ratio_torch_csr"] = df["median_us"].values / csr.reindex(idx).values
    df["speedup_vs_dense"] = 1.0 / df["ratio_dense"]
    return df


def benchmark_model(model: nn.Module, batch_sizes: Iterable[int] = (1, 32, 256), *, device: str = "auto",
                    formats: Iterable[str] = MODEL_FORMATS, repeats: int = 30,
                    calibration: torch.Tensor | None = None) -> pd.DataFrame:
    """Whole-model latency per format x batch size, with ratios and weight bytes.

    ``calibration``: real inputs ``(N, ...)`` (e.g. test images). The dispatcher of the ``auto``
    format times activation-sparse kernels on their activations, and every format is timed on
    them; without them, random normal inputs (whose activations are not a real model's).

    Columns: batch, format, median_us, ratio_dense, ratio_torch_csr, speedup_vs_dense,
    weight_bytes, bytes_ratio, ideal_flop_ratio, ideal_bytes_ratio, note.
    """
    device = resolve_device(device)
    model = model.eval().to(device)
    layers = prunable_layers(model)
    numel = sum(m.weight.numel() for _, m in layers)
    nnz = sum(int((m.weight != 0).sum()) for _, m in layers)
    dense_bytes = numel * 4
    rows = []
    for batch in batch_sizes:
        x = _input(model, batch, device, calibration)
        for fmt in formats:
            note = ""
            try:
                if fmt == "dense":
                    fn, nbytes, note = model, dense_bytes, "torch nn.Module as is"
                else:
                    if fmt == "auto":
                        compiled = compile_model(model, batch_size=batch, device=device, calibration=calibration)
                        note = "; ".join(f"{p.name}:{p.format}" for p in compiled.plans)
                    elif fmt == "compact+dense":
                        compiled = compile_model(model, batch_size=batch, device=device, formats=("dense",), compact=True)
                    else:
                        compiled = compile_model(model, batch_size=batch, device=device, formats=(fmt,), compact=False)
                        bad = [f"{p.name}: {p.reason}" for p in compiled.plans if p.format != fmt]
                        if bad:
                            raise FormatUnavailable("; ".join(bad))
                    fn, nbytes = compiled, compiled.nbytes
                t = median_time(lambda: fn(x), repeats, cuda=device.type == "cuda")
            except FormatUnavailable as exc:
                rows.append({"batch": batch, "format": fmt, "median_us": float("nan"), "weight_bytes": float("nan"),
                             "note": f"skipped: {exc}"})
                continue
            rows.append({"batch": batch, "format": fmt, "median_us": t * 1e6, "weight_bytes": nbytes, "note": note})
    df = pd.DataFrame(rows)
    df = _add_ratios(df, ["batch"])
    df["bytes_ratio"] = df["weight_bytes"] / dense_bytes
    df["ideal_flop_ratio"] = nnz / numel
    df["ideal_bytes_ratio"] = nnz * 4 / dense_bytes
    cols = ["batch", "format", "median_us", "ratio_dense", "ratio_torch_csr", "speedup_vs_dense", "weight_bytes",
            "bytes_ratio", "ideal_flop_ratio", "ideal_bytes_ratio", "note"]
    return df[cols]


LAYER_FORMATS = ("dense", "csr-torch", "bsr-torch", "csr-native", "dense-native", "nm-native")


def benchmark_layer(weight: torch.Tensor, bias: torch.Tensor | None, batch_sizes: Iterable[int] = (1, 32, 256), *,
                    formats: Iterable[str] = LAYER_FORMATS, device: str = "cpu", repeats: int = 30,
                    threads: int = 1, layer: str = "") -> pd.DataFrame:
    """One layer's latency per format x batch size (feature-major activations, as compiled)."""
    device = resolve_device(device)
    rows = []
    numel, nnz = weight.numel(), int((weight != 0).sum())
    for batch in batch_sizes:
        x = torch.randn(weight.shape[1], batch, device=device)
        for fmt in formats:
            try:
                op = make_op(fmt, weight, bias, False, device=device, threads=threads)
            except FormatUnavailable as exc:
                rows.append({"layer": layer, "batch": batch, "format": fmt, "median_us": float("nan"),
                             "weight_bytes": float("nan"), "note": f"skipped: {exc}"})
                continue
            t = median_time(lambda: op.forward(x), repeats, cuda=device.type == "cuda")
            rows.append({"layer": layer, "batch": batch, "format": fmt, "median_us": t * 1e6,
                         "weight_bytes": op.nbytes, "note": ""})
    df = _add_ratios(pd.DataFrame(rows), ["layer", "batch"])
    df["shape"] = "x".join(map(str, weight.shape))
    df["density"] = nnz / max(1, numel)
    df["bytes_ratio"] = df["weight_bytes"] / (numel * 4)
    df["ideal_flop_ratio"] = nnz / max(1, numel)
    return df


def benchmark_layers(model: nn.Module, batch_sizes: Iterable[int] = (1, 32, 256), **kw) -> pd.DataFrame:
    """``benchmark_layer`` for every Linear layer of ``model``, concatenated."""
    frames = [benchmark_layer(m.weight.detach(), m.bias, batch_sizes, layer=name, **kw)
              for name, m in prunable_layers(model) if isinstance(m, nn.Linear)]
    return pd.concat(frames, ignore_index=True)


def random_sparse(shape: tuple[int, int], sparsity: float, seed: int = 0) -> torch.Tensor:
    """A random weight with exactly ``round(sparsity * numel)`` zeros (unstructured)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    k = int(round(sparsity * w.numel()))
    w.view(-1)[torch.randperm(w.numel(), generator=g)[:k]] = 0
    return w


def speedup_curves(shape: tuple[int, int] = (300, 784), sparsities: Iterable[float] = (0, .5, .7, .8, .9, .95, .99),
                   batch_sizes: Iterable[int] = (1, 32, 256), formats: Iterable[str] | None = None,
                   device: str = "cpu", repeats: int = 20, threads: int = 1) -> pd.DataFrame:
    """Speed-up vs dense of each format for one layer shape over a sparsity sweep.

    Columns: sparsity, batch, format, median_us, speedup_vs_dense, ratio_dense, ratio_torch_csr.
    """
    dev = resolve_device(device)
    frames = []
    for s in sparsities:
        w = random_sparse(shape, s)
        fm = tuple(formats) if formats else tuple(dict.fromkeys(("dense", "csr-torch", *default_formats(dev, 256))))
        df = benchmark_layer(w, torch.randn(shape[0]), batch_sizes, formats=fm, device=device, repeats=repeats,
                             threads=threads)
        df["sparsity"] = s
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    return out[["sparsity", "batch", "format", "median_us", "speedup_vs_dense", "ratio_dense", "ratio_torch_csr",
                "weight_bytes", "bytes_ratio"]]


def crossovers(curves: pd.DataFrame) -> pd.DataFrame:
    """Per format and batch: the lowest swept sparsity from which the format stays faster than dense."""
    rows = []
    for (fmt, batch), g in curves.groupby(["format", "batch"]):
        if fmt.startswith("dense"):
            continue
        g = g.sort_values("sparsity")
        faster = (g["speedup_vs_dense"] > 1.0).tolist()
        cross = None
        for i in range(len(faster)):
            if all(faster[i:]):
                cross = float(g["sparsity"].iloc[i])
                break
        rows.append({"format": fmt, "batch": batch, "crossover_sparsity": cross})
    return pd.DataFrame(rows)
