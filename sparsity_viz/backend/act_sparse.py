"""Activation sparsity in the backend: layers that skip the zero entries of their input.

After a ReLU most activations are exactly zero, so at batch 1 a layer ``y = W x + b`` only
needs the columns of ``W`` whose input is nonzero. ``csrc/act_kernels.cpp`` (a second
extension built by ``kernels.Extension``, once per machine, serial) stores the weight by
input feature:

    ``act-dense-native``  ``W^T`` (in, out padded to 16): each nonzero input adds one
                          contiguous row (an axpy); skips zero inputs only;
    ``act-csc-native``    CSC of ``W`` (= CSR of ``W^T``, int16 row indices when out <= 32767):
                          each nonzero input walks only its nonzero weights (sparse x sparse).

For batches of 2..16 a ``mode`` picks per-sample lists of nonzero inputs (``"sample"``) or
one list of the inputs nonzero in any sample, run on 16-lane vectors (``"union"``); the
dispatcher times both. These formats only pay off on inputs that really are sparse, so
``dispatch.choose`` times them on the layer's real input activations (``example``) and
records the input zero share (see docs/backend.md, "Activation sparsity").

``make_op`` never waits for the first build: while the kernel is not built the formats are
skipped with the reason "being built" and a background build starts.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import kernels
from .formats import CSR, tensor_bytes
from .ops import LinearOp

SOURCE = Path(__file__).resolve().parent / "csrc" / "act_kernels.cpp"
EXTENSION = kernels.Extension(SOURCE, "sparsity_viz_act", "native activation-sparse kernels")
ACT_FORMATS = ("act-dense-native", "act-csc-native")
MODES = {"sample": 0, "union": 1}
LANES = 16  # union mode packs the batch into one 16-float vector (B <= 16)
EMPTY_I32 = torch.empty(0, dtype=torch.int32)
EMPTY_F32 = torch.empty(0, dtype=torch.float32)


def available(force_fallback: bool = False) -> bool:
    """True when the kernel is usable (compiles it on first call: about a minute)."""
    return EXTENSION.available(force_fallback)


def notice() -> str | None:
    """Why the kernel is not in use, or None."""
    return EXTENSION.notice()


def unavailable_reason(force_fallback: bool = False) -> str | None:
    """None when the kernel can run now; otherwise why not (``Extension.unavailable_reason``: never waits)."""
    return EXTENSION.unavailable_reason(force_fallback)


def zero_share(x: torch.Tensor) -> float:
    """Share of exactly-zero entries of ``x`` (0.0 for an empty tensor)."""
    return float((x == 0).float().mean()) if x.numel() else 0.0


def zero_bucket(share: float | None, step: float = 0.05) -> float | None:
    """``share`` rounded to ``step`` (the memoised-timing key), None stays None."""
    return None if share is None else round(round(share / step) * step, 4)


class ActOp(LinearOp):
    """Base of the activation-sparse operators: one ``ActChain`` layer; consecutive ones fuse."""

    chain_kind = "act"
    uses_input_sparsity = True

    def __init__(self, weight, bias, relu=False, mode: str = "sample"):
        super().__init__(weight, bias, relu)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        self._chain = None

    def layer(self) -> dict:
        """This layer as the native chain takes it; each of the two storage layouts gives its own."""
        raise NotImplementedError  # abstract: ActDenseOp and ActCSCOp override it

    def __getstate__(self):  # native chains are rebuilt on demand (not picklable)
        state = dict(self.__dict__)
        state["_chain"] = None
        state.pop("_group_chains", None)
        return state

    @staticmethod
    def make_chain(layers: list[dict], in_features: int):
        """The validated native chain of ``layers`` (one small call per forward)."""
        mod = EXTENSION.load()
        if mod is None:
            raise RuntimeError(notice() or "the activation-sparse kernel is not available")
        return mod.ActChain(int(in_features), [L["colptr"] for L in layers], [L["row"] for L in layers],
                            [L["val"] for L in layers], [L["bias"] for L in layers],
                            [bool(L["relu"]) for L in layers], [int(L["out"]) for L in layers],
                            [MODES[L["mode"]] for L in layers])

    def chain(self):
        if self._chain is None:
            self._chain = self.make_chain([self.layer()], self.in_features)
        return self._chain

    def forward(self, x):  # (in, B) -> (out, B)
        return self.chain().forward(x, False)

    def _common(self) -> dict:
        return {"bias": self.bias if self.bias is not None else EMPTY_F32, "relu": self.relu,
                "out": self.out_features, "mode": self.mode}


class ActDenseOp(ActOp):
    """Dense ``W^T`` rows, one axpy per nonzero input (skips zero inputs)."""

    format = "act-dense-native"

    def __init__(self, weight, bias, relu=False, mode="sample"):
        super().__init__(weight, bias, relu, mode)
        w = weight.detach().float().cpu()
        pad = -(-self.out_features // LANES) * LANES
        self.wt = torch.zeros(self.in_features, pad)  # (in, out padded) = W^T
        self.wt[:, : self.out_features] = w.t()
        self.nbytes = tensor_bytes(w)  # the stored weight; the padding is an in-memory layout

    def layer(self):
        return {"colptr": EMPTY_I32, "row": EMPTY_I32, "val": self.wt, **self._common()}


class ActCSCOp(ActOp):
    """CSC of ``W``: each nonzero input adds only its nonzero weights (sparse x sparse)."""

    format = "act-csc-native"

    def __init__(self, weight, bias, relu=False, mode="sample"):
        super().__init__(weight, bias, relu, mode)
        self.csc = CSR.from_dense(weight.detach().float().cpu().t())  # rows = inputs, cols = outputs
        self.nbytes = self.csc.nbytes

    def layer(self):
        return {"colptr": self.csc.rowptr, "row": self.csc.col, "val": self.csc.val, **self._common()}


def act_op(fmt: str, weight, bias, relu=False, mode: str = "sample") -> ActOp:
    """The operator of activation-sparse format ``fmt``."""
    return (ActDenseOp if fmt == "act-dense-native" else ActCSCOp)(weight, bias, relu, mode)
