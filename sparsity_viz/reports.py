"""Per-layer "where are the zeros" reports as pandas DataFrames.

Bytes are what the weights of a layer would take stored densely (float32) and
as CSR with int32 column indices and int32 row pointers (``torch.sparse_csr``'s
layout), so users see when CSR stops paying off (below ~50 % sparsity it is
larger than dense).
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn

from .masks import Masks, masks_from_zeros
from .models import prunable_layers

FLOAT_BYTES = 4
INDEX_BYTES = 4

REPORT_COLUMNS = [
    "layer", "shape", "parameters", "nonzeros", "zeros", "sparsity",
    "dense_bytes", "csr_bytes", "dead_inputs", "dead_outputs", "dead_neurons",
]


def csr_bytes(rows: int, nonzeros: int, value_bytes: int = FLOAT_BYTES, index_bytes: int = INDEX_BYTES) -> int:
    """Bytes of a CSR matrix: values + column indices + row pointers (rows + 1)."""
    return nonzeros * (value_bytes + index_bytes) + (rows + 1) * index_bytes


def _alive(model: nn.Module, masks: Masks | None) -> dict[str, torch.Tensor]:
    """Effective keep-masks: the given masks AND nonzero weights."""
    zeros = masks_from_zeros(model)
    if masks is None:
        return zeros
    return {n: zeros[n] & masks[n].to(zeros[n].device) if n in masks else zeros[n] for n in zeros}


def dead_units(model: nn.Module, masks: Masks | None = None) -> dict[str, tuple[int, int]]:
    """Per layer: (input units with no surviving connection, output units with none).

    For conv layers the units are input channels and output filters.
    """
    alive = _alive(model, masks)
    out = {}
    for name, module in prunable_layers(model):
        keep = alive[f"{name}.weight"].flatten(2) if module.weight.dim() > 2 else alive[f"{name}.weight"]
        # keep: (out, in) or (out, in, k*k)
        per_pair = keep if keep.dim() == 2 else keep.any(dim=2)
        dead_in = int((~per_pair.any(dim=0)).sum())
        dead_out = int((~per_pair.any(dim=1)).sum())
        out[name] = (dead_in, dead_out)
    return out


def dead_neurons(model: nn.Module, masks: Masks | None = None) -> dict[str, torch.Tensor]:
    """Per layer, a bool vector over its output units, True where the unit is dead.

    A unit is dead when no surviving connection enters or leaves it (see
    ``graph.dead_neurons``); masks and exact zeros of the weights both count.
    """
    from .graph import dead_neurons as graph_dead_neurons

    dead = graph_dead_neurons(model, _alive(model, masks))
    dead.pop("input", None)
    return dead


def sparsity_report(model: nn.Module, masks: Masks | None = None) -> pd.DataFrame:
    """One row per prunable layer plus a ``total`` row.

    Columns: layer, shape, parameters, nonzeros, zeros, sparsity (fraction),
    dense_bytes, csr_bytes, dead_inputs, dead_outputs (units with no surviving
    connection in that layer's own weight matrix), dead_neurons (the layer's
    output units cut off on either side, see ``dead_neurons``).
    """
    alive = _alive(model, masks)
    dead = dead_units(model, masks)
    dead_out = dead_neurons(model, masks)
    rows = []
    for name, module in prunable_layers(model):
        keep = alive[f"{name}.weight"]
        n, nnz = keep.numel(), int(keep.sum())
        rows.append({
            "layer": name,
            "shape": "x".join(str(s) for s in keep.shape),
            "parameters": n,
            "nonzeros": nnz,
            "zeros": n - nnz,
            "sparsity": (n - nnz) / n,
            "dense_bytes": n * FLOAT_BYTES,
            "csr_bytes": csr_bytes(keep.shape[0], nnz),
            "dead_inputs": dead[name][0],
            "dead_outputs": dead[name][1],
            "dead_neurons": int(dead_out[name].sum()),
        })
    frame = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    total = {
        "layer": "total", "shape": "",
        "parameters": int(frame["parameters"].sum()), "nonzeros": int(frame["nonzeros"].sum()),
        "zeros": int(frame["zeros"].sum()),
        "dense_bytes": int(frame["dense_bytes"].sum()), "csr_bytes": int(frame["csr_bytes"].sum()),
        "dead_inputs": int(frame["dead_inputs"].sum()), "dead_outputs": int(frame["dead_outputs"].sum()),
        "dead_neurons": int(frame["dead_neurons"].sum()),
    }
    total["sparsity"] = total["zeros"] / total["parameters"] if total["parameters"] else 0.0
    return pd.concat([frame, pd.DataFrame([total], columns=REPORT_COLUMNS)], ignore_index=True)
