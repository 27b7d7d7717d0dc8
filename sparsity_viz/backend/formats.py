"""Sparse weight encodings: CSR (int16/int32 columns), BSR blocks, N:M, bitmap.

Each encoding is a small frozen dataclass built ``from_dense(weight)`` that can give
the dense matrix back (``to_dense``) and says how many bytes it occupies
(``nbytes``). Computing with them is ``ops.py``'s job; this module only encodes.

Shapes: a weight is ``(out, in)``; conv weights are flattened to
``(out, in_channels * kh * kw)`` first, which is the im2col view.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

INT16_MAX_COLS = 32767  # int16 column indices address at most this many inputs


@contextlib.contextmanager
def quiet_sparse() -> Iterator[None]:
    """Silence torch's "sparse support is in beta" / invariant-check warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
        yield


def tensor_bytes(*tensors: torch.Tensor) -> int:
    """Bytes occupied by the given tensors' elements."""
    return int(sum(t.numel() * t.element_size() for t in tensors))


@dataclass(frozen=True)
class CSR:
    """Compressed sparse rows: ``rowptr`` (out+1,) int32, ``col`` (nnz,) int16 or int32, ``val`` (nnz,)."""

    rowptr: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor
    shape: tuple[int, int]

    @classmethod
    def from_dense(cls, weight: torch.Tensor, index_dtype: torch.dtype | None = None) -> CSR:
        """Encode the nonzeros of a 2-D ``weight``; int16 columns when ``in`` allows."""
        w = weight.detach().to("cpu").contiguous()
        out, inp = w.shape
        if index_dtype is None:
            index_dtype = torch.int16 if inp <= INT16_MAX_COLS else torch.int32
        nz = w != 0
        counts = nz.sum(1, dtype=torch.int64)
        rowptr = torch.zeros(out + 1, dtype=torch.int64)
        torch.cumsum(counts, 0, out=rowptr[1:])
        cols = nz.nonzero(as_tuple=True)[1]  # row-major order = CSR order
        return cls(rowptr.to(torch.int32), cols.to(index_dtype).contiguous(), w[nz].contiguous(), (out, inp))

    @property
    def nnz(self) -> int:
        return int(self.val.numel())

    @property
    def nbytes(self) -> int:
        return tensor_bytes(self.rowptr, self.col, self.val)

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.shape, dtype=self.val.dtype)
        rows = torch.repeat_interleave(torch.arange(self.shape[0]), self.rowptr[1:].long() - self.rowptr[:-1].long())
        out[rows, self.col.long()] = self.val
        return out

    def torch_csr(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """A ``torch.sparse_csr`` tensor (int32 indices, the faster choice for torch's kernels)."""
        with quiet_sparse():
            return torch.sparse_csr_tensor(
                self.rowptr.to(device), self.col.to(torch.int32).to(device), self.val.to(device), self.shape
            )


def bsr_blocksize(shape: tuple[int, int], sizes: tuple[int, ...] = (8, 4, 2)) -> tuple[int, int] | None:
    """The largest square block in ``sizes`` dividing both dimensions, or None."""
    for b in sizes:
        if shape[0] % b == 0 and shape[1] % b == 0:
            return (b, b)
    return None


@dataclass(frozen=True)
class BSR:
    """Block sparse rows as a ``torch.sparse_bsr`` tensor (blocks of ``blocksize``)."""

    tensor: torch.Tensor
    blocksize: tuple[int, int]

    @classmethod
    def from_dense(cls, weight: torch.Tensor, blocksize: tuple[int, int] | None = None) -> BSR:
        w = weight.detach().to("cpu").contiguous()
        blocksize = blocksize or bsr_blocksize(tuple(w.shape))
        if blocksize is None:
            raise ValueError(f"No BSR block size divides the shape {tuple(w.shape)}.")
        with quiet_sparse():
            t = w.to_sparse_bsr(blocksize)
            t = torch.sparse_bsr_tensor(
                t.crow_indices().to(torch.int32), t.col_indices().to(torch.int32), t.values(), t.shape
            )
        return cls(t, blocksize)

    @property
    def nbytes(self) -> int:
        return tensor_bytes(self.tensor.crow_indices(), self.tensor.col_indices(), self.tensor.values())

    @property
    def fill(self) -> float:
        """Fraction of stored block entries that are true nonzeros."""
        vals = self.tensor.values()
        return float((vals != 0).sum()) / max(1, vals.numel())

    def to_dense(self) -> torch.Tensor:
        with quiet_sparse():
            return self.tensor.to_dense()


def nm_fits(weight: torch.Tensor, n: int, m: int) -> bool:
    """True when every group of ``m`` consecutive inputs holds at most ``n`` nonzeros."""
    out, inp = weight.shape
    if inp % m:
        return False
    return bool(((weight != 0).view(out, inp // m, m).sum(-1) <= n).all())


def nm_pattern(weight: torch.Tensor, patterns: tuple[tuple[int, int], ...] = ((1, 4), (2, 4), (2, 8), (4, 8))) -> tuple[int, int] | None:
    """The sparsest N:M pattern (lowest N/M) the weight already satisfies, or None."""
    for n, m in sorted(patterns, key=lambda p: p[0] / p[1]):
        if nm_fits(weight, n, m):
            return (n, m)
    return None


@dataclass(frozen=True)
class NM:
    """N:M compressed: ``val`` (out, in/m*n) and in-group offsets ``idx`` (uint8).

    Every group of ``m`` inputs keeps exactly ``n`` slots (unused slots hold zeros), so
    rows are regular: the format needs no row pointers and one byte per slot.
    """

    val: torch.Tensor
    idx: torch.Tensor
    n: int
    m: int
    shape: tuple[int, int]

    @classmethod
    def from_dense(cls, weight: torch.Tensor, n: int, m: int) -> NM:
        w = weight.detach().to("cpu").contiguous()
        out, inp = w.shape
        if not nm_fits(w, n, m):
            raise ValueError(f"The weight {tuple(w.shape)} does not fit a {n}:{m} pattern.")
        groups = w.view(out, inp // m, m)
        # nonzeros first (stable, so offsets ascend), then pad with zero slots
        order = torch.argsort((groups == 0).to(torch.int8), dim=-1, stable=True)[..., :n]
        val = torch.gather(groups, -1, order)
        return cls(val.reshape(out, -1).contiguous(), order.to(torch.uint8).reshape(out, -1).contiguous(), n, m, (out, inp))

    @property
    def nbytes(self) -> int:
        return tensor_bytes(self.val, self.idx)

    def columns(self) -> torch.Tensor:
        """Absolute input index of every slot, (out, in/m*n) int64."""
        out, slots = self.val.shape
        base = (torch.arange(slots) // self.n) * self.m
        return base.unsqueeze(0) + self.idx.long()

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.shape, dtype=self.val.dtype)
        out.scatter_add_(1, self.columns(), self.val)
        return out

    def to_csr(self) -> CSR:
        """CSR of the slots' nonzero values, for the CSR kernel: the padding zeros are left out, so a NaN or inf input
        reaches only the outputs a kept weight connects it to, as with ``csr-native`` (the padding used to multiply it:
        ``0 × NaN``; found by an audit)."""
        keep = self.val != 0  # (out, slots)
        rowptr = torch.zeros(self.shape[0] + 1, dtype=torch.int32)
        rowptr[1:] = keep.sum(1).cumsum(0)
        col_dtype = torch.int16 if self.shape[1] <= INT16_MAX_COLS else torch.int32
        return CSR(rowptr, self.columns()[keep].to(col_dtype), self.val[keep].contiguous(), self.shape)


@dataclass(frozen=True)
class Bitmap:
    """One bit per weight (packed, uint8) plus the nonzero values in row-major order."""

    bits: torch.Tensor
    val: torch.Tensor
    shape: tuple[int, ...]

    @classmethod
    def from_dense(cls, weight: torch.Tensor, keep: torch.Tensor | None = None) -> Bitmap:
        w = weight.detach().to("cpu").contiguous()
        keep = (w != 0) if keep is None else keep.to("cpu").bool()
        bits = torch.from_numpy(np.packbits(keep.flatten().numpy()))
        return cls(bits, w[keep].contiguous(), tuple(w.shape))

    @property
    def nbytes(self) -> int:
        return tensor_bytes(self.bits, self.val)

    def keep(self) -> torch.Tensor:
        n = int(np.prod(self.shape))
        return torch.from_numpy(np.unpackbits(self.bits.numpy(), count=n).astype(bool)).view(self.shape)

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.shape, dtype=self.val.dtype)
        out[self.keep()] = self.val
        return out
