"""Weights + masks -> the surviving-connection graph, as plain data, ready to draw.

A model is read as a chain of *unit columns*: the input, then the outputs of
every prunable layer in forward order (units, surviving weights, dead units and
layer collapse are defined once, in ``connectivity``). Between two columns,
``unit_connections`` counts the surviving weights for each pair of units and
sums their ``|w|`` and ``w`` (over a conv kernel, or over the spatial positions a
conv channel feeds into the first Linear layer after a flatten). ``build_graph``
turns that into nodes and edges for a drawing, with large layers kept readable
by grouping input pixels into blocks and keeping only the top-K edges by ``|w|``
per layer (the number hidden is reported).

Masks use the ``sparsity_viz.masks`` convention (True = survives); a layer with
no mask counts as dense. Without masks they are read off the zeros of the weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .connectivity import dead_neurons, fold_units, image_side, layer_collapse, layer_masks, unit_counts
from .layers import chain_layers


@dataclass(frozen=True, eq=False)
class LayerConnections:
    """Surviving weights between the units of two consecutive columns."""

    name: str  # layer name, e.g. "fc1"
    kind: str  # "linear" or "conv"
    count: torch.Tensor  # (out_units, in_units) int64: surviving weights per unit pair
    magnitude: torch.Tensor  # (out_units, in_units) float: sum of |w| over surviving weights
    signed: torch.Tensor  # (out_units, in_units) float: sum of w over surviving weights
    weights: int  # number of weights in the layer
    surviving: int  # number of surviving weights

    @property
    def connected(self) -> torch.Tensor:
        """(out_units, in_units) bool: at least one surviving weight joins the pair."""
        return self.count > 0


def unit_connections(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> list[LayerConnections]:
    """Per prunable layer, the surviving connections between input and output units.

    The model must be a chain (``layers.chain_layers``; otherwise a ``ValueError`` says where
    it branches). Units and surviving weights as in ``connectivity``: conv layers connect
    channels (aggregated over the kernel); a Linear layer after a Conv2d with
    ``k * channels`` inputs connects to those channels (aggregated over the
    ``k`` flattened positions).
    """
    alive = layer_masks(model, masks)
    out: list[LayerConnections] = []
    for layer, (key, count) in zip(chain_layers(model), unit_counts(alive)):
        wm = layer.module.weight.detach().to("cpu", torch.float32) * alive[key]
        kind = "conv" if isinstance(layer.module, (nn.Conv1d, nn.Conv2d)) else "linear"
        mag, sgn = fold_units(wm.abs(), count.shape[1]), fold_units(wm, count.shape[1])
        out.append(LayerConnections(layer.name, kind, count, mag, sgn, wm.numel(), int(count.sum())))
    return out


# ---------------------------------------------------------------------------
# The drawable graph


@dataclass(frozen=True)
class Node:
    """A unit (or a group of input pixels) in a column of the graph."""

    column: int  # 0 = input, k = output units of the k-th prunable layer
    index: int  # position in the column (group index for grouped inputs)
    label: str
    dead: bool
    y: float  # vertical position in [0, 1], first unit at the top
    size: int = 1  # units aggregated into this node
    fan_in: int = 0  # surviving incoming weights
    fan_out: int = 0  # surviving outgoing weights


@dataclass(frozen=True)
class Edge:
    """Surviving weights from node ``src`` in column ``layer`` to node ``dst`` in ``layer + 1``."""

    layer: int  # index of the prunable layer (0-based); joins columns layer and layer + 1
    src: int
    dst: int
    weight: float  # sum of the surviving weights (the single weight for a plain connection)
    magnitude: float  # sum of their |w|
    count: int  # number of surviving weights aggregated


@dataclass(frozen=True)
class LayerSummary:
    """One prunable layer in the graph."""

    name: str
    kind: str  # "linear" or "conv"
    in_units: int  # nodes of the column before (after grouping)
    out_units: int
    weights: int
    surviving: int
    connections: int  # node pairs joined by a surviving weight
    edges_shown: int
    edges_hidden: int  # connections left out by the top-K cap
    dead_units: int  # dead output units of this layer
    fully_pruned: bool


@dataclass(frozen=True, eq=False)
class ConnectionGraph:
    """The surviving-connection graph: columns of nodes and the edges between them."""

    columns: tuple[str, ...]  # ("input", "fc1", ...)
    column_sizes: tuple[int, ...]  # nodes per column
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    layers: tuple[LayerSummary, ...]
    input_grouping: str  # how input features became input nodes, e.g. "4x4 pixel blocks"
    path_exists: bool

    @property
    def hidden_edges(self) -> int:
        return sum(s.edges_hidden for s in self.layers)

    @property
    def dead_count(self) -> int:
        return sum(n.dead for n in self.nodes)


def _input_groups(n_in: int, max_input_nodes: int, input_shape: Sequence[int] | None) -> tuple[torch.Tensor, str]:
    """Group id of every input feature, and a description of the grouping."""
    if n_in <= max_input_nodes:
        return torch.arange(n_in), "one node per feature"
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
    if shape is not None and math.prod(shape) == n_in and len(shape) >= 2:
        h, w = shape[-2:]
        c = n_in // (h * w)
    elif image_side(n_in):
        c, h, w = 1, image_side(n_in), image_side(n_in)
    else:
        size = math.ceil(n_in / max_input_nodes)
        return torch.arange(n_in) // size, f"groups of {size} consecutive input features"
    block = math.ceil(math.sqrt(c * h * w / max_input_nodes))
    gh, gw = math.ceil(h / block), math.ceil(w / block)
    rows = torch.arange(h) // block
    cols = torch.arange(w) // block
    per_channel = (rows[:, None] * gw + cols[None, :]).reshape(-1)  # (h*w,)
    groups = torch.cat([per_channel + ch * gh * gw for ch in range(c)])
    return groups, f"{block}x{block} pixel blocks"


def _group_columns(t: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    out = torch.zeros(t.shape[0], n_groups, dtype=t.dtype)
    return out.index_add_(1, groups, t)


def build_graph(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    max_edges_per_layer: int = 250,
    max_input_nodes: int = 64,
    input_shape: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> ConnectionGraph:
    """The surviving-connection graph of ``model`` under ``masks``, ready to draw.

    Args:
        model: a chain of Linear / Conv2d layers (see ``unit_connections``).
        masks: True = survives; ``None`` reads them off the zero weights.
        max_edges_per_layer: keep at most this many edges per layer, the largest
            by aggregated ``|w|``; the rest are counted in ``edges_hidden``.
        max_input_nodes: more input features than this are grouped (image inputs
            into square pixel blocks, others into consecutive runs).
        input_shape: one sample's shape, used to group image pixels.
        class_names: labels of the output units.
    """
    conns = unit_connections(model, masks)
    if not conns:
        raise ValueError("The model has no Linear / Conv2d layer.")
    dead = dead_neurons(model, masks)
    collapse = layer_collapse(model, masks)

    n_in = conns[0].count.shape[1]
    groups, grouping = _input_groups(n_in, max_input_nodes, input_shape)
    if conns[0].kind == "conv":
        groups, grouping = torch.arange(n_in), "one node per input channel"
    n_groups = int(groups.max()) + 1

    columns = ["input", *(lc.name for lc in conns)]
    sizes = [n_groups, *(lc.count.shape[0] for lc in conns)]

    # aggregated matrices per layer (first layer grouped over the inputs)
    mats = []
    for i, lc in enumerate(conns):
        if i == 0 and n_groups != n_in:
            mats.append(tuple(_group_columns(t, groups, n_groups) for t in (lc.count, lc.magnitude, lc.signed)))
        else:
            mats.append((lc.count, lc.magnitude, lc.signed))

    # node flags and fans
    # a group of input pixels is dead when all its pixels are
    alive_in_group = torch.bincount(groups, weights=(~dead["input"]).to(torch.float64), minlength=n_groups)
    dead_cols = [alive_in_group == 0]
    dead_cols += [dead[lc.name] for lc in conns]
    fan_in = [torch.zeros(n_groups, dtype=torch.int64)] + [m[0].sum(1) for m in mats]
    fan_out = [m[0].sum(0) for m in mats] + [torch.zeros(sizes[-1], dtype=torch.int64)]

    nodes: list[Node] = []
    for c, (col, size) in enumerate(zip(columns, sizes)):
        counts = torch.bincount(groups, minlength=n_groups) if c == 0 else torch.ones(size, dtype=torch.int64)
        for j in range(size):
            if c == 0:
                label = f"input {j}" if grouping.startswith("one node") else f"input group {j}"
            elif c == len(columns) - 1 and class_names is not None and j < len(class_names):
                label = f"{class_names[j]}"
            else:
                label = f"{col} {'channel' if conns[c - 1].kind == 'conv' else 'unit'} {j}"
            nodes.append(
                Node(
                    column=c,
                    index=j,
                    label=label,
                    dead=bool(dead_cols[c][j]),
                    y=1.0 - (j + 0.5) / size,
                    size=int(counts[j]),
                    fan_in=int(fan_in[c][j]),
                    fan_out=int(fan_out[c][j]),
                )
            )

    edges: list[Edge] = []
    summaries: list[LayerSummary] = []
    for i, (lc, (count, mag, sgn)) in enumerate(zip(conns, mats)):
        dst, src = torch.nonzero(count > 0, as_tuple=True)
        n_conn = int(dst.numel())
        if n_conn > max_edges_per_layer:
            order = torch.argsort(mag[dst, src], descending=True, stable=True)[:max_edges_per_layer]
            order = order.sort().values  # keep a deterministic, row-major order
            dst, src = dst[order], src[order]
        for d, s in zip(dst.tolist(), src.tolist()):
            edges.append(Edge(i, s, d, float(sgn[d, s]), float(mag[d, s]), int(count[d, s])))
        summaries.append(
            LayerSummary(
                name=lc.name,
                kind=lc.kind,
                in_units=sizes[i],
                out_units=sizes[i + 1],
                weights=lc.weights,
                surviving=lc.surviving,
                connections=n_conn,
                edges_shown=int(dst.numel()),
                edges_hidden=n_conn - int(dst.numel()),
                dead_units=int(dead[lc.name].sum()),
                fully_pruned=lc.surviving == 0,
            )
        )
    return ConnectionGraph(
        columns=tuple(columns),
        column_sizes=tuple(sizes),
        nodes=tuple(nodes),
        edges=tuple(edges),
        layers=tuple(summaries),
        input_grouping=grouping,
        path_exists=collapse.path_exists,
    )
