"""CUDA paths: CSR through torch.sparse (cuSPARSE) and 2:4 through semi-structured sparsity.

``to_sparse_semi_structured`` needs compute capability >= 8.0, fp16/bf16 weights
(fp32 only through CUTLASS), a weight that is already 2:4 along the input
dimension, and minimum / multiple shapes (CUTLASS fp16: rows % 32, cols % 64).
``semi_structured_status`` says, in one line, why a layer cannot use it. On a
machine without CUDA every function here answers with a reason and nothing raises, and the
operator classes raise ``ValueError`` with that reason (the dispatcher falls back on it).
"""

from __future__ import annotations

import torch

from .formats import nm_fits
from .ops import DenseOp, LinearOp, TorchCSROp

SEMI_DTYPE = torch.float16
MIN_SHAPE = {torch.float16: (32, 64), torch.bfloat16: (32, 64)}  # CUTLASS sparse (rows, cols) multiples
DENSE_MULTIPLE = 8  # the dense operand's rows and columns must be multiples of this


def cuda_status() -> tuple[bool, str]:
    """``(usable, reason)`` for the CUDA paths on this machine."""
    if not torch.cuda.is_available():
        return False, f"CUDA paths skipped: no CUDA GPU visible to torch {torch.__version__} (CPU-only build or no device)."
    return True, f"CUDA: {torch.cuda.get_device_name(0)}"


def semi_structured_status(weight: torch.Tensor, dtype: torch.dtype = SEMI_DTYPE) -> tuple[bool, str]:
    """``(usable, reason)`` for 2:4 semi-structured sparsity on this weight."""
    ok, why = cuda_status()
    if not ok:
        return False, why
    major, minor = torch.cuda.get_device_capability(0)
    if major < 8:
        return False, f"2:4 skipped: compute capability {major}.{minor} < 8.0."
    if dtype not in MIN_SHAPE:
        return False, f"2:4 skipped: dtype {dtype} unsupported (fp16/bf16)."
    rows, cols = weight.shape
    mr, mc = MIN_SHAPE[dtype]
    if rows % mr or cols % mc:
        return False, f"2:4 skipped: shape {rows}x{cols} is not a multiple of ({mr}, {mc})."
    if cols % DENSE_MULTIPLE:
        return False, f"2:4 skipped: input features {cols} not a multiple of {DENSE_MULTIPLE}."
    if not nm_fits(weight, 2, 4):
        return False, "2:4 skipped: the weight is not 2:4 sparse along its inputs."
    try:
        from torch.sparse import to_sparse_semi_structured  # noqa: F401
    except ImportError:
        return False, "2:4 skipped: torch.sparse.to_sparse_semi_structured is missing in this torch."
    return True, "2:4 semi-structured (fp16)"


def _require_cuda() -> None:
    """``ValueError`` with ``cuda_status``'s reason where there is no CUDA GPU (torch's own error was an
    ``AssertionError: Torch not compiled with CUDA enabled``; an audit)."""
    ok, why = cuda_status()
    if not ok:
        raise ValueError(why)


class CudaDenseOp(DenseOp):
    """Dense cuBLAS matmul."""

    format = "dense-cuda"

    def __init__(self, weight, bias, relu=False, device="cuda"):
        _require_cuda()
        super().__init__(weight, bias, relu, device=device)


class CudaCSROp(TorchCSROp):
    """torch.sparse CSR on the GPU (cuSPARSE SpMM)."""

    format = "csr-cuda"

    def __init__(self, weight, bias, relu=False, device="cuda"):
        _require_cuda()
        super().__init__(weight, bias, relu, device=device)


class Semi24Op(LinearOp):
    """2:4 semi-structured weight (fp16) x feature-major activations, padded to the
    dense operand's multiple; returns float32 like every other operator."""

    format = "2:4-cuda"

    def __init__(self, weight, bias, relu=False, device="cuda", dtype: torch.dtype = SEMI_DTYPE):
        super().__init__(weight, bias, relu)
        ok, why = semi_structured_status(weight, dtype)
        if not ok:
            raise ValueError(why)
        from torch.sparse import to_sparse_semi_structured

        self.dtype = dtype
        self.weight = to_sparse_semi_structured(weight.detach().to(device=device, dtype=dtype).contiguous())
        self.bias = self.bias.to(device) if self.bias is not None else None
        out, inp = weight.shape
        self.nbytes = out * inp // 2 * torch.finfo(dtype).bits // 8 + out * inp // 8  # values + 2-bit metadata

    def forward(self, x):  # (in, B) -> (out, B)
        b = x.shape[1]
        pad = (-b) % DENSE_MULTIPLE
        xh = x.to(self.dtype)
        if pad:
            xh = torch.nn.functional.pad(xh, (0, pad))
        y = torch.mm(self.weight, xh.contiguous())[:, :b].float()
        if self.bias is not None:
            y = y + self.bias.unsqueeze(1)
        return self._finish(y)
