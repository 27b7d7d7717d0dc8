"""compile_model: a pruned model compiled into per-layer best formats, with explain().

Two shapes of compiled model:
  * MLPs (``models.MLP``) run as one feature-major chain: dead neurons compacted away,
    each Linear layer in its chosen format, ReLU fused, consecutive native layers in
    one C++ call (the small-batch path costs one Python call for the whole MLP).
  * Anything else (LeNet-5, any user ``nn.Module``) is a copy whose ``nn.Linear`` /
    ``nn.Conv2d`` modules (exactly those types, so subclasses with their own forward and
    attention's ``out_proj`` stay) are swapped for ``SparseLinear`` where a sparse format
    wins, and kept dense otherwise. A ``Conv2d`` with the ReLU / 2x2 max pool after it
    becomes one unit (``conv_sparse``: direct sparse conv over the nonzero taps with the
    pool fused, or im2col + CSR, or dense, by measured time). Every other module
    (BatchNorm, attention, Conv1d, custom layers) runs unchanged; its prunable parameters
    get a "dense" plan row. With a calibration batch the copy's logits are checked against
    the model's; a mismatch (a module reading a swapped layer's weight directly) keeps
    every layer dense, with a notice.
Under ``policy="measure"`` the whole compiled call (wrapper included) is finally timed against
the original module at the target batch size, interleaved, medians; if it is not faster the
compiled model simply runs the original module (``timing`` keeps the measurements), as does one
whose layers all chose dense, so it is never slower than dense beyond noise. An MLP whose layers
are all native runs as one C++ call (``(B, in) -> (B, classes)``: input compaction, transposes,
every layer; above 64 samples the batch runs in chunks, each through every layer on one thread)
with its activation buffers allocated once and reused; with more than one torch thread a
``ThreadGuard`` picks 1 or N threads per batch size from the recent times of real calls, so the
choice follows the load.

Each layer is timed on its real input activations: a calibration batch (``calibration``,
else random inputs; hidden layers then still see the model's own ReLU zeros) is run
through the compiled chain, and every layer's input zero share is kept in its plan, since
the activation-sparse formats (``act_sparse.py``) win or lose on it.
"""

from __future__ import annotations

import copy
import math
import numbers
import statistics
import time
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..devices import resolve_device
from ..masks import masked_copy, require_finite
from ..layers import prunable_weights
from ..models import MLP, prunable_layers
from . import conv_sparse, kernels
from .compaction import compact_chain, compact_conv_chain
from .cuda import cuda_status
from .dispatch import ALL_FORMATS, POLICIES, Choice, choose
from .layer_inputs import recorded_inputs
from .ops import LinearOp, SparseLinear, run_chain
from .thread_guard import ThreadGuard

ACT = {"relu": torch.relu, "tanh": torch.tanh}
CALIBRATION_SAMPLES = 128  # inputs run through the model to get each layer's real input activations


@dataclass
class LayerPlan:
    """What one layer became: format, why, shapes and bytes."""

    name: str
    shape: tuple[int, ...]
    compiled_shape: tuple[int, ...]
    density: float
    format: str
    reason: str
    nbytes: int
    dense_nbytes: int
    times_us: dict
    skipped: dict
    input_zero_share: float | None = None  # share of zero inputs on the calibration batch (None: not measured)


