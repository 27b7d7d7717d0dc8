"""Sparse checkpoints: a pruned model saved compactly in safetensors, loaded back bit-exact.

Every floating-point tensor of rank >= 2 is stored in the smallest of three
encodings (per tensor, reported): ``dense``; ``csr`` (int32 row pointers, int16 or
int32 columns, values) over the ``(out, rest)`` view; ``bitmap`` (one bit per entry,
packed, plus values). Zeros are restored as +0.0; where the pruned model held -0.0
(masking by multiplication leaves ``-w * 0``), a packed sign bitmap restores them, so
the loaded weights are bit-identical. Everything else (biases, buffers) is dense.
The safetensors metadata holds the layout and, when known, the architecture.

Reading trusts nothing in the file: every failure, from bytes that are not
safetensors to a layout that does not match its tensors, is one ``CheckpointError``
(a ``ValueError``) with a one-line message naming the file and the tensor.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save as st_save
from torch import nn

from .. import bounded_json
from ..atomic_write import write_atomically
from ..checkpoints import CheckpointError, load_into, read_checkpoint_file, read_safetensors
from ..masks import masked_copy
from ..models import ARCHITECTURES, build_from_metadata
from .formats import CSR, Bitmap

FORMAT = "sparsity_viz-sparse/1"
ENCODINGS = ("dense", "csr", "bitmap")
# Decoding refuses a layout whose dense tensors would take more than this (a small
# hostile file can describe terabytes of zeros).
MAX_DECODED_BYTES = 2**30
_DTYPES: dict[str, torch.dtype] = {
    str(d).removeprefix("torch."): d
    for d in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
              torch.int64, torch.uint8, torch.bool)
}


@dataclass
class SparseSave:
    """The serialized bytes and, per tensor, the encoding chosen and its size."""

    data: bytes
    tensors: list[dict] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return len(self.data)

    @property
    def dense_nbytes(self) -> int:
        """Size of the same state dict saved densely with safetensors."""
        return int(sum(t["dense_bytes"] for t in self.tensors)) + self._dense_overhead

    _dense_overhead: int = 0

    def report(self) -> pd.DataFrame:
        return pd.DataFrame(self.tensors)

    def size_note(self) -> str:
        """Why the file is not smaller than dense, in one sentence ("" when it is smaller)."""
        if self.nbytes < self.dense_nbytes:
            return ""
        if all(t["encoding"] == "dense" for t in self.tensors):  # too few zeros anywhere for an index to pay off
            return ("Every tensor is stored dense (too few of its weights are zero for an index to pay), and the "
                    "layout (names, shapes, encodings) comes on top.")
        return "In a model this small the layout (names, shapes, indices) costs more than the zeros save."


def architecture_metadata(model: nn.Module) -> dict:
    for name, cls in ARCHITECTURES.items():
        if isinstance(model, cls):
            if name == "mlp":
                kw = {"in_features": model.in_features, "hidden": list(model.hidden),
                      "num_classes": model.num_classes, "activation": model.activation_name}
            else:
                kw = {"num_classes": model.fc2.out_features, "channels": [model.conv1.out_channels, model.conv2.out_channels],
                      "hidden": model.fc1.out_features}
            return {"architecture": name, "kwargs": kw}
    return {}


def _bits(mask: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.packbits(mask.flatten().numpy()))


def _unbits(bits: torch.Tensor, shape) -> torch.Tensor:
    n = int(np.prod(shape))
    return torch.from_numpy(np.unpackbits(bits.numpy(), count=n).astype(bool)).view(shape)


def encode_state(state: dict[str, torch.Tensor], keep_zero_signs: bool = True) -> tuple[dict[str, torch.Tensor], dict, list[dict]]:
    """Tensors to store, the layout metadata, and a per-tensor report.

    ``keep_zero_signs=False`` drops the -0.0 bitmap (values still compare equal, but
    pruned entries load as +0.0 rather than bit-identical).
    """
    out: dict[str, torch.Tensor] = {}
    layout: dict[str, dict] = {}
    report: list[dict] = []
    for name, t in state.items():
        t = t.detach().cpu().contiguous()
        dense_bytes = t.numel() * t.element_size()
        entry = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")}
        candidates = {"dense": {f"{name}": t}}
        if t.is_floating_point() and t.dim() >= 2 and t.numel() > 0:
            w2 = t.reshape(t.shape[0], -1)
            csr = CSR.from_dense(w2)
            candidates["csr"] = {f"{name}::rowptr": csr.rowptr, f"{name}::col": csr.col, f"{name}::val": csr.val}
            bm = Bitmap.from_dense(t)
            candidates["bitmap"] = {f"{name}::bits": bm.bits, f"{name}::val": bm.val}
            negz = (t == 0) & torch.signbit(t)
            if keep_zero_signs and negz.any():
                for enc in ("csr", "bitmap"):
                    candidates[enc][f"{name}::negzero"] = _bits(negz)
        sizes = {enc: sum(v.numel() * v.element_size() for v in ts.values()) for enc, ts in candidates.items()}
        enc = min(sizes, key=sizes.get)
        out.update(candidates[enc])
        entry["encoding"] = enc
        layout[name] = entry
        report.append({"tensor": name, "shape": "x".join(map(str, t.shape)), "encoding": enc,
                       "bytes": sizes[enc], "dense_bytes": dense_bytes, "ratio": sizes[enc] / max(1, dense_bytes)})
    return out, layout, report


def decode_state(tensors: dict[str, torch.Tensor], layout: dict,
                 max_bytes: int = MAX_DECODED_BYTES) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The state dict and the stored-position masks of sparse-encoded tensors, refused past ``max_bytes`` decoded.

    Raises:
        CheckpointError: the layout does not describe the stored tensors (names the tensor).
    """
    if not isinstance(layout, dict):
        raise CheckpointError("the layout is not a mapping of tensor names.")
    described = {name for name in layout} | {key for key in tensors if "::" in key and key.split("::")[0] in layout}
    extra = sorted(set(tensors) - described)
    if extra:
        raise CheckpointError(f"stored tensors not in the layout: {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}.")
    state, masks, total = {}, {}, 0
    for name, entry in layout.items():
        try:
            shape, dtype, enc = _entry(entry)
            per_entry = torch.empty((), dtype=dtype).element_size() + (enc != "dense")  # + the bool stored-positions mask
            total += math.prod(shape) * per_entry  # exact: a float64 product overflowed for huge shapes
            if total > max_bytes:
                raise CheckpointError(f"decodes to more than {max_bytes // 2**20} MiB (shape {str(list(shape))[:80]}).")
            w, keep = _decode_one(name, tensors, shape, dtype, enc)
        except CheckpointError as exc:
            raise CheckpointError(f"tensor {name!r}: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise CheckpointError(f"tensor {name!r} does not match its layout ({first}).") from None
        state[name] = w
        if keep is not None:
            masks[name] = keep
    return state, masks


def _entry(entry) -> tuple[tuple[int, ...], torch.dtype, str]:
    """``(shape, dtype, encoding)`` of one layout entry, checked."""
    if not isinstance(entry, dict):
        raise CheckpointError("its layout entry is not a mapping.")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise CheckpointError(f"shape {shape!r} is not a list of non-negative integers.")
    if entry.get("dtype") not in _DTYPES:
        raise CheckpointError(f"unknown dtype {entry.get('dtype')!r}.")
    if entry.get("encoding") not in ENCODINGS:
        raise CheckpointError(f"unknown encoding {entry.get('encoding')!r} (known: {', '.join(ENCODINGS)}).")
    return tuple(shape), _DTYPES[entry["dtype"]], entry["encoding"]


_INDEX_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _expect(ok: bool, what: str) -> None:
    if not ok:
        raise CheckpointError(what)


def _bitmap_of(bits: torch.Tensor, shape: tuple[int, ...], what: str) -> torch.Tensor:
    n = int(np.prod(shape))
    _expect(bits.dtype == torch.uint8 and bits.dim() == 1 and bits.numel() == -(-n // 8),
            f"{what} holds {bits.numel()} {bits.dtype} bytes, {-(-n // 8)} uint8 needed for {n} entries.")
    return _unbits(bits, shape)


def _decode_one(name: str, tensors: dict[str, torch.Tensor], shape: tuple[int, ...], dtype: torch.dtype,
                enc: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One tensor and, when sparse-encoded, its stored positions."""
    if enc == "dense":
        t = tensors[name]
        _expect(tuple(t.shape) == shape and t.dtype == dtype, f"stored as {t.dtype} {tuple(t.shape)}, layout says {dtype} {shape}.")
        return t, None
    _expect(len(shape) >= 2, f"a {enc} tensor needs rank >= 2, layout says {shape}.")
    flat_shape = (shape[0], int(np.prod(shape[1:])))
    val = tensors[f"{name}::val"]
    _expect(val.dim() == 1 and val.is_floating_point(), f"values must be a 1-D float tensor, got {val.dtype} {tuple(val.shape)}.")
    # decoding builds the dense tensor in the values' dtype: a wider one than the layout's would get past the size limit
    _expect(val.dtype == dtype, f"values stored as {val.dtype}, layout says {dtype}.")
    if enc == "csr":
        raw_rowptr, raw_col = tensors[f"{name}::rowptr"], tensors[f"{name}::col"]
        _expect(raw_rowptr.dtype in _INDEX_DTYPES and raw_col.dtype in _INDEX_DTYPES,
                f"row pointers and columns must be integers, got {raw_rowptr.dtype} and {raw_col.dtype}.")
        rowptr, col = raw_rowptr.long(), raw_col.long()
        _expect(rowptr.shape == (flat_shape[0] + 1,), f"row pointers {tuple(rowptr.shape)}, {flat_shape[0] + 1} expected.")
        _expect(int(rowptr[0]) == 0 and bool((rowptr[1:] >= rowptr[:-1]).all()) and int(rowptr[-1]) == col.numel() == val.numel(),
                "row pointers, columns and values disagree.")
        _expect(col.numel() == 0 or (int(col.min()) >= 0 and int(col.max()) < flat_shape[1]),
                f"a column index lies outside 0..{flat_shape[1] - 1}.")
        rows = torch.repeat_interleave(torch.arange(flat_shape[0]), rowptr[1:] - rowptr[:-1])  # (nnz,)
        same_row = rows[1:] == rows[:-1]
        _expect(not bool((col[1:] <= col[:-1])[same_row].any()),
                "a row's column indices are not strictly increasing (a repeated column would lose a value).")
        csr = CSR(raw_rowptr, raw_col, val, flat_shape)
        w = csr.to_dense().view(shape)
        keep = torch.zeros(flat_shape, dtype=torch.bool)
        keep[rows, col] = True
        keep = keep.view(shape)
    else:  # bitmap
        keep = _bitmap_of(tensors[f"{name}::bits"], shape, "the bitmap")
        _expect(int(keep.sum()) == val.numel(), f"the bitmap marks {int(keep.sum())} entries for {val.numel()} values.")
        w = torch.zeros(shape, dtype=val.dtype)
        w[keep] = val
    if f"{name}::negzero" in tensors:  # pruned entries that were -0.0 (never a stored value)
        negzero = _bitmap_of(tensors[f"{name}::negzero"], shape, "the sign bitmap")
        _expect(not bool((negzero & keep).any()), "the sign bitmap marks stored values as -0.0.")
        w[negzero] = -0.0
    return w.to(dtype), keep


def is_sparse_metadata(metadata: dict[str, str]) -> bool:
    """True when safetensors metadata marks a ``save_sparse`` checkpoint."""
    return metadata.get("format") == FORMAT


def decode_sparse(tensors: dict[str, torch.Tensor], metadata: dict[str, str], name: str = "sparse checkpoint",
                  max_bytes: int = MAX_DECODED_BYTES) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``decode_state`` of a read safetensors file: its tensors and its metadata's layout (at most ``max_bytes``).

    Raises:
        CheckpointError: not a sparse checkpoint, or a layout that does not fit (names ``name``).
    """
    if not is_sparse_metadata(metadata):
        raise CheckpointError(
            f"Not a sparsity_viz sparse checkpoint: {name} has format {metadata.get('format')!r}, not {FORMAT!r} "
            "(a dense state dict loads with sparsity_viz.load_checkpoint_bytes)."
        )
    try:
        layout = bounded_json.loads(metadata["layout"])
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{name}: the sparse layout is missing or not JSON ({type(exc).__name__}).") from None
    try:
        return decode_state(tensors, layout, max_bytes)
    except CheckpointError as exc:
        raise CheckpointError(f"{name}: not a valid sparse checkpoint: {exc}") from None


def save_sparse(model: nn.Module, path: str | Path | None = None, masks: dict | None = None,
                metadata: dict | None = None, keep_zero_signs: bool = True) -> SparseSave:
    """Serialise ``model`` (with ``masks`` applied, if given) compactly; write to ``path`` if given."""
    src = masked_copy(model, masks) if masks is not None else model
    state = src.state_dict()
    tensors, layout, report = encode_state(state, keep_zero_signs)
    meta = {"format": FORMAT, "layout": json.dumps(layout), **{k: json.dumps(v) for k, v in architecture_metadata(src).items()}}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    data = st_save(tensors, metadata=meta)
    # copies: a tied weight is one tensor under two names, which safetensors refuses (stored twice, as encoded)
    dense_data_len = len(st_save({k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
                                  for k, v in state.items()}))
    result = SparseSave(data, report)
    result._dense_overhead = dense_data_len - sum(r["dense_bytes"] for r in report)
    if path is not None:
        write_atomically(path, data)
    return result


@dataclass
class SparseLoad:
    """A loaded sparse checkpoint: state dict, stored-position masks, metadata."""

    state_dict: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    metadata: dict[str, str]

    def build_model(self) -> nn.Module:
        """The model, when the checkpoint names its architecture.

        Raises:
            CheckpointError: no architecture recorded, or weights that do not fit
                it (mismatched keys, NaN / infinity, values overflowing its dtype).
        """
        if "architecture" not in self.metadata:
            raise CheckpointError("This sparse checkpoint does not record its architecture.")
        try:
            model = build_from_metadata(bounded_json.loads(self.metadata["architecture"]),
                                        bounded_json.loads(self.metadata["kwargs"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"The sparse checkpoint's architecture cannot be built ({exc}).") from None
        return load_into(model, self.state_dict, "sparse checkpoint")


def load_sparse(source: str | Path | bytes) -> SparseLoad:
    """Read a sparse checkpoint written by ``save_sparse`` (path or bytes).

    Raises:
        CheckpointError: unreadable bytes (random, truncated, empty), a dense
            safetensors file, or a layout that does not match its tensors; one line.
    """
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "sparse checkpoint"
    else:
        data, name = read_checkpoint_file(source), Path(source).name
    tensors, meta = read_safetensors(data, name)
    state, masks = decode_sparse(tensors, meta, name)
    return SparseLoad(state, masks, meta)
