"""Honest size accounting: dense fp32 -> pruned CSR -> quantized codes -> Huffman, per layer.

Every byte count in the quantized and Huffman columns is ``len()`` of a byte string
this module really produces (and ``checkpoint.py`` stores and decodes), not a formula:

* ``dense_fp32_bytes``: 4 bytes per weight.
* ``sparse_csr_bytes``: ``backend.formats.CSR`` of the pruned fp32 weight over its
  ``(out, rest)`` view: fp32 values, int16 columns (int32 past 32,767 inputs), int32 row
  pointers; the bytes of those tensors.
* ``quantized_bytes``: Deep Compression's storage (Han et al. 2016, section 2 and Fig. 2):
  the code of every stored entry packed at ``bits`` bits, its *relative index* packed
  at ``index_bits`` bits, and the codebook (uniform methods: float32 scale + uint8 zero
  point per tensor or channel; k-means / ternary: the float32 levels).
* ``huffman_bytes``: the same two streams Huffman-coded (``huffman.py``), plus both code
  tables and the codebook.

**Relative indices** (Han et al.'s scheme): the stored entries are listed in row-major
order of the flattened weight, and each stores the number of zeros skipped since the
previous one (its *gap*) in ``index_bits`` bits, so no row pointers are needed. A gap
larger than ``2**index_bits - 1`` is bridged by *filler* entries: an explicit zero
stored with the largest gap (each filler covers ``2**index_bits`` positions), exactly
the paper's "zero padding" when a span exceeds the bound. Fillers cost a code and an
index each and are counted. The paper encodes the difference "in 8 bits for conv layer
and 5 bits for fc layer"; those are the defaults here (``index_bits`` overrides).

Totals count the prunable weights only (biases are a few hundred floats, kept fp32 in
every format); ``export_sizes`` in ``onnx_export.py`` gives whole-file sizes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..backend.formats import CSR
from ..layers import prunable_weights
from ..masks import Masks, validate_masks
from . import huffman

FC_INDEX_BITS = 5  # Han et al. 2016: "8 bits for conv layer and 5 bits for fc layer"
CONV_INDEX_BITS = 8
MAX_INDEX_BITS = 15  # a filler's gap (2**bits - 1) must be a symbol the Huffman table can hold (huffman.MAX_SYMBOL)
FLOAT_BYTES = 4

SIZE_COLUMNS = [
    "layer", "shape", "weights", "nonzeros", "stored", "fillers", "bits", "index_bits",
    "dense_fp32_bytes", "sparse_csr_bytes", "quantized_bytes", "huffman_bytes",
    "csr_ratio", "quantized_ratio", "huffman_ratio",
]


def pack_bits(values: np.ndarray, width: int) -> bytes:
    """Unsigned integers packed at ``width`` bits each, MSB first, zero-padded to a byte."""
    values = np.asarray(values, dtype=np.int64).reshape(-1)
    if values.size == 0:
        return b""
    if not 1 <= width <= 32:
        raise ValueError(f"pack width must be 1..32 bits, got {width}.")
    if int(values.min()) < 0 or int(values.max()) >= 1 << width:
        raise ValueError(f"values {int(values.min())}..{int(values.max())} do not fit in {width} bits.")
    shifts = np.arange(width - 1, -1, -1, dtype=np.int64)
    bits = ((values[:, None] >> shifts) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


def unpack_bits(data: bytes, width: int, count: int) -> np.ndarray:
    """Inverse of ``pack_bits``."""
    bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
    if bits.size < count * width:
        raise ValueError(f"{len(data)} bytes hold fewer than {count} values of {width} bits.")
    bits = bits[: count * width].reshape(count, width).astype(np.int64)
    return (bits << np.arange(width - 1, -1, -1, dtype=np.int64)).sum(1)


@dataclass(frozen=True)
class RelativeIndex:
    """Stored entries of a flattened tensor as gaps (zeros skipped before each), fillers included."""

    gaps: np.ndarray  # (entries,) int64, each < 2**index_bits
    positions: np.ndarray  # (entries,) flat positions of the stored entries (fillers at zero positions)
    fillers: int
    index_bits: int


def relative_index(keep: torch.Tensor | np.ndarray, index_bits: int) -> RelativeIndex:
    """Han et al.'s relative index of the True entries of ``keep`` (row-major over the whole tensor)."""
    if not 1 <= index_bits <= MAX_INDEX_BITS:
        raise ValueError(f"index_bits must be 1..{MAX_INDEX_BITS}, got {index_bits}.")
    flat = np.asarray(keep.detach().cpu() if isinstance(keep, torch.Tensor) else keep, dtype=bool).reshape(-1)
    pos = np.flatnonzero(flat).astype(np.int64)
    raw = np.diff(pos, prepend=-1) - 1  # zeros skipped before each kept entry
    span = 1 << index_bits  # positions one filler covers (max gap + its own slot)
    fill = raw // span
    gaps = np.full(int(fill.sum()) + pos.size, span - 1, dtype=np.int64)
    last = np.cumsum(fill + 1) - 1  # where each real entry lands in the stream
    gaps[last] = raw % span
    return RelativeIndex(gaps, positions_from_gaps(gaps), int(fill.sum()), index_bits)


