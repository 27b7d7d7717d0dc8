"""Per-layer format choice by measured crossover.

For one layer (shape, sparsity pattern, batch size, device) every applicable format
is built and timed on random feature-major activations; the fastest wins, but a
sparse format must beat dense by ``MARGIN`` or dense is kept, so a compiled layer is
never slower than dense beyond timing noise. Timings are memoised per process by
(format, device, shape, nnz, batch, threads, tile, mode, input zero-share bucket), so a
slider that revisits a sparsity costs nothing. ``policy="heuristic"`` skips timing and
applies the density thresholds measured by ``benchmarks/sparse_crossover.py`` (see
docs/backend.md).

Activation-sparse formats (``act_sparse.ACT_FORMATS``, batches <= ``SMALL_BATCH``) skip zero
inputs, so random activations would always make them lose: ``choose`` takes the layer's real
input activations (``example``, feature-major ``(in, N)``), times every format on slices of
them, and the memo key holds the input zero share (5 % buckets). Without an example they
are skipped (reason given). The heuristic policy never picks them.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import torch

from . import act_sparse, kernels
from .cuda import CudaCSROp, CudaDenseOp, Semi24Op, cuda_status, semi_structured_status
from .formats import bsr_blocksize, nm_pattern
from .ops import DenseOp, LinearOp, NativeCSROp, NativeDenseOp, NativeNMOp, TorchBSROp, TorchCSROp

CPU_FORMATS = ("dense", "dense-native", "csr-torch", "bsr-torch", "csr-native", "nm-native", *act_sparse.ACT_FORMATS)
CUDA_FORMATS = ("dense-cuda", "csr-cuda", "2:4-cuda")
ALL_FORMATS = CPU_FORMATS + CUDA_FORMATS
POLICIES = ("measure", "heuristic")
MARGIN = 0.97  # a sparse format must take < 97 % of dense time to replace dense
THREAD_GAIN = 0.8  # a native variant on N > 1 threads must take < 80 % of its 1-thread time to be chosen
# ... and its format's 1-thread time must be at least this: splitting LeNet-300-100's first layer at batch 32 (~20 us
# on one thread, ~15 us timed alone on two) made whole calls slower in interleaved runs (docs/backend.md "Threads
# under load"; a 2-thread call leaves costs its own timer does not see), while the 2048-wide layers at batch 8
# (~90-170 us) and LeNet's second layer at batch 256 (~47 us) gained from two threads
MIN_PARALLEL_US = 30.0
SMALL_BATCH = 16  # below this the one-sample kernel path dominates; activation-sparse formats up to it
EXAMPLE_SLICES = 8  # slices of the example activations per timed run (one representative mix)

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
    input_zero_share: float | None = None  # of the example activations it was timed on
    single: LinearOp | None = None  # the fastest native 1-thread variant of any format, when ``op`` runs on more threads


def make_op(fmt: str, weight: torch.Tensor, bias: torch.Tensor | None, relu: bool = False, *,
            device: torch.device | str = "cpu", threads: int = 1, tile: int = 64,
            force_fallback: bool = False, mode: str = "sample") -> LinearOp:
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
    if fmt in act_sparse.ACT_FORMATS:
        why = act_sparse.unavailable_reason(force_fallback)
        if why is not None:
            raise FormatUnavailable(why)
        return act_sparse.act_op(fmt, w, bias, relu, mode)
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


def example_slices(example: torch.Tensor, batch: int, slices: int = EXAMPLE_SLICES) -> list[torch.Tensor]:
    """Up to ``slices`` contiguous ``(in, batch)`` column blocks of ``example`` ``(in, N)`` (repeated if N < batch)."""
    if example.dim() != 2 or example.shape[1] == 0:
        raise ValueError(f"example activations must be (in, N) with N >= 1, got {tuple(example.shape)}")
    batch = max(1, batch)
    if example.shape[1] < batch:
        example = example.repeat(1, -(-batch // example.shape[1]))
    n = max(1, min(slices, example.shape[1] // batch))
    return [example[:, k * batch:(k + 1) * batch].contiguous() for k in range(n)]


def time_op(op: LinearOp, batch: int, device: torch.device | str = "cpu", repeats: int = 15,
            budget_s: float = 0.02, stat: str = "min", example: torch.Tensor | None = None) -> float:
    """Seconds of ``op.forward`` on (in, batch) activations: best of ``repeats``
    (``stat="min"``, robust to stalls from other processes on a shared machine) or median.

    Random activations, or with ``example`` (in, N) the mean over up to ``EXAMPLE_SLICES``
    column slices of it per timed run (what matters for formats that skip zero inputs).
    """
    if example is None:
        xs = [torch.randn(op.in_features, max(1, batch), device=device)]
    else:
        xs = [x.to(device) for x in example_slices(example, batch)]
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(3 if len(xs) == 1 else 1):
        for x in xs:
            op.forward(x)
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 5 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        for x in xs:
            op.forward(x)
        sync()
        times.append((time.perf_counter() - t0) / len(xs))
    return min(times) if stat == "min" else statistics.median(times)


def _key(op: LinearOp, fmt: str, batch: int, device, zero_bucket: float | None = None) -> tuple:
    return (fmt, str(device), op.shape, op.nnz, batch, getattr(op, "threads", 0), getattr(op, "tile", 0),
            getattr(op, "mode", None), torch.get_num_threads(), op.relu, zero_bucket)


def measured_time(op: LinearOp, fmt: str, batch: int, device, repeats: int = 15,
                  example: torch.Tensor | None = None) -> float:
    """``time_op`` memoised per process; with ``example`` the key holds its zero-share bucket."""
    bucket = act_sparse.zero_bucket(act_sparse.zero_share(example)) if example is not None else None
    key = _key(op, fmt, batch, device, bucket)
    if key not in _TIMINGS:
        _TIMINGS[key] = time_op(op, batch, device, repeats, example=example)
    return _TIMINGS[key]


def clear_timings() -> None:
    """Forget memoised timings (e.g. after changing the thread count)."""
    _TIMINGS.clear()


def default_formats(device: torch.device, batch: int) -> tuple[str, ...]:
    """Candidate formats for a device and batch size."""
    if device.type == "cuda":
        return CUDA_FORMATS
    act = act_sparse.ACT_FORMATS if batch <= SMALL_BATCH else ()
    if batch < SMALL_BATCH:
        return ("dense", "dense-native", "csr-torch", "csr-native", "nm-native", *act)
    return ("dense", "csr-torch", "bsr-torch", "csr-native", "nm-native", *act)


def _variants(fmt: str, batch: int) -> list[dict]:
    """Thread / tile settings worth timing for a native format; per-sample / union for activation-sparse ones."""
    if fmt in act_sparse.ACT_FORMATS:
        return [{"mode": "sample"}] + ([{"mode": "union"}] if 1 < batch <= act_sparse.LANES else [])
    if fmt not in ("csr-native", "dense-native", "nm-native"):
        return [{}]
    threads = sorted({1, torch.get_num_threads()})
    tiles = [64, 32] if batch >= 32 else [64]
    return [{"threads": t, "tile": tl} for t in threads for tl in tiles]


def choose(weight: torch.Tensor, bias: torch.Tensor | None, relu: bool, *, batch: int,
           device: torch.device | str = "cpu", policy: str = "measure", formats: tuple[str, ...] | None = None,
           force_fallback: bool = False, repeats: int = 15, example: torch.Tensor | None = None) -> Choice:
    """Pick the format for one layer: measured, heuristic, or the only one allowed.

    ``example``: the layer's real input activations, feature-major ``(in, N)``; every format
    is then timed on slices of it and its zero share is reported (``Choice.input_zero_share``).
    """
    if policy not in POLICIES:
        raise ValueError(f"Unknown policy {policy!r}; choose one of {', '.join(POLICIES)}.")
    device = torch.device(device)
    dense_fmt = "dense-cuda" if device.type == "cuda" else "dense"
    density = float((weight != 0).float().mean()) if weight.numel() else 0.0
    cands = tuple(formats) if formats else default_formats(device, batch)
    skipped: dict[str, str] = {}
    if example is not None and (example.dim() != 2 or example.shape[0] != weight.shape[1]):
        raise ValueError(f"example activations must be (in={weight.shape[1]}, N), got {tuple(example.shape)}")
    zshare = act_sparse.zero_share(example) if example is not None else None
    if example is None and not formats:
        for fmt in act_sparse.ACT_FORMATS:
            if fmt in cands:
                skipped[fmt] = "no example input activations to time it on (random inputs have no zeros)"
        cands = tuple(f for f in cands if f not in act_sparse.ACT_FORMATS)

    def build(fmt: str, **kw) -> LinearOp | None:
        try:
            return make_op(fmt, weight, bias, relu, device=device, force_fallback=force_fallback, **kw)
        except FormatUnavailable as exc:
            skipped[fmt] = str(exc)
            return None

    if formats and len(cands) == 1:  # forced
        op = build(cands[0])
        if op is not None:
            return Choice(op, cands[0], f"forced {cands[0]}", skipped=skipped, input_zero_share=zshare)
        return Choice(make_op(dense_fmt, weight, bias, relu, device=device), dense_fmt,
                      f"{cands[0]} unavailable ({skipped[cands[0]]}); dense", skipped=skipped, input_zero_share=zshare)

    if policy == "heuristic":
        limit = HEURISTIC_DENSITY["small" if batch < SMALL_BATCH else "large"]
        order = ["csr-native", "csr-cuda"] if density <= limit else []
        order += ["csr-torch"] if density <= TORCH_CSR_DENSITY else []
        for fmt in order:
            if fmt in cands:
                op = build(fmt, threads=1)
                if op is not None:
                    return Choice(op, fmt, f"heuristic: density {density:.1%} <= {limit:.0%}", skipped=skipped,
                                  input_zero_share=zshare)
        return Choice(make_op(dense_fmt, weight, bias, relu, device=device), dense_fmt,
                      f"heuristic: density {density:.1%} > {limit:.0%} (or no sparse kernel)", skipped=skipped,
                      input_zero_share=zshare)

    times: dict[str, float] = {}
    best: dict[str, tuple[float, LinearOp]] = {}
    single: dict[str, tuple[float, LinearOp]] = {}  # each format's fastest 1-thread variant (time, op)
    ranked: dict[str, float] = {}  # the time each format's best variant is ranked by (threads penalised)
    for fmt in dict.fromkeys((dense_fmt, *cands)):
        first = None  # a native format's thread / tile variants share the first one's encoded weights
        for kw in _variants(fmt, batch):
            op = first.variant(**kw) if first is not None and "threads" in kw else build(fmt, **kw)
            if op is None:
                break
            if first is None:
                first = op
            t = measured_time(op, fmt, batch, device, repeats, example)
            label = fmt + _variant_label(kw)
            times[label] = t * 1e6
            # extra threads must pay clearly: on a loaded machine a parallel region waits at its barrier
            rank = t / THREAD_GAIN if kw.get("threads", 1) > 1 else t
            if kw.get("threads", 1) > 1 and fmt in single and single[fmt][0] * 1e6 < MIN_PARALLEL_US:
                rank = float("inf")  # too short to split (timed and listed all the same)
            if fmt not in best or rank < ranked[fmt]:
                best[fmt], ranked[fmt] = (t, op), rank
            if kw.get("threads", 1) == 1 and (fmt not in single or t < single[fmt][0]):
                single[fmt] = (t, op)
    t_dense = best[dense_fmt][0]
    fmt, (t, op) = min(best.items(), key=lambda kv: kv[1][0])
    where = f"batch {batch}, density {density:.1%}" + (f", input zeros {zshare:.0%}" if zshare is not None else "")
    if fmt != dense_fmt and t >= MARGIN * t_dense:
        fmt, (t, op) = dense_fmt, best[dense_fmt]
        reason = f"no format beat dense by {1 - MARGIN:.0%} at {where}"
    elif fmt == dense_fmt:
        reason = f"dense fastest at {where}"
    else:
        mode = f" ({op.mode})" if getattr(op, "uses_input_sparsity", False) and batch > 1 else ""
        reason = f"{t / t_dense:.2f}x dense time{mode} ({t * 1e6:.1f} vs {t_dense * 1e6:.1f} us) at {where}"
    one = None
    if getattr(op, "threads", 1) > 1:  # what a 1-thread compile would run: the fastest native 1-thread variant
        natives = [v for v in single.values() if v[1].chain_kind == "native"]
        one = min(natives, key=lambda v: v[0])[1] if natives else None
    return Choice(op, fmt, reason, times, skipped, zshare, one)


def _variant_label(kw: dict) -> str:
    if "mode" in kw:
        return f"[{kw['mode']}]"
    return f"[t{kw['threads']},w{kw['tile']}]" if kw else ""
