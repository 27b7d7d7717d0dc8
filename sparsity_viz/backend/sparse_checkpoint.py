"""Sparse checkpoints: a pruned model saved compactly in safetensors, loaded back bit-exact.

Every floating-point tensor of rank >= 2 is stored in the smallest of three
encodings (per tensor, reported): ``dense``; ``csr`` (int32 row pointers, int16 or
int32 columns, values) over the ``(out, rest)`` view; ``bitmap`` (one bit per entry,
packed, plus values). Zeros are restored as +0.0; where the pruned model held -0.0
(masking by multiplication leaves ``-w * 0``), a packed sign bitmap restores them, so
the loaded weights are bit-identical. Everything else (biases, buffers) is dense.
The safetensors metadata holds the layout and, when known, the architecture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ..masks import masked_copy
from ..models import ARCHITECTURES, build_architecture
from .formats import CSR, Bitmap

FORMAT = "sparsity_viz-sparse/1"


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


def _arch_metadata(model: nn.Module) -> dict:
    for name, cls in ARCHITECTURES.items():
        if type(model) is cls:
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


def decode_state(tensors: dict[str, torch.Tensor], layout: dict) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The state dict and the stored-position masks of sparse-encoded tensors."""
    state, masks = {}, {}
    for name, entry in layout.items():
        shape = tuple(entry["shape"])
        dtype = getattr(torch, entry["dtype"])
        enc = entry["encoding"]
        if enc == "dense":
            state[name] = tensors[name]
            continue
        flat_shape = (shape[0], int(np.prod(shape[1:])))
        if enc == "csr":
            csr = CSR(tensors[f"{name}::rowptr"], tensors[f"{name}::col"], tensors[f"{name}::val"], flat_shape)
            w = csr.to_dense().view(shape)
            keep = torch.zeros(flat_shape, dtype=torch.bool)
            rows = torch.repeat_interleave(torch.arange(flat_shape[0]), csr.rowptr[1:].long() - csr.rowptr[:-1].long())
            keep[rows, csr.col.long()] = True
            keep = keep.view(shape)
        elif enc == "bitmap":
            keep = _unbits(tensors[f"{name}::bits"], shape)
            w = torch.zeros(shape, dtype=dtype)
            w[keep] = tensors[f"{name}::val"]
        else:
            raise ValueError(f"{name}: unknown encoding {enc!r}")
        if f"{name}::negzero" in tensors:
            w[_unbits(tensors[f"{name}::negzero"], shape)] = -0.0
        state[name] = w.to(dtype)
        masks[name] = keep
    return state, masks


def save_sparse(model: nn.Module, path: str | Path | None = None, masks: dict | None = None,
                metadata: dict | None = None, keep_zero_signs: bool = True) -> SparseSave:
    """Serialise ``model`` (with ``masks`` applied, if given) compactly; write to ``path`` if given."""
    src = masked_copy(model, masks) if masks is not None else model
    state = src.state_dict()
    tensors, layout, report = encode_state(state, keep_zero_signs)
    meta = {"format": FORMAT, "layout": json.dumps(layout), **{k: json.dumps(v) for k, v in _arch_metadata(src).items()}}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    data = st_save(tensors, metadata=meta)
    dense_data_len = len(st_save({k: v.detach().cpu().contiguous() for k, v in state.items()}))
    result = SparseSave(data, report)
    result._dense_overhead = dense_data_len - sum(r["dense_bytes"] for r in report)
    if path is not None:
        Path(path).write_bytes(data)
    return result


@dataclass
class SparseLoad:
    """A loaded sparse checkpoint: state dict, stored-position masks, metadata."""

    state_dict: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]
    metadata: dict[str, str]

    def build_model(self) -> nn.Module:
        """The model, when the checkpoint names its architecture."""
        if "architecture" not in self.metadata:
            raise ValueError("This sparse checkpoint does not record its architecture.")
        model = build_architecture(json.loads(self.metadata["architecture"]), json.loads(self.metadata["kwargs"]))
        model.load_state_dict(self.state_dict)
        return model


def load_sparse(source: str | Path | bytes) -> SparseLoad:
    """Read a sparse checkpoint written by ``save_sparse`` (path or bytes)."""
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    from safetensors import safe_open  # metadata is only exposed through safe_open
    import tempfile

    tensors = st_load(bytes(data))
    with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
        f.write(data)
        f.flush()
        with safe_open(f.name, framework="pt") as sf:
            meta = sf.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"Not a sparsity_viz sparse checkpoint (format {meta.get('format')!r}).")
    state, masks = decode_state(tensors, json.loads(meta["layout"]))
    return SparseLoad(state, masks, meta)