def positions_from_gaps(gaps: np.ndarray) -> np.ndarray:
    """Flat positions of the stored entries given their gaps (the decoder's side)."""
    return np.cumsum(np.asarray(gaps, dtype=np.int64) + 1) - 1


@dataclass(frozen=True)
class EncodedLayer:
    """One quantized weight as Deep Compression stores it: fixed-width and Huffman streams."""

    shape: tuple[int, ...]
    entries: int  # stored entries (nonzeros + fillers)
    fillers: int
    bits: int
    index_bits: int
    codes_packed: bytes  # codes at ``bits`` bits
    gaps_packed: bytes  # relative indices at ``index_bits`` bits
    codes_huffman: bytes
    codes_table: huffman.CodeTable
    gaps_huffman: bytes
    gaps_table: huffman.CodeTable
    codebook: bytes  # the codebook tensors' bytes (``codebook_tensors``)

    @property
    def quantized_bytes(self) -> int:
        return len(self.codes_packed) + len(self.gaps_packed) + len(self.codebook)

    @property
    def huffman_bytes(self) -> int:
        return (len(self.codes_huffman) + self.codes_table.nbytes + len(self.gaps_huffman) + self.gaps_table.nbytes
                + len(self.codebook))


def default_index_bits(weight: torch.Tensor) -> int:
    """8 bits for a conv weight (rank 4), 5 for a fully connected one (Han et al. 2016)."""
    return CONV_INDEX_BITS if weight.dim() > 2 else FC_INDEX_BITS


def encode_layer(qt, index_bits: int | None = None) -> EncodedLayer:
    """Encode a ``QuantizedTensor``: the entries that dequantize to nonzero, plus fillers."""
    keep = qt.dequantize() != 0
    index_bits = default_index_bits(qt.codes) if index_bits is None else int(index_bits)
    rel = relative_index(keep, index_bits)
    codes = qt.codes.detach().cpu().reshape(-1).numpy()[rel.positions]  # a filler takes its (zero) entry's code
    codes_h, codes_t = huffman.encode(codes)
    gaps_h, gaps_t = huffman.encode(rel.gaps)
    return EncodedLayer(
        shape=tuple(qt.codes.shape), entries=int(rel.gaps.size), fillers=rel.fillers, bits=int(qt.bits),
        index_bits=index_bits, codes_packed=pack_bits(codes, code_width(qt)), gaps_packed=pack_bits(rel.gaps, index_bits),
        codes_huffman=codes_h, codes_table=codes_t, gaps_huffman=gaps_h, gaps_table=gaps_t,
        codebook=b"".join(t.numpy().tobytes() for t in codebook_tensors(qt).values()),
    )


def codebook_tensors(qt) -> dict[str, torch.Tensor]:
    """What a decoder needs besides the codes: ``scale`` (float32) + ``zero_point`` (uint8) per
    tensor or channel for the uniform methods, else the float32 ``levels``."""
    if qt.scale is not None and qt.zero_point is not None and qt.levels.shape[-1] == 2**qt.bits:
        zero = qt.zero_point.detach().cpu().reshape(-1)
        if int(zero.min()) >= 0 and int(zero.max()) <= 255:
            return {"scale": qt.scale.detach().cpu().to(torch.float32).reshape(-1).contiguous(),
                    "zero_point": zero.to(torch.uint8).contiguous()}
    return {"levels": qt.levels.detach().cpu().to(torch.float32).contiguous()}


