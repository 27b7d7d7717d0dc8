"""Measurement: latency per format x batch size as tidy DataFrames, and crossover curves.

All timings are medians of ``repeats`` runs after warm-up, every format measured in
the same process and run, so ratios to dense torch and to torch.sparse CSR are
like-for-like. Ideal ratios are what a perfect sparse kernel would reach: the FLOP
ratio is nnz / numel, the byte ratio nnz * 4 / dense bytes (values only).
"""

from __future__ import annotations

import copy
import math
import random
import statistics
import time
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..devices import resolve_device
from ..models import prunable_layers
from . import conv_sparse, int8
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
NAN = float("nan")
STABLE_IQR = 0.05  # a ratio is stable when its interquartile range lies within +-5 % of its median
TIME_CAP_S = 10.0  # default cap on the rounds of one ``interleaved_ratios`` call


def _burst(fn: Callable[[], object], sync: Callable[[], None], target_s: float) -> int:
    """Calls per timed burst so that one burst takes about ``target_s`` (1 for slow calls)."""
    t0 = time.perf_counter()
    fn()
    sync()
    return max(1, min(1000, int(target_s / max(time.perf_counter() - t0, 1e-7))))


def _quartiles(v: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(v, n=4, method="inclusive") if len(v) > 1 else [v[0]] * 3
    return q[0], q[1], q[2]


def round_order(names: list[str], r: int) -> list[str]:
    """The order of round ``r`` of an interleaved timing: ``names`` shuffled by a generator seeded with ``r``.

    A contender's burst is slowed by what ran just before it (its caches and predictors left full of the
    other's data, and on a loaded machine a 2-thread call's OpenMP worker still spinning: LeNet-300-100's
    compiled call read 0.155x dense right after dense and 0.131-0.143x elsewhere). Rotating one fixed order
    gives every contender the same predecessor in every round; shuffling gives each one every predecessor
    about equally often (and ``interleaved_ratios`` warms each burst up with one untimed call).
    """
    order = list(names)
    random.Random(r).shuffle(order)
    return order


def interleaved_ratios(fns: dict[str, Callable[[], object]], reference: str, *, rounds: int = 7,
                       rel_iqr: float | None = STABLE_IQR, time_cap_s: float = TIME_CAP_S, cuda: bool = False,
                       target_s: float = 1e-3) -> dict[str, dict]:
    """Time every function in round-robin rounds and take each one's ratio to ``reference`` round by round.

    Every round times each function once (a burst of calls of about ``target_s``, in an order
    shuffled per round: ``round_order``), so a load change hits all alike and each round gives one ratio per function.
    A burst starts with one untimed call, so a function is timed on its own working set in cache, as in a stream
    of calls, not on what the function before it left there (the first call of LeNet-300-100's one-call chain
    at batch 1,024 right after the dense model took 1.19-1.20x a warm call, on 1 and on 2 threads). After
    ``rounds`` rounds it goes on, while the interquartile range of some ratio is not within
    ``±rel_iqr`` of its median, until ``time_cap_s``: never fewer than ``rounds`` rounds (and 3: an
    interquartile range of fewer says nothing; the cap stopped
    "21 rounds" at 7 for a slow layer while scripts reported medians of 21, an audit), and no round starts
    once the cap has passed with ``rounds`` done. ``rel_iqr=None``: exactly ``rounds`` rounds, no cap.

    Returns per name: ``median_s`` (seconds per call), ``ratio`` (median of the per-round ratios),
    ``ratio_q25``, ``ratio_q75``, ``rounds``, ``stable`` (the interval is within ``±rel_iqr``; always
    True for the reference), ``capped`` (the time cap stopped the rounds while this ratio was not stable; the
    reference and settled ratios are never capped: they had read "stopped by the time cap" beside "within ±5 %") and
    ``round_s`` (seconds per call in each round, for ratios to another contender: ``ratio_between``).
    """
    if reference not in fns:
        raise ValueError(f"The reference {reference!r} is not among the functions timed ({', '.join(fns)}).")
    if rounds < 1 or time_cap_s <= 0 or (rel_iqr is not None and rel_iqr <= 0):
        raise ValueError("rounds must be >= 1, time_cap_s > 0 and rel_iqr > 0 (or None).")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    names = list(fns)
    times: dict[str, list[float]] = {k: [] for k in names}
    start = time.perf_counter()

    def unstable() -> bool:
        return any(not _within(_ratios(times, k, reference), rel_iqr) for k in names if k != reference)

    with torch.no_grad():
        bursts = {k: _burst(fns[k], sync, target_s) for k in names}  # also the warm-up
        need = rounds if rel_iqr is None else max(rounds, 3)
        r = 0
        while True:
            for k in round_order(names, r):
                fn, n = fns[k], bursts[k]
                fn()  # untimed: this burst's working set into the cache
                sync()
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                sync()
                times[k].append((time.perf_counter() - t0) / n)
            r += 1
            if r < need:
                continue
            if rel_iqr is None or not unstable():
                capped = False
                break
            if time.perf_counter() - start > time_cap_s:  # still unsettled: say so
                capped = True
                break
    out = {}
    for k in names:
        ratios = _ratios(times, k, reference)
        q25, med, q75 = _quartiles(ratios)
        stable = k == reference or _within(ratios, rel_iqr or STABLE_IQR)
        out[k] = {"median_s": statistics.median(times[k]), "ratio": med, "ratio_q25": q25, "ratio_q75": q75,
                  "rounds": len(ratios), "stable": stable, "capped": capped and not stable, "round_s": list(times[k])}
    return out


def ratio_between(timings: dict[str, dict], name: str, reference: str) -> float:
    """The median of the per-round ratios ``name / reference`` from one ``interleaved_ratios`` result."""
    return _quartiles(_ratios({k: v["round_s"] for k, v in timings.items()}, name, reference))[1]


def _ratios(times: dict[str, list[float]], name: str, reference: str) -> list[float]:
    return [t / ref for t, ref in zip(times[name], times[reference])]


def _within(ratios: list[float], rel_iqr: float) -> bool:
    """The interquartile range of ``ratios`` lies within ``±rel_iqr`` of their median."""
    q25, med, q75 = _quartiles(ratios)
    return q75 <= med * (1 + rel_iqr) and q25 >= med * (1 - rel_iqr)


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
    for col, default in (("median_us", NAN), ("ratio_q25", NAN), ("ratio_q75", NAN), ("rounds", 0),
                         ("stable", False), ("capped", False)):  # rows of skipped formats have no timing
        df[col] = df[col].fillna(default).infer_objects() if col in df else default
    idx = df.set_index(keys).index

    def timed(name: str) -> np.ndarray:  # (rows,) format ``name``'s median at each row's keys, NaN where not timed
        return df[df.format == name].set_index(keys)["median_us"].reindex(idx).to_numpy(dtype=float)

    # a CUDA format against its GPU reference where one was timed, the rest against the CPU's: both references in
    # one table had given every key two base rows, and pandas refused to reindex on them (an audit)
    on_cuda = df["format"].str.endswith("-cuda").to_numpy()
    base = np.where(on_cuda & ~np.isnan(timed("dense-cuda")), timed("dense-cuda"), timed("dense"))
    csr = np.where(on_cuda & ~np.isnan(timed("csr-cuda")), timed("csr-cuda"), timed("csr-torch"))
    of_medians = df["median_us"].values / base
    # the median of the per-round ratios where the formats were timed interleaved, else the ratio of medians
    df["ratio_dense"] = df["ratio_dense"].fillna(pd.Series(of_medians, index=df.index)) if "ratio_dense" in df \
        else of_medians
    df["ratio_torch_csr"] = df["median_us"].values / csr
    df["speedup_vs_dense"] = 1.0 / df["ratio_dense"]
    return df


def benchmark_model(model: nn.Module, batch_sizes: Iterable[int] = (1, 32, 256), *, device: str = "auto",
                    formats: Iterable[str] = MODEL_FORMATS, repeats: int = 30,
                    calibration: torch.Tensor | None = None, rel_iqr: float | None = None,
                    time_cap_s: float = TIME_CAP_S) -> pd.DataFrame:
    """Whole-model latency per format x batch size, with ratios and weight bytes.

    ``calibration``: real inputs ``(N, ...)`` (e.g. test images). The dispatcher of the ``auto``
    format times activation-sparse kernels on their activations, and every format is timed on
    them; without them, random normal inputs (whose activations are not a real model's).

    The formats of one batch size are timed interleaved (``interleaved_ratios``, ``repeats``
    rounds; with ``rel_iqr`` more, until every ratio to dense is stable or ``time_cap_s``), the int8
    formats (``int8.INT8_FORMATS``, CPU MLPs) among them. Every format's output is checked against the
    model's before it is timed (``output_problem``); one that differs is skipped and says by how much.

    Columns: batch, format, median_us, ratio_dense, ratio_q25, ratio_q75, rounds, stable, capped,
    ratio_torch_csr, speedup_vs_dense, weight_bytes, bytes_ratio, ideal_flop_ratio,
    ideal_bytes_ratio, note.
    """
    device = resolve_device(device)
    model = copy.deepcopy(model).eval().to(device)  # the caller's model keeps its mode and device
    layers = prunable_layers(model)
    numel = sum(m.weight.numel() for _, m in layers)
    nnz = sum(int((m.weight != 0).sum()) for _, m in layers)
    dense_bytes = numel * 4
    rows = []
    for batch in batch_sizes:
        x = _input(model, batch, device, calibration)
        with torch.no_grad():
            want = model(x)
        fns, meta = {}, {}
        for fmt in formats:
            note = ""
            try:
                if fmt == "dense":
                    fn, nbytes, note = model, dense_bytes, "torch nn.Module as is"
                elif fmt in int8.INT8_FORMATS:
                    fn, nbytes, note = _int8_contender(model, fmt, device)
                else:
                    if fmt == "auto":
                        compiled = compile_model(model, batch_size=batch, device=device, calibration=calibration)
                        note = "; ".join(f"{p.name}:{p.format}" for p in compiled.plans)
                    elif fmt == "compact+dense":  # every format gets the real inputs: a guess of 28x28 images failed
                        compiled = compile_model(model, batch_size=batch, device=device, formats=("dense",),
                                                 compact=True, calibration=calibration)  # an 8x8 conv model (audit)
                    else:
                        compiled = compile_model(model, batch_size=batch, device=device, formats=(fmt,), compact=False,
                                                 calibration=calibration)
                        # a conv layer runs the format on its im2col matrix: lenet5's CSR rows read "skipped:
                        # forced im2col-csr-torch" though the format ran (an audit)
                        bad = [f"{p.name}: {p.reason}" for p in compiled.plans
                               if p.format not in (fmt, conv_sparse.im2col_format(fmt))]
                        if bad:
                            raise FormatUnavailable("; ".join(bad))
                    fn, nbytes = compiled, compiled.nbytes
                if fmt != "dense":
                    with torch.no_grad():
                        problem = output_problem(fn(x), want, approximate=fmt in int8.INT8_FORMATS)
                    if problem:
                        raise FormatUnavailable(f"not timed: {problem}")
            except FormatUnavailable as exc:
                meta[fmt] = (float("nan"), f"skipped: {exc}")
                continue
            fns[fmt] = (lambda f: lambda: f(x))(fn)
            meta[fmt] = (nbytes, note)
        timed = _time_all(fns, repeats, rel_iqr, time_cap_s, device.type == "cuda")
        for fmt in formats:
            nbytes, note = meta[fmt]
            rows.append({"batch": batch, "format": fmt, "weight_bytes": nbytes, "note": note, **timed.get(fmt, {})})
    df = pd.DataFrame(rows)
    df = _add_ratios(df, ["batch"])
    df["bytes_ratio"] = df["weight_bytes"] / dense_bytes
    df["ideal_flop_ratio"] = nnz / numel
    df["ideal_bytes_ratio"] = nnz * 4 / dense_bytes
    cols = ["batch", "format", "median_us", "ratio_dense", "ratio_q25", "ratio_q75", "rounds", "stable", "capped",
            "ratio_torch_csr", "speedup_vs_dense", "weight_bytes", "bytes_ratio", "ideal_flop_ratio",
            "ideal_bytes_ratio", "note"]
    return df[cols]


def _int8_contender(model: nn.Module, fmt: str, device: torch.device):
    """An int8 format's ``(runner, bytes, note)``; ``FormatUnavailable`` with the reason it cannot run here."""
    if device.type != "cpu":
        raise FormatUnavailable("the int8 kernels run on the CPU only")
    try:
        return int8.int8_contender(model, fmt)
    except (ValueError, RuntimeError) as exc:
        raise FormatUnavailable(str(exc)) from None


REFERENCE_FORMATS = ("dense", "dense-cuda")  # what every ratio divides by (dense-native is a contender)
INT8_TOLERANCE = 0.1  # of the reference's largest |logit|: 8-bit weights (and inputs, for dynamic) move logits


def output_problem(got: torch.Tensor, want: torch.Tensor, approximate: bool = False) -> str:
    """Why ``got`` is not the model's output ``want`` (""): the shape, or the largest difference beyond 1e-3 of the
    largest |logit| (``INT8_TOLERANCE`` of it for an ``approximate`` format: 8-bit or fp16)."""
    if tuple(got.shape) != tuple(want.shape):
        return f"its output has shape {tuple(got.shape)}, the model's {tuple(want.shape)}"
    if not want.numel():
        return ""
    scale = float(want.abs().max()) if bool(torch.isfinite(want).all()) else 1.0
    err = float((got.float() - want.float()).abs().nan_to_num(nan=math.inf).max())
    limit = (INT8_TOLERANCE if approximate else 1e-3) * max(scale, 1.0)
    return "" if err <= limit else f"its output differs from the model's by up to {err:.3g} (limit {limit:.3g})"


def _time_all(fns: dict[str, Callable[[], object]], repeats: int, rel_iqr: float | None, time_cap_s: float,
              cuda: bool) -> dict[str, dict]:
    """Per name: median_us and the interval of its ratio to ``dense`` (NaN without a dense contender)."""
    ref = next((k for k in REFERENCE_FORMATS if k in fns), None)
    if not fns:
        return {}
    res = interleaved_ratios(fns, ref or next(iter(fns)), rounds=max(1, repeats), rel_iqr=rel_iqr if ref else None,
                             time_cap_s=time_cap_s, cuda=cuda)
    nan = float("nan")
    return {k: {"median_us": v["median_s"] * 1e6, "ratio_dense": v["ratio"] if ref else nan,
                "ratio_q25": v["ratio_q25"] if ref else nan,
                "ratio_q75": v["ratio_q75"] if ref else nan, "rounds": v["rounds"],
                "stable": bool(v["stable"]) if ref else False, "capped": bool(v["capped"])} for k, v in res.items()}


LAYER_FORMATS = ("dense", "csr-torch", "bsr-torch", "csr-native", "dense-native", "nm-native")


def benchmark_layer(weight: torch.Tensor, bias: torch.Tensor | None, batch_sizes: Iterable[int] = (1, 32, 256), *,
                    formats: Iterable[str] = LAYER_FORMATS, device: str = "cpu", repeats: int = 30,
                    threads: int = 1, layer: str = "", rel_iqr: float | None = None,
                    time_cap_s: float = TIME_CAP_S) -> pd.DataFrame:
    """One layer's latency per format x batch size (feature-major activations, as compiled).

    The formats of one batch size are timed interleaved, as in ``benchmark_model``, each after its output is
    checked against ``weight @ x + bias`` (``output_problem``; they were timed unchecked, an audit).
    """
    device = resolve_device(device)
    rows = []
    numel, nnz = weight.numel(), int((weight != 0).sum())
    for batch in batch_sizes:
        x = torch.randn(weight.shape[1], batch, device=device)
        w = weight.to(device, torch.float32)
        want = w @ x + (bias.to(device, torch.float32)[:, None] if bias is not None else 0.0)  # (out, B)
        fns, meta = {}, {}
        for fmt in formats:
            try:
                op = make_op(fmt, weight, bias, False, device=device, threads=threads)
                with torch.no_grad():
                    problem = output_problem(op.forward(x).float(), want, approximate=fmt == "2:4-cuda")  # fp16
                if problem:
                    raise FormatUnavailable(f"not timed: {problem}")
            except FormatUnavailable as exc:
                meta[fmt] = (float("nan"), f"skipped: {exc}")
                continue
            fns[fmt] = (lambda o: lambda: o.forward(x))(op)
            meta[fmt] = (op.nbytes, "")
        timed = _time_all(fns, repeats, rel_iqr, time_cap_s, device.type == "cuda")
        for fmt in formats:
            rows.append({"layer": layer, "batch": batch, "format": fmt, "weight_bytes": meta[fmt][0],
                         "note": meta[fmt][1], **timed.get(fmt, {})})
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
                   device: str = "cpu", repeats: int = 20, threads: int = 1, rel_iqr: float | None = None,
                   time_cap_s: float = TIME_CAP_S) -> pd.DataFrame:
    """Speed-up vs dense of each format for one layer shape over a sparsity sweep (``benchmark_layer`` per level).

    Columns: sparsity, batch, format, median_us, speedup_vs_dense, ratio_dense, ratio_q25, ratio_q75,
    rounds, stable, capped, ratio_torch_csr, weight_bytes, bytes_ratio.
    """
    dev = resolve_device(device)
    frames = []
    for s in sparsities:
        w = random_sparse(shape, s)
        fm = tuple(formats) if formats else tuple(dict.fromkeys(("dense", "csr-torch", *default_formats(dev, 256))))
        df = benchmark_layer(w, torch.randn(shape[0]), batch_sizes, formats=fm, device=device, repeats=repeats,
                             threads=threads, rel_iqr=rel_iqr, time_cap_s=time_cap_s)
        df["sparsity"] = s
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    return out[["sparsity", "batch", "format", "median_us", "speedup_vs_dense", "ratio_dense", "ratio_q25", "ratio_q75",
                "rounds", "stable", "capped", "ratio_torch_csr", "weight_bytes", "bytes_ratio"]]


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
