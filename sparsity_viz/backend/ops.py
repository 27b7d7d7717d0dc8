"""Runnable layer operators, one per (format, device), on feature-major activations.

Every Linear operator maps ``X (in, B) -> Y (out, B)`` (features x batch, the layout
the native kernel tiles over) with the bias and an optional ReLU fused. Keeping the
whole MLP feature-major means one transpose at the input and one (small) at the
output. Operators whose ``native`` flag is set are run by ``run_chain`` in a single
call into the C++ extension, so consecutive native layers cost one Python call.

Formats (CPU): ``dense`` (torch addmm, MKL/oneDNN), ``dense-native`` (the C++ kernel,
useful for tiny batches inside a fused chain), ``csr-torch`` (torch.sparse CSR,
int32 indices, ``addmm(bias, csr, X)``), ``bsr-torch`` (torch.sparse BSR),
``csr-native`` (int16 CSR kernel), ``nm-native`` (N:M slots through the CSR kernel).
CUDA formats live in ``cuda.py``; the activation-sparse ones (``act-dense-native``,
``act-csc-native``, ``chain_kind = "act"``) in ``act_sparse.py``.
"""

from __future__ import annotations

import copy
import pickle

import torch
import torch.nn.functional as F
from torch import nn

from ..masks import count_true  # numpy's nonzero count: also a weight's nonzeros
from . import kernels
from .formats import BSR, CSR, NM, quiet_sparse, tensor_bytes

EMPTY_I32 = torch.empty(0, dtype=torch.int32)
EMPTY_F32 = torch.empty(0, dtype=torch.float32)
PANEL_MIN_NNZ = 4  # column panels only when a row has >= this many nonzeros per panel on average
PANEL_MAX = 224  # widest column panel, in input features (<= 256: uint16 byte offsets)


