"""Per-layer format choice by measured crossover.

For one layer (shape, sparsity pattern, batch size, device) every applicable format
is built and timed on random feature-major activations; the fastest wins, but a
sparse format must beat dense by ``MARGIN`` or dense is kept, so a compiled layer is
never slower than dense beyond timing noise. Timings are memoised per process by
(format, device, shape, nnz, batch, threads, tile), so a slider that revisits a
sparsity costs nothing. ``policy="heuristic"`` skips timing and applies the density
thresholds measured by ``benchmarks/sparse_crossover.py`` (see docs/backend.md).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import torch

from . import kernels
from .cuda import CudaCSROp, CudaDenseOp, Semi24Op, cuda_status, semi_structured_status
from .formats import bsr_blocksize, nm_pattern
from .ops import DenseOp, LinearOp, NativeCSROp, NativeDenseOp, NativeNMOp, TorchBSROp, TorchCSROp

CPU_FORMATS = ("dense", "dense-native", "csr-torch", "bsr-torch", "csr-native", "nm-native")
CUDA_FORMATS = ("dense-cuda", "csr-cuda", "2:4-cuda")
ALL_FORMATS = CPU_FORMATS + CUDA_FORMATS
POLICIES = ("measure", "heuristic")
MARGIN = 0.97  # a sparse format must take < 97 % of dense time to replace dense
SMALL_BATCH = 16  # below this the one-sample kernel path dominates

# density below which the native CSR kernel beats dense (heuristic policy; measured on
# the 2-core dev machine, see docs/backend.md): batch >= 16 / batch < 16
HEURISTIC_DENSITY = {"large": 0.30, "small": 0.15}

TORCH_CSR_DENSITY = 0.10  # torch CSR (no native kernel) needs this much sparsity to win

_TIMINGS: dict[tuple, float] = {}


class FormatUnavailable(ValueError):
    """This format cannot encode or run this layer here; the message says why."""


@dataclass
class Choice:
    """The format picked for one layer, the timings behind it and a one-line reason."""

    op: LinearOp
    format: str
    reason: str
    times_us: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def make_op(fmt: str, weight: torch.Tensor, bias: torch.Tensor | None, relu: bool = False, *,
            device: torch.device | str = "cpu", threads: int = 1, tile: int = 64,
            force_fallback: bool = False) -> LinearOp:
    """Build the operator for ``fmt`` or raise ``FormatUnavailable`` with the reason."""
    device = torch.device(device)
    w = weight.detach().float()
    if w.numel() == 0 and fmt not in ("dense", "dense-cuda"):
        raise FormatUnavailable("empty layer (all neurons compacted away)")
    if fmt in CUDA_FORMATS:
        ok, why = cuda_status()
        if not ok:
            raise FormatUnavailable(why)
        if fmt == "dense-cuda":
            return CudaDenseOp(w, bias, relu, device=device)
        if fmt == "csr-cuda":
            return CudaCSROp(w, bias, relu, device=device)
        ok, why = semi_structured_status(w)
        if not ok:
            raise FormatUnavailable(why)
        return Semi24Op(w, bias, relu, device=device)
    if device.type != "cpu":
        raise FormatUnavailable(f"{fmt} runs on CPU only")
    w = w.cpu()
    if fmt == "dense":
        return DenseOp(w, bias, relu)
    if fmt == "csr-torch":
        return TorchCSROp(w, bias, relu)
    if fmt == "bsr-torch":
        bs = bsr_blocksize(tuple(w.shape))
        if bs is None:
            raise FormatUnavailable(f"no square block of 8/4/2 divides {tuple(w.shape)}")
        return TorchBSROp(w, bias, relu, bs)
    if fmt in ("csr-native", "dense-native", "nm-native"):
        if not kernels.available(force_fallback):
            raise FormatUnavailable(kernels.notice() or "native kernels disabled")
        if fmt == "csr-native":
            return NativeCSROp(w, bias, relu, threads, tile)
        if fmt == "dense-native":
            return NativeDenseOp(w, bias, relu, threads, tile)
        pat = nm_pattern(w)
        if pat is None:
            raise FormatUnavailable("the mask is not N:M (1:4, 2:4, 2:8, 4:8)")
        return NativeNMOp(w, bias, relu, threads, tile, *pat)
    raise FormatUnavailable(f"unknown format {fmt!r}; known: {', '.join(ALL_FORMATS)}")


def time_op(op: LinearOp, batch: int, device: torch.device | str = "cpu", repeats: int = 15,
            budget_s: float = 0.02, stat: str = "min") -> float:
    """Seconds of ``op.forward`` on random (in, batch) activations: best of ``repeats``
    (``stat="min"``, robust to stalls from other processes on a shared machine) or median."""
    x = torch.randn(op.in_features, max(1, batch), device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(3):
        op.forward(x)
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 5 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        op.forward(x)
        sync()
        times.append(time.perf_counter() - t0)
    return min(times) if stat == "min" else statistics.median(times)


def _key(op: LinearOp, fmt: str, batch: int, device) -> tuple:
    return (fmt, str(device), op.shape, op.nnz, batch, getattr(op, "threads", 0), getattr(op, "tile", 0),
            torch.get_num_threads(), op.relu)


def measured_time(op: LinearOp, fmt: str, batch: int, device, repeats: int = 15) -> float:
    """``time_op`` memoised per process."""
    key = _key(op, fmt, batch, device)
    if key not in _TIMINGS:
        _TIMINGS[key] = time_op(op, batch, device, repeats)
    return _TIMINGS[key]


def clear_timings() -> None:
    """Forget memoised timings (e.g. after changing the thread count)."""
    _TIMINGS.clear()


def default_formats(device: torch.device, batch: int) -> tuple[str, ...]:
    """Candidate formats for a device and batch size."""
    if device.type == "cuda":
        return CUDA_FORMATS
    if batch < SMALL_BATCH:
        return ("dense", "dense-native", "csr-torch", "csr-native", "nm-native")
    return ("dense", "csr-torch", "bsr-torch", "csr-native", "nm-native")


def _variants(fmt: str, batch: int) -> list[dict]:
    """Thread / tile settings worth timing for a native format."""
    if fmt not in ("csr-native", "dense-native", "nm-native"):
        return [{}]
    threads = sorted({1, torch.get_num_threads()})
    tiles = [64, 32] if batch >= 32 else [64]
    return [{"threads": t, "tile": tl} for t in threads for tl in tiles]


def choose(weight: torch.Tensor, bias: torch.Tensor | None, relu: bool, *, batch: int,
           device: torch.device | str = "cpu", policy: str = "measure", formats: tuple[str, ...] | None = None,
           force_fallback: bool = False, repeats: int = 15) -> Choice:
    """Pick the format for one layer: measured, heuristic, or the only one allowed."""
    if policy not in POLICIES:
        raise ValueError(f"Unknown policy {policy!r}; choose one of {', '.join(POLICIES)}.")
    device = torch.device(device)
    dense_fmt = "dense-cuda" if device.type == "cuda" else "dense"
    density = float((weight != 0).float().mean()) if weight.numel() else 0.0
    cands = tuple(formats) if formats else default_formats(device, batch)
    skipped: dict[str, str] = {}

    def build(fmt: str, **kw) -> LinearOp | None:
        try:
            return make_op(fmt, weight, bias, relu, device=device, force_fallback=force_fallback, **kw)
        except FormatUnavailable as exc:
            skipped[fmt] = str(exc)
            return None

    if formats and len(cands) == 1:  # forced
        op = build(cands[0])
        if op is not None:
            return Choice(op, cands[0], f"forced {cands[0]}", skipped=skipped)
        return Choice(make_op(dense_fmt, weight, bias, relu, device=device), dense_fmt,
                      f"{cands[0]} unavailable ({skipped[cands[0]]}); dense", skipped=skipped)

    if policy == "heuristic":
        limit = HEURISTIC_DENSITY["small" if batch < SMALL_BATCH else "large"]
        order = ["csr-native", "csr-cuda"] if density <= limit else []
        order += ["csr-torch"] if density <= TORCH_CSR_DENSITY else []
        for fmt in order:
            if fmt in cands:
                op = build(fmt, threads=1)
                if op is not None:
                    return Choice(op, fmt, f"heuristic: density {density:.1%} <= {limit:.0%}", skipped=skipped)
        return Choice(make_op(dense_fmt, weight, bias, relu, device=device), dense_fmt,
                      f"heuristic: density {density:.1%} > {limit:.0%} (or no sparse kernel)", skipped=skipped)

    times: dict[str, float] = {}
    best: dict[str, tuple[float, LinearOp]] = {}
    for fmt in dict.fromkeys((dense_fmt, *cands)):
        for kw in _variants(fmt, batch):
            op = build(fmt, **kw)
            if op is None:
                break
            t = measured_time(op, fmt, batch, device, repeats)
            label = fmt + (f"[t{kw['threads']},w{kw['tile']}]" if kw else "")
            times[label] = t * 1e6
            if fmt not in best or t < best[fmt][0]:
                best[fmt] = (t, op)
    t_dense = best[dense_fmt][0]
    fmt, (t, op) = min(best.items(), key=lambda kv: kv[1][0])
    if fmt != dense_fmt and t >= MARGIN * t_dense:
        fmt, (t, op) = dense_fmt, best[dense_fmt]
        reason = f"no format beat dense by {1 - MARGIN:.0%} at batch {batch}, density {density:.1%}"
    elif fmt == dense_fmt:
        reason = f"dense fastest at batch {batch}, density {density:.1%}"
    else:
        reason = f"{t / t_dense:.2f}x dense time ({t * 1e6:.1f} vs {t_dense * 1e6:.1f} us) at batch {batch}, density {density:.1%}"
    return Choice(op, fmt, reason, times, skipped)