def uniform_levels(scale: torch.Tensor, zero_point: torch.Tensor, bits: int) -> torch.Tensor:
    """``(groups, 2**bits)`` levels ``(code - zero_point) * scale``, as ``quantization.base.uniform_quantize``."""
    grid = torch.arange(2**bits, dtype=torch.int64)
    return (grid.unsqueeze(0) - zero_point.to(torch.int64).unsqueeze(1)).to(torch.float32) * scale.unsqueeze(1)


def code_width(qt) -> int:
    """Bits that hold every code of ``qt``: its ``bits``, or more if the codebook is larger."""
    return max(int(qt.bits), max(1, math.ceil(math.log2(max(2, int(qt.levels.shape[-1]))))))


def _weights(model: nn.Module, masks: Masks | None) -> dict[str, torch.Tensor]:
    if masks is not None:
        validate_masks(model, masks)
    out = {}
    for pw in prunable_weights(model):  # every prunable weight, attention's in_proj_weight too
        w = pw.param.detach().cpu().float()
        if masks is not None and pw.key in masks:
            w = w * masks[pw.key].to(w.dtype)
        out[pw.key] = w
    return out


def size_table(model: nn.Module, masks: Masks | None = None, quantized=None,
               index_bits: int | Mapping[str, int] | None = None) -> pd.DataFrame:
    """Bytes of every prunable weight in each storage format, per layer plus a ``total`` row.

    Args:
        model: the (pruned) fp32 model; ``masks`` are applied to it when given.
        quantized: a ``QuantizedModel``; without it the quantized and Huffman columns are NaN.
        index_bits: relative-index width (one int or per weight name); default 5 fc / 8 conv.

    Ratios are ``dense_fp32_bytes / bytes`` (higher = smaller).
    """
    weights = _weights(model, masks)
    tensors = dict(quantized.tensors) if quantized is not None else {}
    missing = sorted(set(tensors) - set(weights))
    if missing:
        raise ValueError(f"quantized tensors name no prunable weight of the model: {', '.join(missing)}.")
    rows = []
    for key, w in weights.items():
        dense = w.numel() * FLOAT_BYTES
        csr = CSR.from_dense(w.reshape(w.shape[0], -1)).nbytes
        row = {"layer": key.removesuffix(".weight"), "shape": "x".join(map(str, w.shape)), "weights": w.numel(),
               "nonzeros": int((w != 0).sum()), "dense_fp32_bytes": dense, "sparse_csr_bytes": csr}
        if key in tensors:
            bits = index_bits.get(key) if isinstance(index_bits, Mapping) else index_bits
            enc = encode_layer(tensors[key], bits)
            row.update(stored=enc.entries, fillers=enc.fillers, bits=enc.bits, index_bits=enc.index_bits,
                       quantized_bytes=enc.quantized_bytes, huffman_bytes=enc.huffman_bytes)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=SIZE_COLUMNS)
    total = {"layer": "total", "shape": ""}
    for col in ("weights", "nonzeros", "dense_fp32_bytes", "sparse_csr_bytes"):
        total[col] = int(frame[col].sum())
    for col in ("stored", "fillers", "quantized_bytes", "huffman_bytes"):
        total[col] = int(frame[col].sum()) if frame[col].notna().all() and len(frame) else float("nan")
    for col in ("bits", "index_bits"):  # the total shows a width only when every layer shares it
        values = frame[col].dropna().unique()
        total[col] = int(values[0]) if len(values) == 1 and frame[col].notna().all() else float("nan")
    frame = pd.concat([frame, pd.DataFrame([total], columns=SIZE_COLUMNS)], ignore_index=True)
    for col, src in (("csr_ratio", "sparse_csr_bytes"), ("quantized_ratio", "quantized_bytes"),
                     ("huffman_ratio", "huffman_bytes")):
        frame[col] = frame["dense_fp32_bytes"] / frame[src].astype(float)
    return frame