class CompiledModel(nn.Module):
    """A pruned model compiled for inference; call it like the original model."""

    def __init__(self, plans: list[LayerPlan], *, device: torch.device, batch_size: int, policy: str,
                 ops: list[LinearOp] | None = None, act: str = "relu", input_keep: torch.Tensor | None = None,
                 module: nn.Module | None = None, notices: list[str] | None = None,
                 single_ops: list[LinearOp] | None = None, in_features: int | None = None):
        super().__init__()
        self.plans = plans
        self.device = device
        self.batch_size = batch_size
        self.policy = policy
        self.ops = ops
        self.act = act
        self.input_keep = input_keep.to(device) if input_keep is not None else None
        if in_features is None and ops and input_keep is None:  # no input dropped: the first op's width
            in_features = ops[0].in_features
        self.in_features = in_features  # the MLP's input width (None: ``module`` checks its own input)
        self.module = module
        self.notices = notices or []
        self.timing: dict | None = None  # the final whole-call measurement (``_guard_against_dense``)
        self._native: dict = {}  # the one-call chain (built on first use; not copied or pickled)
        self.layer_threads = max((getattr(op, "threads", 1) for op in ops or []), default=1)
        # the one-call chain splits a batch into chunks from CHUNKED_FROM samples, run on the call's thread count:
        # with more than one torch thread the guard chooses it from then on, even for layers chosen on one thread
        threads = max(self.layer_threads, torch.get_num_threads())
        self.thread_guard = ThreadGuard(threads) if self._all_native() and threads > 1 else None
        self._guard_from = 1 if self.layer_threads > 1 else CHUNKED_FROM  # smaller batches: nothing to choose
        # the guard's 1-thread calls run the layers chosen for 1 thread (their formats' fastest 1-thread variants):
        # the N-thread plan capped to one thread was measured up to 27 % slower than a plan compiled for one
        differs = single_ops is not None and any(a is not b for a, b in zip(single_ops, ops or []))
        self.single_ops = single_ops if differs and self.thread_guard is not None else None

    def threads_at(self, batch: int) -> int:
        """The thread count a call at ``batch`` runs on now: the guard's current choice where it chooses, else
        the layers' own (the largest)."""
        return self.thread_guard.choice(batch) if self._guarded(batch) else self.layer_threads

    def _guarded(self, batch: int) -> bool:
        """Whether a call at ``batch`` goes through the thread guard (below ``_guard_from`` there is nothing to choose)."""
        return self.thread_guard is not None and batch >= self._guard_from

    def _all_native(self) -> bool:
        return bool(self.ops) and self.act == "relu" and self.device.type == "cpu" and all(
            op.chain_kind == "native" for op in self.ops)

    def one_call(self, single: bool = False):
        """The whole MLP as one validated native chain (input columns kept in C++), or None.

        ``single``: the chain of the 1-thread plan (``single_ops``) when there is one.
        """
        if not self._all_native():
            return None
        ops, key = (self.single_ops, "single") if single and self.single_ops is not None else (self.ops, "chain")
        if key not in self._native:
            chain = ops[0].make_chain([op.layer() for op in ops], ops[0].in_features)
            if self.input_keep is not None:
                chain.set_keep(self.input_keep.to(torch.int64), self.in_features or -1)  # the width checked in C++
            self._native[key] = chain
        return self._native[key]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_native"] = {}
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chain = self._native.get("chain")
        if chain is not None and self.module is None and x.dtype == torch.float32 and x.device.type == "cpu":
            # the one-call path once built: nothing else on the way (a small call is ~20 us; the general path's
            # checks and no_grad context cost several us more), and the native chain records no autograd graph
            x2 = x if x.dim() == 2 else x.flatten(1) if x.dim() > 2 else self._wrong_width(x)
            try:  # the chain checks the width itself: no Python check on this path (~0.5 us of a 17 us call)
                return self._native_forward(chain, x2)
            except RuntimeError:
                if x2.shape[1] != self.in_features:
                    self._wrong_width(x)
                raise
        return self._forward(x)

    def _wrong_width(self, x: torch.Tensor) -> None:
        """The original raised for a wrong width, but dropped inputs let a wider one through (an audit)."""
        if x.dim() < 2:  # one sample without its batch dimension read "takes 784 ..., got 784" (an audit)
            raise ValueError(f"the model takes a batch, (N, {self.in_features}) or (N, ...) with {self.in_features} "
                             f"values per sample; got shape {tuple(x.shape)}: add the batch dimension "
                             "(x.unsqueeze(0) for one sample).")
        raise ValueError(f"the model takes {self.in_features} input features per sample, got "
                         f"{math.prod(x.shape[1:])} (input shape {tuple(x.shape)}).")

    def _native_forward(self, chain, x2: torch.Tensor) -> torch.Tensor:  # (B, in) -> (B, classes)
        if not self._guarded(x2.shape[0]):
            return chain.forward(x2, True, True)
        single = self._native.get("single", chain)
        return self.thread_guard.run(lambda n: (chain if n > 1 else single).forward(x2, True, True, n), x2.shape[0])

    @torch.no_grad()
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32:  # the original raised for these; a silent cast hid it (an audit)
            raise TypeError(f"the compiled model computes in float32 and takes float32 inputs, got {x.dtype} "
                            f"(convert with x.float()).")
        if self.module is not None:
            return self.module(x.to(self.device))
        if x.dim() < 2 or math.prod(x.shape[1:]) != self.in_features:
            self._wrong_width(x)
        chain = self.one_call() if x.dtype == torch.float32 and x.device.type == "cpu" else None
        if chain is not None:
            self.one_call(single=True)  # built now too, for the guard's 1-thread calls
            return self._native_forward(chain, x.flatten(1))
        x = x.to(self.device).flatten(1)  # (B, in)
        if self.input_keep is not None:
            x = x.index_select(1, self.input_keep)
        if self.act == "relu":
            y = run_chain(self.ops, x, batch_major=True)  # (classes, B)
        else:
            y = x.t()
            for i, op in enumerate(self.ops):
                y = op.forward(y)
                if i < len(self.ops) - 1:
                    y = ACT[self.act](y)
        return y.t().contiguous()  # (B, classes)

    @property
    def nbytes(self) -> int:
        """Bytes of all compiled weight encodings (biases excluded)."""
        return sum(p.nbytes for p in self.plans)

    @property
    def dense_nbytes(self) -> int:
        return sum(p.dense_nbytes for p in self.plans)

    def plan_table(self) -> pd.DataFrame:
        """One row per layer: format, reason, shapes, density, bytes, input zero share (0..1 or None)."""
        return pd.DataFrame([
            {"layer": p.name, "shape": "x".join(map(str, p.shape)), "compiled_shape": "x".join(map(str, p.compiled_shape)),
             "density": p.density, "format": p.format, "reason": p.reason, "bytes": p.nbytes,
             "dense_bytes": p.dense_nbytes, "input_zeros": p.input_zero_share}
            for p in self.plans
        ])

    def explain(self) -> str:
        """Which format each layer got and why, as a short human-readable text."""
        lines = [f"compiled for batch {self.batch_size} on {self.device} (policy {self.policy}):"]
        for p in self.plans:
            shape = "x".join(map(str, p.shape))
            if p.compiled_shape != p.shape:
                shape += " -> " + "x".join(map(str, p.compiled_shape)) + " (compacted)"
            zeros = f"  input zeros {p.input_zero_share:4.0%}" if p.input_zero_share is not None else ""
            lines.append(f"  {p.name:8s} {shape:28s} density {p.density:6.1%}{zeros}  {p.format:13s} {p.reason}")
        lines.append(f"  weights: {self.nbytes:,} bytes vs {self.dense_nbytes:,} dense ({self.nbytes / max(1, self.dense_nbytes):.2f}x)")
        lines += [f"  note: {n}" for n in self.notices]
        return "\n".join(lines)


