"""Sparse convolutions: a Conv2d (with the ReLU and 2x2 max pool after it) as one compiled unit.

A conv layer of a compiled model becomes a *unit*: the conv plus the ReLU and/or 2x2 max
pool that follow it in the model's graph (``fuse_units``, a ``torch.fx`` rewrite that
removes those nodes and lets the unit compute them). Three ways to run a unit:

  ``dense``          ``F.conv2d`` then ReLU / ``F.max_pool2d`` in torch (what the model did);
  ``direct-native``  direct sparse convolution over the nonzero filter taps
                     (``csrc/conv_kernels.cpp``, NCHW in and out, no im2col copy), bias,
                     ReLU and pool fused into its epilogue (stride 1, dilation 1, groups 1);
                     1 or N threads per call by ``ThreadGuard`` (recent times of real calls);
  ``im2col-<fmt>``   ``ops.SparseConv2d``: unfold, then the CSR kernel (``dispatch.choose``
                     picks ``fmt`` on the im2col matrix), ReLU / pool in torch.

``choose_conv`` times every candidate unit on the layer's real input (calibration batch)
at the target batch size, contenders interleaved, medians, and keeps ``dense`` unless a
sparse unit takes < ``dispatch.MARGIN`` of its time (the dispatcher's rule). Structured
pruning (whole filters) is handled before, by ``compaction.compact_conv_chain``.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import fx_trace, once_per_architecture
from . import kernels
from .dispatch import MARGIN, choose
from .layer_inputs import recorded_inputs
from .ops import SparseConv2d, check_conv_input
from .thread_guard import ThreadGuard

SOURCE = Path(__file__).resolve().parent / "csrc" / "conv_kernels.cpp"
EXTENSION = kernels.Extension(SOURCE, "sparsity_viz_conv", "native sparse convolution kernels")
DIRECT = "direct-native"
HEURISTIC_DENSITY = 0.5  # heuristic policy: direct-native at or below this density (or when a pool is fused)
TIMING_COLUMNS = 4096  # im2col columns the CSR format is chosen on (keeps compile fast)
TIMING_ROUNDS = 7  # interleaved rounds when units are timed


def unavailable_reason(force_fallback: bool = False) -> str | None:
    """None when the conv kernel can run now; else why not (never waits for a build)."""
    return EXTENSION.unavailable_reason(force_fallback)


def direct_problem(conv: nn.Conv2d) -> str | None:
    """Why the direct kernel cannot run ``conv``, or None."""
    if conv.groups != 1:
        return "grouped conv"
    if tuple(conv.stride) != (1, 1) or tuple(conv.dilation) != (1, 1):
        return "stride / dilation other than 1"
    if isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        return "padding must be numeric zeros"
    return None


@dataclass
class Taps:
    """The nonzero filter taps of a conv weight (out, in, kh, kw), grouped by output channel."""

    ptr: torch.Tensor  # (out + 1,) int32
    chan: torch.Tensor  # (nnz,) int32 input channel
    k: torch.Tensor  # (nnz,) int32 ky * kw + kx
    val: torch.Tensor  # (nnz,) float32

    @classmethod
    def from_weight(cls, w: torch.Tensor) -> Taps:
        w3 = w.detach().float().cpu().reshape(w.shape[0], w.shape[1], -1)  # (out, in, kh*kw)
        nz = w3 != 0
        ptr = torch.zeros(w.shape[0] + 1, dtype=torch.int32)
        ptr[1:] = nz.flatten(1).sum(1).cumsum(0)
        idx = nz.nonzero()  # (nnz, 3): out, in, k in row-major order
        return cls(ptr, idx[:, 1].int().contiguous(), idx[:, 2].int().contiguous(), w3[nz].contiguous())

    @property
    def nbytes(self) -> int:
        """Bytes held: float value, int32 channel and int32 tap index per nonzero, int32 pointers."""
        return sum(t.numel() * t.element_size() for t in (self.ptr, self.chan, self.k, self.val))


def finish(y: torch.Tensor, relu: bool, pool: int) -> torch.Tensor:
    """The ReLU / 2x2 max pool of a unit, in torch, after a conv that did not fuse them."""
    if relu:
        y = torch.relu(y)
    return F.max_pool2d(y, 2) if pool == 2 else y


class ConvUnit(nn.Module):
    """Base: a conv followed by an optional ReLU and 2x2 max pool (``pool`` 1 or 2)."""

    format = "?"

    def __init__(self, conv: nn.Conv2d, relu: bool = False, pool: int = 1):
        super().__init__()
        self.relu, self.pool = bool(relu), int(pool)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.nbytes = conv.weight.numel() * 4

    def _finish(self, y: torch.Tensor) -> torch.Tensor:
        return finish(y, self.relu, self.pool)

    def extra_repr(self) -> str:
        return f"{self.format}, relu={self.relu}, pool={self.pool}"


class TorchUnit(ConvUnit):
    """The unit as the model ran it: ``nn.Conv2d`` (oneDNN) then ReLU / max pool in torch."""

    format = "dense"

    def __init__(self, conv: nn.Conv2d, relu: bool = False, pool: int = 1):
        super().__init__(conv, relu, pool)
        self.conv = conv

    def forward(self, x):
        return self._finish(self.conv(x))


def im2col_format(fmt: str) -> str:
    """The plan name of a conv layer run as im2col + the matrix format ``fmt`` (``im2col-csr-native``)."""
    return f"im2col-{fmt}"


class Im2colUnit(SparseConv2d):
    """``ops.SparseConv2d`` (unfold + a LinearOp on the im2col matrix), then ReLU / pool in torch."""

    def __init__(self, conv: nn.Conv2d, op, relu: bool = False, pool: int = 1):
        super().__init__(conv, op)
        self.relu, self.pool = bool(relu), int(pool)
        self.format = im2col_format(op.format)
        self.nbytes = op.nbytes

    def forward(self, x):
        return finish(super().forward(x), self.relu, self.pool)


class DirectConv2d(ConvUnit):
    """Direct sparse convolution over the nonzero taps, bias + ReLU + 2x2 max pool fused (NCHW)."""

    format = DIRECT

    def __init__(self, conv: nn.Conv2d, relu: bool = False, pool: int = 1):
        super().__init__(conv, relu, pool)
        why = direct_problem(conv)
        if why is not None:
            raise ValueError(f"direct sparse conv cannot run this Conv2d: {why}")
        self.taps = Taps.from_weight(conv.weight)
        self.bias = conv.bias.detach().float().cpu().contiguous() if conv.bias is not None else torch.empty(0)
        self.kernel_size, self.padding = tuple(conv.kernel_size), tuple(conv.padding)
        self.nbytes = self.taps.nbytes
        self.guard = ThreadGuard(torch.get_num_threads())  # 1 or N threads by the recent times of real calls

    def forward(self, x):  # (N, C, H, W) -> (N, out, Ho', Wo')
        mod = EXTENSION.load()
        if mod is None:
            raise RuntimeError(EXTENSION.notice() or "the sparse convolution kernel is not available")
        check_conv_input(x, self.in_channels)
        x = x.float()
        if any(self.padding):
            x = F.pad(x, (self.padding[1], self.padding[1], self.padding[0], self.padding[0]))
        t, (kh, kw) = self.taps, self.kernel_size
        return self.guard.run(lambda n: mod.conv_forward(x, t.ptr, t.chan, t.k, t.val, self.bias, kh, kw, self.relu,
                                                         self.pool, n), x.shape[0])


# --- fusing ReLU / max pool into the conv before them (torch.fx) --------------------------------

def _is_relu(node: torch.fx.Node, modules: dict) -> bool:
    if node.op == "call_module":
        return type(modules.get(node.target)) is nn.ReLU
    if node.op == "call_function":
        return node.target in (torch.relu, F.relu) and len(node.args) == 1 and not node.kwargs.get("inplace")
    return node.op == "call_method" and node.target == "relu" and len(node.args) == 1


def _two(v) -> bool:
    return v == 2 or tuple(v) == (2, 2) if isinstance(v, (int, tuple, list)) else False


def _is_pool2(node: torch.fx.Node, modules: dict) -> bool:
    """A 2x2 max pool with stride 2, no padding, dilation 1, floor mode, no indices."""
    if node.op == "call_module":
        m = modules.get(node.target)
        return (type(m) is nn.MaxPool2d and _two(m.kernel_size) and _two(m.stride or m.kernel_size)
                and m.padding in (0, (0, 0)) and m.dilation in (1, (1, 1)) and not m.ceil_mode
                and not m.return_indices)
    if node.op == "call_function" and node.target is F.max_pool2d:  # fx records the defaults as kwargs
        kw = {**POOL_DEFAULTS, **node.kwargs}
        return (len(node.args) == 2 and _two(node.args[1]) and kw == POOL_DEFAULTS | {"stride": kw["stride"]}
                and (kw["stride"] is None or _two(kw["stride"])))
    return False


POOL_DEFAULTS = {"stride": None, "padding": 0, "dilation": 1, "ceil_mode": False, "return_indices": False}


def _single_user(node: torch.fx.Node) -> torch.fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def fuse_units(model: nn.Module) -> tuple[nn.Module, dict[str, tuple[bool, int]]]:
    """``model`` with every ``nn.Conv2d`` called once followed (as its only user) by a ReLU and/or a
    2x2 max pool rewritten so that the conv's module computes them too, and
    ``{conv name: (relu, pool)}`` for those convs (their modules MUST then be swapped for a unit
    with these flags: ``ConvUnit`` or ``Im2colUnit``). A model torch.fx cannot trace comes back as
    it is, with ``{}``.

    The rewrite depends on the architecture only: it is traced once per architecture
    (``layers.once_per_architecture``; a trace patches ``nn.Module`` for every thread, so tracing each
    compiled model would break other app sessions' forward passes) and rebuilt from the cached graph."""
    plan = once_per_architecture(model, "fused_conv_units", _fusion_plan)
    if plan is None:
        return model, {}
    graph, units = plan
    return torch.fx.GraphModule(model, copy.deepcopy(graph)), dict(units)


def _fusion_plan(model: nn.Module) -> tuple[torch.fx.Graph, dict[str, tuple[bool, int]]] | None:
    """The traced graph with ReLU / pool folded into the convs before them, and the flags per conv; None when
    the model cannot be traced or nothing fuses."""
    try:
        gm = fx_trace(model)
    except Exception:  # data-dependent control flow etc.: no fusion
        return None
    modules = dict(gm.named_modules())
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    units: dict[str, tuple[bool, int]] = {}
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or type(modules.get(node.target)) is not nn.Conv2d or calls[node.target] != 1:
            continue
        relu, pool, last, absorbed = False, 1, node, []
        for _ in range(2):  # ReLU and pool in either order (they commute)
            nxt = _single_user(last)
            if nxt is None:
                break
            if not relu and _is_relu(nxt, modules):
                relu = True
            elif pool == 1 and _is_pool2(nxt, modules):
                pool = 2
            else:
                break
            absorbed.append(nxt)
            last = nxt
        if not absorbed:
            continue
        last.replace_all_uses_with(node)
        for n in reversed(absorbed):
            gm.graph.erase_node(n)
        units[node.target] = (relu, pool)
    if not units:
        return None
    for n in gm.graph.nodes:  # string annotations (``from __future__ import annotations``) break pickling
        if isinstance(n.type, str):
            n.type = None
    gm.graph.lint()
    return copy.deepcopy(gm.graph), units  # a copy owned by no module: the cache keeps no model alive


def conv_inputs(module: nn.Module, calib: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Each ``nn.Conv2d``'s input on the calibration batch (NCHW)."""
    return recorded_inputs(module, calib, [(n, m) for n, m in module.named_modules() if type(m) is nn.Conv2d])


# --- choosing a unit -------------------------------------------------------------------------------

@dataclass
class ConvChoice:
    """The unit picked for one conv layer (``op`` is the unit: it has ``nbytes``), like ``dispatch.Choice``."""

    op: nn.Module  # ConvUnit or Im2colUnit
    format: str
    reason: str
    times_us: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    input_zero_share: float | None = None


def time_units(units: list[nn.Module], x: torch.Tensor, rounds: int = TIMING_ROUNDS) -> list[float]:
    """Median seconds of each ``unit(x)``, contenders interleaved round by round (each warmed up first)."""
    ts: list[list[float]] = [[] for _ in units]
    with torch.no_grad():
        for u in units:
            u(x)
            u(x)
        for _ in range(rounds):
            for k, u in enumerate(units):
                t0 = time.perf_counter()
                u(x)
                ts[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in ts]


def _batch_of(x: torch.Tensor, batch: int) -> torch.Tensor:
    if x.shape[0] < batch:
        x = x.repeat(-(-batch // x.shape[0]), *([1] * (x.dim() - 1)))
    return x[:batch].contiguous()


def choose_conv(conv: nn.Conv2d, relu: bool = False, pool: int = 1, *, example: torch.Tensor | None, batch: int,
                device: torch.device, policy: str = "measure", formats: tuple[str, ...] | None = None,
                force_fallback: bool = False, repeats: int = 15) -> ConvChoice:
    """Pick how one conv unit runs (see the module doc); ``example`` is its real NCHW input."""
    density = float((conv.weight != 0).float().mean()) if conv.weight.numel() else 0.0
    dense = TorchUnit(conv, relu, pool)
    skipped: dict[str, str] = {}
    if device.type != "cpu":
        return ConvChoice(dense, "dense", "conv kept dense (F.conv2d): sparse conv kernels run on CPU", skipped=skipped)
    cands: dict[str, nn.Module] = {}
    if formats is None or DIRECT in formats:
        why = direct_problem(conv) or unavailable_reason(force_fallback)
        if why is None:
            cands[DIRECT] = DirectConv2d(conv, relu, pool)
        else:
            skipped[DIRECT] = why
    linear = None if formats is None else tuple(f for f in formats if f != DIRECT)
    if formats is None or linear:
        if conv.groups != 1 or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
            skipped["im2col"] = "im2col path supports groups=1 and numeric zero padding only"
        else:
            positions = 1 if example is None else max(1, _out_positions(conv, example))
            w2 = conv.weight.detach().flatten(1).cpu()  # (out, C*kh*kw) im2col view
            lin = choose(w2, conv.bias, False, batch=min(batch * positions, TIMING_COLUMNS), device=device,
                         policy=policy, formats=linear, force_fallback=force_fallback, repeats=repeats)
            skipped.update({im2col_format(k): v for k, v in lin.skipped.items()})
            if lin.format.startswith("dense") and not lin.format.endswith("native"):
                skipped["im2col"] = f"dense matmul won on the im2col matrix ({lin.reason})"
            else:
                unit = Im2colUnit(conv, lin.op, relu, pool)
                cands[unit.format] = unit
    where = f"density {density:.1%}" + (" + ReLU" if relu else "") + (" + 2x2 pool" if pool == 2 else "")
    if not cands:
        return ConvChoice(dense, "dense", f"conv kept dense (F.conv2d) at {where}", skipped=skipped)
    if formats is not None and len(cands) == 1 and "dense" not in formats:  # forced
        fmt, unit = next(iter(cands.items()))
        return ConvChoice(unit, fmt, f"forced {fmt}", skipped=skipped)
    if policy == "heuristic":
        if DIRECT in cands and (density <= HEURISTIC_DENSITY or pool == 2):
            return ConvChoice(cands[DIRECT], DIRECT, f"heuristic: {where} (direct when <= {HEURISTIC_DENSITY:.0%} "
                              "or a pool is fused)", skipped=skipped)
        return ConvChoice(dense, "dense", f"heuristic: conv kept dense at {where}", skipped=skipped)
    if example is None:
        return ConvChoice(dense, "dense", f"conv kept dense: no example input to time it on ({where})",
                          skipped=skipped)
    x = _batch_of(example.to(torch.float32), batch)
    names = ["dense", *cands]
    units = [dense, *cands.values()]
    times = time_units(units, x)
    t_dense = times[0]
    k = min(range(len(units)), key=times.__getitem__)
    times_us = {n: t * 1e6 for n, t in zip(names, times)}
    at = f"batch {batch}, {where}"
    if k == 0 or times[k] >= MARGIN * t_dense:
        reason = "dense fastest" if k == 0 else f"no unit beat dense by {1 - MARGIN:.0%}"
        return ConvChoice(dense, "dense", f"conv kept dense: {reason} at {at}", times_us, skipped)
    return ConvChoice(units[k], names[k], f"{times[k] / t_dense:.2f}x dense time ({times[k] * 1e6:.0f} vs "
                      f"{t_dense * 1e6:.0f} us) at {at}", times_us, skipped)


def _out_positions(conv: nn.Conv2d, x: torch.Tensor) -> int:
    """Output positions per image of ``conv`` on input ``x`` (N, C, H, W)."""
    h, w = x.shape[-2:]
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return max(ho, 0) * max(wo, 0)
