"""int8 weights on the sparse CPU kernel, and the dense int8 references it is timed against.

Quantization: symmetric, per output row (channel), ``scale = max|w_row| / 127`` (1.0 for an
all-zero row), ``q = clamp(round(w * (1 / scale)), -127, 127)`` as int8; the weight the
model computes with is ``q * scale``, which is exactly
``torch.fake_quantize_per_channel_affine(w, scale, zeros, 0, -127, 127)``. A pruned (zero)
weight stays zero, and so does every weight that rounds to zero: the CSR keeps only ``q != 0``.

Formats:
    ``csr-int8-native``: ``Int8CSR`` (int32 row pointers, int16/int32 columns, int8 values, fp32
        row scales) run by ``csrc/int8_kernels.cpp``: fp32 activations, feature-major ``(in, B)``,
        bias + ReLU fused, ``y = scale * sum(q * x) + bias``. The kernel widens a block of codes to
        fp32 in L1 and runs the fp32 tile loop (gathers from the codes for 1-3 samples), so int8
        saves weight bytes (3 instead of 6 per nonzero with int16 columns), not arithmetic. Without a compiler (or ``SPARSITY_VIZ_NATIVE=0``) the same numbers come
        from ``torch.addmm`` over a torch CSR of the dequantized values, with ``notice()``.
    ``int8-dense-weightonly``: dense int8 weights with the same row scales through
        ``torch._weight_int8pack_mm`` (fp32 activations; same numbers as the fake-quantized model).
    ``int8-dense-dynamic``: ``torch.ao.quantization.quantize_dynamic`` (per-channel int8 weights,
        activations quantized to uint8 per call; deprecated in torch 2.13 but working, fbgemm/x86).

The C++ source is a second extension with the main kernel's build rules (``kernels.Extension``):
built once per machine into its own cache directory, ``ready()`` never blocks.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import kernels
from ..quantization.base import grid_scale
from .formats import INT16_MAX_COLS, quiet_sparse, tensor_bytes
from .ops import LinearOp

SOURCE = Path(__file__).resolve().parent / "csrc" / "int8_kernels.cpp"
EXTENSION = kernels.Extension(SOURCE, "sparsity_viz_int8", "native int8 sparse kernels")
QMAX = 127
SPARSE_FORMAT = "csr-int8-native"
DENSE_FORMATS = ("int8-dense-weightonly", "int8-dense-dynamic")
INT8_FORMATS = (SPARSE_FORMAT, *DENSE_FORMATS)
EMPTY_F32 = torch.empty(0, dtype=torch.float32)


def ready() -> bool:
    """True when the int8 kernel loads at once (built on disk, loaded, disabled or failed)."""
    return EXTENSION.ready()


def build_in_background() -> None:
    """Compile the int8 kernel on a daemon thread (once per machine)."""
    EXTENSION.build_in_background()


def available(force_fallback: bool = False) -> bool:
    """True when the native int8 kernel is usable (compiles it on first call: about a minute)."""
    return EXTENSION.available(force_fallback)


def notice() -> str | None:
    """Why the pure-torch fallback is used, or None."""
    return EXTENSION.notice()


def _check(weight: torch.Tensor) -> torch.Tensor:
    w = weight.detach().to("cpu", torch.float32)
    if w.dim() != 2:
        raise ValueError(f"int8 quantization needs a 2-D (out, in) weight, got shape {tuple(w.shape)}.")
    if not bool(torch.isfinite(w).all()):
        bad = int((~torch.isfinite(w)).sum())
        raise ValueError(f"The weight holds {bad} NaN/inf value(s): it cannot be quantized to int8.")
    return w.contiguous()


def row_scales(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric per-row scales ``max|w_row| / 127`` (1.0 for all-zero rows), float32 ``(out,)``.

    At least ``quantization.base.MIN_SCALE`` (``grid_scale``): a row whose largest weight is below ~1.5e-36 would otherwise get a subnormal scale whose
    reciprocal overflows (every code saturating to +-127) or a scale of 0; such a row's tiny weights round to
    0 or +-1 instead.
    """
    w = _check(weight)
    amax = w.abs().amax(dim=1) if w.shape[1] else torch.zeros(w.shape[0])
    return grid_scale(amax, QMAX)