GUARD_ROUNDS = 11  # interleaved rounds of the final whole-call comparison
CHUNKED_FROM = 65  # the native chain runs a batch above 64 samples in chunks of 64 (csrc: CHUNK)


def _time_models(fns: list, x: torch.Tensor, rounds: int | None = None) -> list[float]:
    """Median seconds of each whole call ``fn(x)``, the contenders interleaved round by round (so that
    load from other processes hits them alike); each is warmed up first (buffers, thread choice)."""
    rounds = GUARD_ROUNDS if rounds is None else rounds
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    ts: list[list[float]] = [[] for _ in fns]
    with torch.no_grad():
        for fn in fns:
            for _ in range(3):
                fn(x)
        sync()
        for _ in range(rounds):
            for k, fn in enumerate(fns):
                t0 = time.perf_counter()
                fn(x)
                sync()
                ts[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in ts]


def _input_example(model: nn.Module, batch: int, device: torch.device) -> torch.Tensor | None:
    if isinstance(model, MLP):
        return torch.randn(batch, model.in_features, device=device)
    first = prunable_layers(model)[0][1] if prunable_layers(model) else None
    if isinstance(first, nn.Conv2d):
        return torch.randn(batch, first.in_channels, 28, 28, device=device)
    return None


def compile_model(model: nn.Module, masks: dict | None = None, batch_size: int = 256, device: str | torch.device = "auto",
                  *, policy: str = "measure", formats: tuple[str, ...] | None = None, compact: bool = True,
                  force_fallback: bool = False, repeats: int = 15,
                  calibration: torch.Tensor | None = None) -> CompiledModel:
    """Compile a (pruned) model into per-layer best formats for ``batch_size`` on ``device``.

    Args:
        model: a pruned model (zeros in the weights), or a dense one plus ``masks``.
        masks: optional ``{"fc1.weight": bool}``; applied to a copy first.
        batch_size: the batch size to optimise for (any batch size still runs).
        device: "auto" | "cpu" | "cuda".
        policy: "measure" (time candidates, default) or "heuristic" (density rule, no timing).
        formats: restrict candidate formats, e.g. ``("csr-native",)`` to force one.
        compact: remove dead neurons of MLPs first (structured compaction).
        force_fallback: behave as if no C++ compiler were available.
        calibration: real inputs ``(N, ...)`` (e.g. test images) whose activations every
            layer is timed on; default ``CALIBRATION_SAMPLES`` random inputs.
    """
    _check_arguments(batch_size, policy, formats)
    device = resolve_device(device)
    src = masked_copy(model, masks) if masks is not None else model
    dtype = next((p.dtype for p in src.parameters() if p.is_floating_point()), torch.float32)
    src = copy.deepcopy(src).eval().float()
    require_finite(src, "compile_model")  # a sparse kernel skips pruned weights: 0 * inf would not be dense's NaN
    notices = [] if dtype == torch.float32 else [
        f"weights converted from {dtype} to float32: the compiled model computes in float32 and takes float32 inputs"]
    if not force_fallback and not kernels.available():
        notices.append(kernels.notice() or "native kernels unavailable")
    elif force_fallback:
        notices.append("native kernels disabled (force_fallback); using torch formats")
    if device.type == "cpu":
        ok, why = cuda_status()
        if not ok:
            notices.append(why)
    kw = dict(batch=batch_size, device=device, policy=policy, formats=formats, force_fallback=force_fallback,
              repeats=repeats)

    calib = _calibration(src, calibration, device)
    if isinstance(src, MLP) and src.activation_name in ACT:
        compiled = _compile_mlp(src, compact, kw, notices, calib)
    else:
        compiled = _compile_modules(src, kw, notices, calib, compact)
    if policy == "measure" and not formats:
        compiled = _guard_against_dense(src, compiled, kw, notices, calib, compact)
    return compiled