def panel_width(in_features: int) -> int:
    """Input features per column panel: the fewest panels of at most ``PANEL_MAX``, all (but the last) equally wide.

    Fewer panels mean fewer passes over the partial sums; equal widths leave no thin last panel that costs a
    whole pass for a few nonzeros per row. On a Zen 4 (32 KB L1d) whole chains ran in 0.98-1.00x the time of
    fixed 160-feature panels (LeNet-300-100's compacted 545 and 276 inputs: panels of 182 and 138 instead of
    160 + 160 + 160 + 65 and 160 + 116), single layers in 0.96-1.02x (benchmarks/panel_widths.py); fixed widths
    of 64-128 had run 1.03-1.26x slower than 160 there, 192-256 the same.
    """
    panels = max(1, -(-in_features // PANEL_MAX))
    return max(1, -(-in_features // panels))


class LinearOp:
    """Base class: ``forward(X (in, B)) -> (out, B)``; ``nbytes`` of the weight encoding."""

    format: str = "?"
    native: bool = False
    chain_kind: str | None = None  # ops of one kind next to each other run as one native chain
    uses_input_sparsity: bool = False  # its time depends on the share of zero inputs

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, relu: bool = False, count: bool = True):
        self.out_features, self.in_features = int(weight.shape[0]), int(weight.shape[1])
        self.relu = relu
        self._nnz = count_true(weight) if count else None  # None: counted from self.weight when asked
        b = bias.detach() if bias is not None else None
        self.bias = b.contiguous().float() if b is not None else None

    @property
    def nnz(self) -> int:
        """Nonzero weights (counted once, when first asked)."""
        if self._nnz is None:
            self._nnz = count_true(self.weight)
        return self._nnz

    @nnz.setter
    def nnz(self, value: int) -> None:
        self._nnz = int(value)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.out_features, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (in, B) -> (out, B)
        raise NotImplementedError

    def _finish(self, y: torch.Tensor) -> torch.Tensor:
        return y.relu_() if self.relu else y

    def _bias_col(self) -> torch.Tensor | None:
        return self.bias.unsqueeze(1) if self.bias is not None else None

    nbytes: int = 0

    def __deepcopy__(self, memo: dict) -> LinearOp:
        """A deep copy by pickling: ``copy.deepcopy`` of a torch sparse CSR or BSR tensor raises (no storage to
        copy) where pickling works, and every compiled model with a ``csr-torch`` or ``bsr-torch`` layer (or an
        im2col one) was uncopyable. Native ops pickle without their chains, rebuilt on first use."""
        other = pickle.loads(pickle.dumps(self))
        memo[id(self)] = other
        return other

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.out_features}x{self.in_features}, nnz={self.nnz}, relu={self.relu})"


class DenseOp(LinearOp):
    """Dense matmul through torch (MKL / oneDNN): ``addmm(bias, W, X)``."""

    format = "dense"

    def __init__(self, weight, bias, relu=False, device: torch.device | str = "cpu"):
        super().__init__(weight, bias, relu, count=False)  # it keeps the weight: nnz is counted when asked
        self.weight = weight.detach().to(device).contiguous()
        self.bias = self.bias.to(device) if self.bias is not None else None
        self.nbytes = tensor_bytes(self.weight)

    def forward(self, x):
        b = self._bias_col()
        y = torch.mm(self.weight, x) if b is None else torch.addmm(b, self.weight, x)
        return self._finish(y)


class TorchCSROp(LinearOp):
    """torch.sparse CSR (int32 indices) with the bias fused by ``addmm``; runs on CPU or CUDA."""

    format = "csr-torch"

    def __init__(self, weight, bias, relu=False, device: torch.device | str = "cpu"):
        super().__init__(weight, bias, relu)
        self.csr = CSR.from_dense(weight, index_dtype=torch.int32)
        self.weight = self.csr.torch_csr(device)
        self.bias = self.bias.to(device) if self.bias is not None else None
        self.nbytes = self.csr.nbytes

    def forward(self, x):
        b = self._bias_col()
        with quiet_sparse():
            y = torch.mm(self.weight, x) if b is None else torch.addmm(b, self.weight, x)
        return self._finish(y)


class TorchBSROp(LinearOp):
    """torch.sparse BSR (square blocks dividing both dimensions)."""

    format = "bsr-torch"

    def __init__(self, weight, bias, relu=False, blocksize: tuple[int, int] | None = None):
        super().__init__(weight, bias, relu)
        self.bsr = BSR.from_dense(weight, blocksize)
        self.weight = self.bsr.tensor
        self.nbytes = self.bsr.nbytes

    def forward(self, x):
        b = self._bias_col()
        with quiet_sparse():
            y = torch.mm(self.weight, x) if b is None else torch.addmm(b, self.weight, x)
        return self._finish(y)


class NativeOp(LinearOp):
    """Base of the C++-kernel operators: a layer dict for ``kernels.chain_forward``."""

    native = True
    chain_kind = "native"

    def __init__(self, weight, bias, relu=False, threads: int = 1, tile: int = 64):
        super().__init__(weight, bias, relu)
        self.threads = int(threads)
        self.tile = int(tile)
        self._chain = None

    def layer(self) -> dict:
        raise NotImplementedError

    def __getstate__(self):  # the native chain objects and column panels (uint16) are rebuilt on demand
        state = dict(self.__dict__)
        state["_chain"] = None
        state.pop("_group_chains", None)
        if "_panels" in state:
            state["_panels"] = None
        return state

    def variant(self, threads: int, tile: int) -> NativeOp:
        """This op run on ``threads`` threads with ``tile``-sample tiles, sharing its encoded weights (a guard
        switching between 1 and N threads then reads the same weights, already in cache)."""
        other = copy.copy(self)  # (through __getstate__: without the chain and the panels)
        other.threads, other.tile = int(threads), int(tile)
        if hasattr(self, "_panels") and (other.tile < 32) == (self.tile < 32):
            other._panels = self.panels()  # panels serve tiles >= 32 only; else the variant decides for itself
        return other

    @staticmethod
    def make_chain(layers: list[dict], in_features: int):
        return kernels.make_chain(layers, in_features)

    def chain(self):
        """This op as a validated native chain (built once; one small call per forward)."""
        if self._chain is None:
            self._chain = self.make_chain([self.layer()], self.in_features)
        return self._chain

    def forward(self, x):
        return self.chain().forward(x, False)


class NativeCSROp(NativeOp):
    """The int16-column CSR kernel (batch-tiled, bias + ReLU fused; grouped column panels for tiles >= 32)."""

    format = "csr-native"

    def __init__(self, weight, bias, relu=False, threads=1, tile=64):
        super().__init__(weight, bias, relu, threads, tile)
        self.csr = CSR.from_dense(weight)
        self.nbytes = self.csr.nbytes
        self._panels = None

    def panels(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Column panels grouped by count for 64- and 32-sample tiles (``kernels.panelize``; in memory, not stored).

        Empty (the plain CSR path) for tiles < 32 and where a row has fewer than ``PANEL_MIN_NNZ``
        nonzeros per panel on average: then the partial sums' round trips between panels cost
        more than the panel's L1 reuse saves (99 % sparse layers).
        """
        if self._panels is None:
            pw = panel_width(self.in_features)
            npan = -(-self.in_features // pw)
            if self.tile < 32 or (npan > 1 and self.nnz < PANEL_MIN_NNZ * self.out_features * npan):
                self._panels = (EMPTY_I32, EMPTY_I32, EMPTY_F32, 0)
            else:
                self._panels = (*kernels.panelize(self.csr.rowptr, self.csr.col, self.csr.val, self.in_features, pw),
                                pw)
        return self._panels

    def layer(self):
        prow, pcol, pval, pw = self.panels()
        return {"rowptr": self.csr.rowptr, "col": self.csr.col, "val": self.csr.val,
                "bias": self.bias if self.bias is not None else EMPTY_F32,
                "relu": self.relu, "threads": self.threads, "tile": self.tile,
                "prow": prow, "pcol": pcol, "pval": pval, "pw": pw}


class NativeDenseOp(NativeOp):
    """The same kernel over a dense weight: no index loads, no BLAS call overhead."""

    format = "dense-native"

    def __init__(self, weight, bias, relu=False, threads=1, tile=64):
        super().__init__(weight, bias, relu, threads, tile)
        self.weight = weight.detach().float().contiguous()
        self.nbytes = tensor_bytes(self.weight)

    def layer(self):
        return {"rowptr": EMPTY_I32, "col": EMPTY_I32, "val": self.weight,
                "bias": self.bias if self.bias is not None else EMPTY_F32,
                "relu": self.relu, "threads": self.threads, "tile": self.tile}


class NativeNMOp(NativeCSROp):
    """N:M compressed weights; computed by the CSR kernel over the slots' nonzero values (``NM.to_csr``)."""

    format = "nm-native"

    def __init__(self, weight, bias, relu=False, threads=1, tile=64, n: int = 2, m: int = 4):
        NativeOp.__init__(self, weight, bias, relu, threads, tile)
        self.nm = NM.from_dense(weight, n, m)
        self.csr = self.nm.to_csr()
        self._panels = None
        self.nbytes = self.nm.nbytes  # what is stored; the kernel's int16 view is derived

    @property
    def pattern(self) -> str:
        return f"{self.nm.n}:{self.nm.m}"


def _chain_for(group: list[LinearOp]):
    """The native chain of consecutive ops of one ``chain_kind``, built once and kept on the first op."""
    if len(group) == 1:
        return group[0].chain()
    cache = group[0].__dict__.setdefault("_group_chains", {})
    key = tuple(id(op) for op in group)
    hit = cache.get(key)
    if hit is None:
        hit = (tuple(group), group[0].make_chain([op.layer() for op in group], group[0].in_features))
        cache[key] = hit
    return hit[1]


def run_chain(ops: list[LinearOp], x: torch.Tensor, batch_major: bool = False) -> torch.Tensor:
    """Run ``ops`` in order; consecutive ops of one ``chain_kind`` go to their C++ kernel in one call.

    ``x`` is feature-major ``(in, B)``, or batch-major ``(B, in)`` when ``batch_major``.
    Returns feature-major ``(out, B)``.
    """
    i = 0
    while i < len(ops):
        kind = ops[i].chain_kind
        if kind is not None:
            j = i
            while j < len(ops) and ops[j].chain_kind == kind:
                j += 1
            x = _chain_for(ops[i:j]).forward(x, batch_major)
            i = j
        else:
            if batch_major:
                x = x.t()
            x = ops[i].forward(x)
            i += 1
        batch_major = False
    return x.t() if batch_major else x


class SparseLinear(nn.Module):
    """Drop-in ``nn.Linear`` replacement running one ``LinearOp`` (batch-major in and out)."""

    def __init__(self, op: LinearOp):
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])  # (B, in)
        y = run_chain([self.op], x2, batch_major=True)  # (out, B)
        return y.t().reshape(*lead, self.op.out_features)

    def extra_repr(self) -> str:
        return f"{self.op.format}, {self.op.out_features}x{self.op.in_features}, nnz={self.op.nnz}"


