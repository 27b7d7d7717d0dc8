"""Per-layer "where are the zeros" reports as pandas DataFrames.

Bytes are what the weights of a layer would take stored densely (float32) and
as CSR with int32 column indices and int32 row pointers (``torch.sparse_csr``'s
layout), so users see when CSR stops paying off (below ~50 % sparsity it is
larger than dense).
"""

from __future__ import annotations

import pandas as pd
from torch import nn

from .connectivity import dead_neurons, surviving_masks, unconnected_units
from .layers import chain_layers, chain_problem, prunable_weights
from .masks import Masks, any_true, count_true

FLOAT_BYTES = 4
INDEX_BYTES = 4

REPORT_COLUMNS = [
    "layer", "shape", "parameters", "nonzeros", "zeros", "sparsity",
    "dense_bytes", "csr_bytes", "dead_inputs", "dead_outputs", "dead_neurons",
]


def csr_bytes(rows: int, nonzeros: int, value_bytes: int = FLOAT_BYTES, index_bytes: int = INDEX_BYTES) -> int:
    """Bytes of a CSR matrix: values + column indices + row pointers (rows + 1)."""
    return nonzeros * (value_bytes + index_bytes) + (rows + 1) * index_bytes


def sparsity_report(model: nn.Module, masks: Masks | None = None) -> pd.DataFrame:
    """One row per prunable parameter plus a ``total`` row (any model; a tied weight is one row).

    Columns: layer, shape, parameters, nonzeros, zeros, sparsity (fraction),
    dense_bytes, csr_bytes (rows = the first dimension), dead_inputs, dead_outputs (units
    with no surviving connection in that layer's own weight matrix,
    ``connectivity.unconnected_units``), dead_neurons (the layer's output units cut off on
    either side, ``connectivity.dead_neurons``; NaN, total included, when the model is not
    a chain, ``layers.chain_problem``; a tied weight's in its first layer). Masks and exact
    zeros of the weights both count.
    """
    alive = surviving_masks(model, masks)
    unconnected = unconnected_units(alive)
    chain = chain_problem(model) is None
    dead: dict[str, int] = {}  # per weight key; a tied weight counts in its first layer
    if chain:
        per_layer = dead_neurons(model, masks)
        for layer in chain_layers(model):
            dead.setdefault(layer.key, count_true(per_layer[layer.name]))
    labels = {w.key: w.label for w in prunable_weights(model)}
    rows = []
    for key, keep in alive.items():
        name = labels[key]
        n, nnz = keep.numel(), count_true(keep)
        rows.append({
            "layer": name,
            "shape": "x".join(str(s) for s in keep.shape),
            "parameters": n,
            "nonzeros": nnz,
            "zeros": n - nnz,
            "sparsity": (n - nnz) / n if n else 0.0,  # a layer of width 0 has nothing to prune (the total's rule)
            "dense_bytes": n * FLOAT_BYTES,
            "csr_bytes": csr_bytes(keep.shape[0], nnz),
            "dead_inputs": unconnected[key][0],
            "dead_outputs": unconnected[key][1],
            "dead_neurons": dead[key] if chain else float("nan"),
        })
    frame = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    total = {
        "layer": "total", "shape": "",
        "parameters": int(frame["parameters"].sum()), "nonzeros": int(frame["nonzeros"].sum()),
        "zeros": int(frame["zeros"].sum()),
        "dense_bytes": int(frame["dense_bytes"].sum()), "csr_bytes": int(frame["csr_bytes"].sum()),
        "dead_inputs": int(frame["dead_inputs"].sum()), "dead_outputs": int(frame["dead_outputs"].sum()),
        "dead_neurons": int(frame["dead_neurons"].sum()) if chain else float("nan"),
    }
    total["sparsity"] = total["zeros"] / total["parameters"] if total["parameters"] else 0.0
    return pd.concat([frame, pd.DataFrame([total], columns=REPORT_COLUMNS)], ignore_index=True)