def _check_arguments(batch_size, policy: str, formats: tuple[str, ...] | None) -> None:
    """``ValueError`` for a batch size that is not a positive integer, an unknown policy or format."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if policy not in POLICIES:
        raise ValueError(f"Unknown policy {policy!r}; choose one of {', '.join(POLICIES)}.")
    if formats is not None:
        if isinstance(formats, str):
            raise ValueError(f"formats must be a tuple of format names, got the string {formats!r}.")
        known = (*ALL_FORMATS, conv_sparse.DIRECT)
        unknown = [f for f in formats if f not in known]
        if unknown or not formats:
            raise ValueError(f"Unknown format(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                             f"choose from {', '.join(known)}.")


def _calibration(src: nn.Module, calibration: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    """The calibration inputs on ``device``: the given ones (checked) or random ones; None if unknown."""
    if calibration is None:
        x = _input_example(src, CALIBRATION_SAMPLES, device)
        if x is None or isinstance(src, MLP):
            return x
        what, hint = f"guessed inputs of shape {tuple(x.shape[1:])}", "; pass calibration= a few real inputs (N, ...)"
    else:
        x = torch.as_tensor(calibration).detach().to(device, torch.float32)
        if x.dim() < 2 or x.shape[0] == 0:
            raise ValueError(f"calibration must be a batch of inputs (N, ...) with N >= 1, got shape {tuple(x.shape)}")
        if isinstance(src, MLP) and x[0].numel() != src.in_features:
            raise ValueError(f"calibration inputs have {x[0].numel()} features, the model takes {src.in_features}")
        what, hint = f"calibration inputs of shape {tuple(x.shape[1:])}", ""
    try:  # any other model: one sample through it (LeNet-5 on 20x20 inputs raised torch's matmul error; an audit)
        with torch.no_grad():
            src(x[:1].to(next((p.device for p in src.parameters()), x.device)))
    except RuntimeError as exc:  # the guess: a conv model of 3x32x32 inputs raised that error from deep inside
        raise ValueError(f"{what} do not fit the model ({str(exc).strip().splitlines()[0][:160]}){hint}") from None
    return x


def _plan(name, w, cw, choice: Choice) -> LayerPlan:
    return LayerPlan(name, tuple(w.shape), tuple(cw.shape), float((w != 0).float().mean()), choice.format,
                     choice.reason, choice.op.nbytes, w.numel() * 4, choice.times_us, choice.skipped,
                     choice.input_zero_share)


def _compile_mlp(src: MLP, compact: bool, kw: dict, notices: list[str], calib: torch.Tensor | None = None) -> CompiledModel:
    layers = prunable_layers(src)
    ws = [m.weight.detach() for _, m in layers]
    bs = [m.bias.detach() if m.bias is not None else None for _, m in layers]
    input_keep = None
    cws, cbs = ws, bs
    if compact:
        c = compact_chain(ws, bs, ACT[src.activation_name])
        cws, cbs, input_keep = c.weights, c.biases, c.input_keep
    relu = src.activation_name == "relu"
    ops, plans, single_ops = [], [], []
    h = None  # the compiled layer's input activations on the calibration batch, (in, N)
    if calib is not None:
        x0 = calib.flatten(1)  # (N, in)
        h = (x0.index_select(1, input_keep.to(x0.device)) if input_keep is not None else x0).t().contiguous()
    for i, ((name, _), w, cw, cb) in enumerate(zip(layers, ws, cws, cbs)):
        choice = choose(cw, cb, relu and i < len(layers) - 1, example=h, **kw)
        ops.append(choice.op)
        single_ops.append(choice.single or choice.op)
        plans.append(_plan(name, w, cw, choice))
        if h is not None and i < len(layers) - 1:
            h = ACT[src.activation_name](F.linear(h.t(), cw.to(h.device), None if cb is None else cb.to(h.device)))
            h = h.t().contiguous()  # (out, N)
    return CompiledModel(plans, device=kw["device"], batch_size=kw["batch"], policy=kw["policy"], ops=ops,
                         act=src.activation_name, input_keep=input_keep, notices=notices, single_ops=single_ops,
                         in_features=ws[0].shape[1])


SWAPPABLE = (nn.Linear, nn.Conv2d)  # exact types compiled per layer; everything else stays as it is


def _swappable(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every module of exactly a ``SWAPPABLE`` type with a weight, tied copies included, in registration order."""
    return [(n, m) for n, m in module.named_modules() if type(m) in SWAPPABLE]