def check_conv_input(x: torch.Tensor, channels: int) -> None:
    """``ValueError`` unless ``x`` is ``(N, channels, H, W)``, as ``nn.Conv2d`` refuses it (the sparse paths read
    only the channels their taps name, so a wider input ran)."""
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(f"the convolution takes input (N, {channels}, H, W), got shape {tuple(x.shape)}.")


class SparseConv2d(nn.Module):
    """``nn.Conv2d`` through im2col: unfold -> (C*kh*kw, N*L) -> LinearOp -> (N, out, Ho, Wo)."""

    def __init__(self, conv: nn.Conv2d, op: LinearOp):
        super().__init__()
        if conv.groups != 1 or isinstance(conv.padding, str):
            raise ValueError("im2col path supports groups=1 and numeric padding only")
        self.kernel_size, self.stride = conv.kernel_size, conv.stride
        self.padding, self.dilation = conv.padding, conv.dilation
        self.in_channels = conv.in_channels
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_conv_input(x, self.in_channels)
        n, _, h, w = x.shape
        cols = F.unfold(x, self.kernel_size, self.dilation, self.padding, self.stride)  # (N, K, L)
        k, L = cols.shape[1], cols.shape[2]
        xf = cols.transpose(0, 1).reshape(k, n * L)  # (K, N*L) feature-major
        y = run_chain([self.op], xf)  # (out, N*L)
        ho = (h + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - self.dilation[1] * (self.kernel_size[1] - 1) - 1) // self.stride[1] + 1
        out = self.op.out_features  # not -1: at batch 0 the view is ambiguous
        return y.view(out, n, L).transpose(0, 1).reshape(n, out, ho, wo)

    def extra_repr(self) -> str:
        return f"im2col {self.op.format}, {self.op.out_features}x{self.op.in_features}, nnz={self.op.nnz}"