def quantize_rows(weight: torch.Tensor, scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q int8 (out, in), scale float32 (out,))`` with ``q = clamp(round(w * (1/scale)), -127, 127)``.

    Rounds exactly as ``torch.fake_quantize_per_channel_affine`` does (multiplication by the
    float32 reciprocal, round half to even), so ``q * scale`` is the fake-quantized weight.
    """
    w = _check(weight)
    scale = row_scales(w) if scale is None else scale.detach().to(torch.float32).contiguous()
    if scale.shape != (w.shape[0],) or not bool((scale > 0).all()) or not bool(torch.isfinite(scale).all()):
        raise ValueError("scale must be positive, finite and hold one value per output row.")
    inv = (1.0 / scale).unsqueeze(1)
    q = torch.round(w * inv).clamp_(-QMAX, QMAX).to(torch.int8)
    return q, scale


def fake_quantize_rows(weight: torch.Tensor) -> torch.Tensor:
    """The reference: ``torch.fake_quantize_per_channel_affine`` with the same row scales, zero point 0."""
    w = _check(weight)
    scale = row_scales(w)
    zeros = torch.zeros(w.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zeros, 0, -QMAX, QMAX)


@dataclass(frozen=True)
class Int8CSR:
    """CSR with int8 values and per-row fp32 scales: ``rowptr`` int32, ``col`` int16/int32, ``qval`` int8, ``scale``."""

    rowptr: torch.Tensor
    col: torch.Tensor
    qval: torch.Tensor
    scale: torch.Tensor
    shape: tuple[int, int]

    @classmethod
    def from_dense(cls, weight: torch.Tensor, scale: torch.Tensor | None = None) -> Int8CSR:
        """Quantize ``weight`` per row and keep the nonzero codes (a pruned weight stays out)."""
        q, scale = quantize_rows(weight, scale)
        out, inp = q.shape
        nz = q != 0
        rowptr = torch.zeros(out + 1, dtype=torch.int64)
        torch.cumsum(nz.sum(1, dtype=torch.int64), 0, out=rowptr[1:])
        cols = nz.nonzero(as_tuple=True)[1]
        index = torch.int16 if inp <= INT16_MAX_COLS else torch.int32
        return cls(rowptr.to(torch.int32), cols.to(index).contiguous(), q[nz].contiguous(), scale, (out, inp))

    @property
    def nnz(self) -> int:
        return int(self.qval.numel())

    @property
    def nbytes(self) -> int:
        """Stored bytes: row pointers, columns, int8 values and the row scales."""
        return tensor_bytes(self.rowptr, self.col, self.qval, self.scale)

    def rows(self) -> torch.Tensor:
        return torch.repeat_interleave(torch.arange(self.shape[0]), self.rowptr[1:].long() - self.rowptr[:-1].long())

    def values(self) -> torch.Tensor:
        """The dequantized nonzeros ``q * scale[row]`` (float32, CSR order)."""
        return self.qval.to(torch.float32) * self.scale[self.rows()]

    def dequantize(self) -> torch.Tensor:
        """The dense fake-quantized weight, float32 ``(out, in)``."""
        out = torch.zeros(self.shape, dtype=torch.float32)
        out[self.rows(), self.col.long()] = self.values()
        return out

    def torch_csr(self) -> torch.Tensor:
        """The dequantized weight as a torch fp32 CSR tensor (the fallback's operand)."""
        with quiet_sparse():
            return torch.sparse_csr_tensor(self.rowptr, self.col.to(torch.int32), self.values(), self.shape)


def _tile(batch: int) -> int:
    return 64 if batch >= 64 else 32


class Int8CSROp(LinearOp):
    """``csr-int8-native``: ``forward(X (in, B)) -> (out, B)`` on the int8 kernel, bias + ReLU fused.

    ``native`` stays False: ``ops.run_chain`` must not hand it to the fp32 kernel's chain.
    """

    format = SPARSE_FORMAT

    def __init__(self, weight, bias, relu=False, force_fallback: bool = False):
        super().__init__(weight, bias, relu)
        self.csr = Int8CSR.from_dense(weight)
        self.nnz = self.csr.nnz
        self.nbytes = self.csr.nbytes
        self.force_fallback = force_fallback
        self._chains: dict[int, object] = {}
        self._fallback = None

    @property
    def uses_native(self) -> bool:
        return EXTENSION.load(self.force_fallback) is not None

    def layer(self) -> dict:
        return {"rowptr": self.csr.rowptr, "col": self.csr.col, "qval": self.csr.qval, "scale": self.csr.scale,
                "bias": self.bias if self.bias is not None else EMPTY_F32, "relu": self.relu}

    def _chain(self, tile: int):
        chain = self._chains.get(tile)
        if chain is None:
            chain = self._chains[tile] = make_chain([self.layer()], self.in_features, tile)
        return chain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chain = self._chains.get(_tile(x.shape[1]))
        if chain is not None:
            return chain.forward(x, False)
        if self.uses_native:
            return self._chain(_tile(x.shape[1])).forward(x, False)
        if self._fallback is None:
            self._fallback = self.csr.torch_csr()
        with quiet_sparse():
            y = torch.mm(self._fallback, x) if self.bias is None else torch.addmm(self._bias_col(), self._fallback, x)
        return self._finish(y)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_chains"], state["_fallback"] = {}, None
        return state


def make_chain(layers: list[dict], in_features: int, tile: int = 64):
    """A validated native ``Int8Chain``; ``.forward(x, batch_major) -> (out_last, B)``."""
    mod = EXTENSION.load()
    if mod is None:
        raise RuntimeError(notice() or "the native int8 kernel is not available")
    return mod.Int8Chain(int(in_features), [L["rowptr"] for L in layers], [L["col"] for L in layers],
                         [L["qval"] for L in layers], [L["scale"] for L in layers], [L["bias"] for L in layers],
                         [bool(L["relu"]) for L in layers], int(tile))


def _mlp_layers(model: nn.Module) -> list[tuple[str, nn.Linear, bool]]:
    from ..models import MLP

    if not isinstance(model, MLP) or model.activation_name != "relu":
        raise ValueError("The int8 sparse path runs MLPs with ReLU (models.MLP); got "
                         f"{type(model).__name__}.")
    n = model.num_layers
    return [(f"fc{i}", getattr(model, f"fc{i}"), i < n) for i in range(1, n + 1)]


class Int8SparseMLP(nn.Module):
    """A ReLU MLP with every Linear as ``Int8CSR``: batch-major in and out, one native call per forward."""

    def __init__(self, model: nn.Module, force_fallback: bool = False):
        super().__init__()
        layers = _mlp_layers(model)
        self.in_features = layers[0][1].in_features
        self.ops = [Int8CSROp(m.weight, m.bias, relu, force_fallback) for _, m, relu in layers]
        self.names = [name for name, _, _ in layers]
        self.force_fallback = force_fallback
        self._chains: dict[int, object] = {}

    @property
    def native(self) -> bool:
        return EXTENSION.load(self.force_fallback) is not None

    @property
    def nbytes(self) -> int:
        return sum(op.nbytes for op in self.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1).float()  # (B, in); not reshape(B, -1), which fails for B = 0
        tile = _tile(x.shape[0])
        chain = self._chains.get(tile)
        if chain is not None or self.native:
            if chain is None:
                chain = self._chains[tile] = make_chain([op.layer() for op in self.ops], self.in_features, tile)
            return chain.forward(x, True).t()
        y = x.t()
        for op in self.ops:
            y = op.forward(y)
        return y.t()


class WeightOnlyInt8Linear(nn.Module):
    """Dense int8 weights with per-row scales via ``torch._weight_int8pack_mm`` (fp32 activations)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        q, scale = quantize_rows(linear.weight)
        self.register_buffer("q", q)
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])  # (N, in)
        if x2.stride(-1) != 1:  # the kernel wants unit stride; contiguous() keeps a (N, 1) view's stride as it is
            x2 = x2.clone(memory_format=torch.contiguous_format)
        y = torch._weight_int8pack_mm(x2, self.q, self.scale)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, self.out_features)


def int8_dense_model(model: nn.Module, kind: str = "weightonly") -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` as dense int8: ``"weightonly"`` or ``"dynamic"``."""
    model = copy.deepcopy(model).eval()
    if kind == "weightonly":
        for name, mod in list(model.named_modules()):
            for child_name, child in list(mod.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(mod, child_name, WeightOnlyInt8Linear(child))
        return model
    if kind == "dynamic":
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch 2.13: "torch.ao.quantization is deprecated"
            return quantize_dynamic(model, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)
    raise ValueError(f"Unknown dense int8 kind {kind!r}: use 'weightonly' or 'dynamic'.")


def int8_model(model: nn.Module, fmt: str, force_fallback: bool = False) -> nn.Module:
    """``model`` in one of ``INT8_FORMATS`` (batch-major in and out)."""
    if fmt == SPARSE_FORMAT:
        return Int8SparseMLP(model, force_fallback)
    if fmt in DENSE_FORMATS:
        return int8_dense_model(model, fmt.rsplit("-", 1)[1])
    raise ValueError(f"Unknown int8 format {fmt!r}; choose from {', '.join(INT8_FORMATS)}.")


def int8_weight_bytes(model: nn.Module, fmt: str) -> int:
    """Weight bytes of ``fmt``: int8 CSR (+ scales) or dense int8 (+ scales)."""
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if fmt == SPARSE_FORMAT:
        return sum(Int8CSR.from_dense(m.weight).nbytes for m in layers)
    return sum(m.weight.numel() + 4 * m.out_features for m in layers)


def int8_contender(model: nn.Module, fmt: str) -> tuple[nn.Module, int, str]:
    """``(runner, weight bytes, note)`` of ``model`` in ``fmt`` for ``bench.benchmark_model``, which times it in the
    same interleaved rounds as the other formats (it had been timed on its own, its ratio taken to another run's
    dense median, an audit).

    Never waits for the int8 kernel's first build: while it is not ready this raises
    ``ValueError`` saying so, and the build starts in the background.

    Raises:
        ValueError: not an MLP of Linear layers, an unknown format, or the kernel still being built.
    """
    _mlp_layers(model)
    if fmt == SPARSE_FORMAT and not ready():
        build_in_background()
        raise ValueError("the int8 kernel is being built (once per machine, about a minute); measure again when "
                         "it is ready")
    runner = int8_model(model, fmt)
    note = (notice() or "pure-torch fallback") if fmt == SPARSE_FORMAT and not runner.native else ""
    return runner, int8_weight_bytes(model, fmt), note


def interleaved_medians(fns: dict[str, callable], rounds: int = 21, target_s: float = 2e-3) -> dict[str, float]:
    """Median seconds per call of each function: ``bench.interleaved_ratios`` over exactly ``rounds`` rounds.

    Bursts of about ``target_s`` after one untimed call, in an order shuffled per round, so machine noise
    hits all alike; no time cap and no stability target (the callers ask for a fixed number of rounds).
    """
    from .bench import interleaved_ratios

    if not fns:
        return {}
    res = interleaved_ratios(fns, next(iter(fns)), rounds=rounds, rel_iqr=None, time_cap_s=math.inf, target_s=target_s)
    return {k: v["median_s"] for k, v in res.items()}