def _linear_inputs(module: nn.Module, calib: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Each Linear layer's input on the calibration batch, feature-major ``(in, N)``."""
    return recorded_inputs(module, calib, [(n, m) for n, m in _swappable(module) if isinstance(m, nn.Linear)],
                           lambda t: t.reshape(-1, t.shape[-1]).t().contiguous())


def _compile_modules(src: nn.Module, kw: dict, notices: list[str], calib: torch.Tensor | None = None,
                     compact: bool = False) -> CompiledModel:
    work, shapes = src, {}
    if compact and calib is not None:  # whole dead filters / neurons: physically smaller layers
        param = next(src.parameters(), None)
        c = compact_conv_chain(src, calib[:16].to(param.device if param is not None else "cpu"))
        work, shapes = c.model, c.shapes
        if shapes:
            notices.append("compacted whole dead filters / neurons: " + ", ".join(
                f"{n} {'x'.join(map(str, a))} -> {'x'.join(map(str, b))}" for n, (a, b) in shapes.items()))
    original = dict(src.named_modules())
    module = copy.deepcopy(work).to(kw["device"])
    inputs = _linear_inputs(module, calib)
    conv_in = conv_sparse.conv_inputs(module, calib)  # each conv's NCHW input on the calibration batch
    module, units = conv_sparse.fuse_units(module)  # conv + ReLU + 2x2 pool as one module (torch.fx)
    plans = []
    for name, m in _swappable(module):
        w = m.weight.detach()
        if isinstance(m, nn.Conv2d):
            relu, pool = units.get(name, (False, 1))
            choice = conv_sparse.choose_conv(m, relu, pool, example=conv_in.get(name), **kw)
            if name in units or choice.format != "dense":  # a fused unit must replace its conv
                _set_module(module, name, choice.op)
            plans.append(_plan(name, original[name].weight.detach() if name in shapes else w, w, choice))
        else:
            linear_formats = tuple(f for f in kw["formats"] or () if f != conv_sparse.DIRECT) or None
            choice = choose(w, m.bias, False, example=inputs.get(name), **dict(kw, formats=linear_formats))
            if not (choice.format.startswith("dense") and not choice.format.endswith("native")):
                _set_module(module, name, SparseLinear(choice.op))
            plans.append(_plan(name, original[name].weight.detach() if name in shapes else w, w, choice))
    swapped = {id(m.weight) for _, m in _swappable(src)}
    for entry in prunable_weights(src):
        if id(entry.param) not in swapped:
            w = entry.param.detach()
            plans.append(LayerPlan(entry.label, tuple(w.shape), tuple(w.shape), float((w != 0).float().mean()),
                                   "dense", f"{type(entry.module).__name__}: no sparse kernel, runs as it is",
                                   w.numel() * 4, w.numel() * 4, {}, {}))
    if calib is not None and any(p.format != "dense" for p in plans) and not _same_logits(src, module, calib):
        notices.append("swapping layers changed the model's output (a module reads a layer's weight "
                       "directly); every layer kept dense")
        module = copy.deepcopy(src).to(kw["device"])
        for p in plans:
            p.format, p.nbytes, p.reason = "dense", p.dense_nbytes, "kept dense: " + p.reason
    return CompiledModel(plans, device=kw["device"], batch_size=kw["batch"], policy=kw["policy"], module=module,
                         notices=notices)


def _same_logits(src: nn.Module, compiled: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``compiled`` runs on ``x`` and, for a tensor output, gives ``src``'s within 1 % of its scale
    (room for the fp16 CUDA formats; a structural mistake is far off or raises)."""
    with torch.no_grad():
        want = copy.deepcopy(src).to(x.device)(x)
        try:
            got = compiled(x)
        except Exception:  # e.g. a module reading .weight of a swapped layer
            return False
    if not isinstance(want, torch.Tensor):
        return True
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        return False
    if want.numel() == 0:
        return True
    return float((got.float() - want.float()).abs().max()) <= 1e-2 * float(want.abs().max()) + 1e-4


def _set_module(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, attr, new)


def _guard_against_dense(src: nn.Module, compiled: CompiledModel, kw: dict, notices: list[str],
                         calib: torch.Tensor | None = None, compact: bool = True) -> CompiledModel:
    """Time the whole compiled call against the original module at the target batch (interleaved,
    medians); where the compiled model is not faster, return one that runs the original module.

    For MLPs an every-layer-native variant (one C++ call) is a third contender: per-layer timings
    cannot see what fusing saves. ``timing`` on the result records the measurements.
    """
    # every layer chose dense: the compiled model would be the original module plus a wrapper, so only the
    # one-call MLP chain (below) may still compete with the module
    all_dense = all(p.format.startswith("dense") and p.compiled_shape == p.shape for p in compiled.plans)
    x = _input_example(src, kw["batch"], kw["device"]) if calib is None else calib[: kw["batch"]]
    if x is None:
        return compiled
    if x.shape[0] < kw["batch"]:
        x = x.repeat(-(-kw["batch"] // x.shape[0]), *([1] * (x.dim() - 1)))[: kw["batch"]]
    dense = copy.deepcopy(src).to(kw["device"])
    contenders = [dense] if all_dense else [dense, compiled]
    alt = None
    if isinstance(src, MLP) and kw["device"].type == "cpu" and kernels.available(kw["force_fallback"]):
        alt = _compile_mlp(src, compact, dict(kw, formats=("csr-native",)), list(notices), calib)
        if all_dense or not alt._all_native() or not compiled._all_native() or any(
                a.format != c.format for a, c in zip(alt.plans, compiled.plans)):
            contenders.append(alt)
    times = _time_models(contenders, x)
    t_dense = times[0]
    timing = {"batch": kw["batch"], "dense_us": t_dense * 1e6, "compiled_us": None,
              "threads": torch.get_num_threads()}
    if len(contenders) > 1:
        k = min(range(1, len(times)), key=times.__getitem__)
        best, t_best = contenders[k], times[k]
        timing["compiled_us"] = t_best * 1e6
        if t_best < t_dense:
            if best is alt:  # it said "every layer native" where some layer was not (an audit)
                what = "every layer native (one call)" if best._all_native() else "the variant forcing csr-native"
                for p in best.plans:
                    p.reason = f"whole-call timing: {what} was fastest; " + p.reason
            best.timing = dict(timing, chosen="compiled", chosen_us=t_best * 1e6)
            best.notices.append(f"whole call: {t_best * 1e6:.0f} us vs the original module {t_dense * 1e6:.0f} us "
                                f"({t_best / t_dense:.2f}x) at batch {kw['batch']}")
            return best
        notices.append(f"whole compiled call not faster than the original module ({t_best * 1e6:.0f} vs "
                       f"{t_dense * 1e6:.0f} us at batch {kw['batch']}); running the original module")
    else:
        notices.append("every layer measured fastest dense; running the original module")
    for p in compiled.plans:
        p.format, p.nbytes, p.compiled_shape = "dense", p.dense_nbytes, p.shape
        if len(contenders) > 1:
            p.reason = "original module kept (whole call not faster): " + p.reason
    fallback = CompiledModel(compiled.plans, device=kw["device"], batch_size=kw["batch"], policy=kw["policy"],
                             module=dense, notices=notices)
    fallback.timing = dict(timing, chosen="original module", chosen_us=t_dense * 1e6)
    return fallback
