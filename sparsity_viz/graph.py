"""Weights + masks -> the surviving-connection graph, as plain data.

A model is read as a chain of *unit columns*: the input, then the outputs of
every prunable layer in forward order. A unit is a neuron of a Linear layer or
a channel (filter) of a Conv2d layer; between two columns, ``unit_connections``
counts the surviving weights for each pair of units and sums their ``|w|`` and
``w`` (over a conv kernel, or over the spatial positions a conv channel feeds into
the first Linear layer after a flatten). Everything else is built on that:

* ``dead_neurons``: units with no surviving incoming or no surviving outgoing weight;
* ``layer_collapse``: fully pruned layers and whether any input -> output path survives;
* ``input_fanout``: surviving outgoing connections per input feature / pixel;
* ``build_graph``: nodes and edges for a drawing, with large layers kept readable by
  grouping input pixels into blocks and keeping only the top-K edges by ``|w|``
  per layer (the number hidden is reported).

Masks use the ``sparsity_viz.masks`` convention (True = survives); a layer with
no mask counts as dense. Without masks they are read off the zeros of the weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .masks import masks_from_zeros
from .models import prunable_layers


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


def _masks_or_zeros(model: nn.Module, masks: Mapping[str, torch.Tensor] | None) -> Mapping[str, torch.Tensor]:
    return masks_from_zeros(model) if masks is None else masks


def unit_connections(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> list[LayerConnections]:
    """Per prunable layer, the surviving connections between input and output units.

    Conv2d layers connect channels (aggregated over the kernel). A Linear layer
    that follows a Conv2d and has ``k * channels`` inputs connects to those channels
    (aggregated over the ``k`` flattened spatial positions, channel-major as
    ``flatten`` lays them out).
    """
    masks = _masks_or_zeros(model, masks)
    out: list[LayerConnections] = []
    prev_units: int | None = None
    prev_kind: str | None = None
    for name, module in prunable_layers(model):
        w = module.weight.detach().to("cpu", torch.float32)
        mask = masks.get(f"{name}.weight")
        m = torch.ones_like(w, dtype=torch.bool) if mask is None else mask.detach().to("cpu", torch.bool)
        wm = w * m
        if isinstance(module, nn.Conv2d):
            if module.groups != 1:
                raise ValueError(f"Grouped convolution {name!r} is not supported by the connection graph.")
            kind = "conv"
            count = m.flatten(2).sum(-1)  # (C_out, C_in)
            mag = wm.abs().flatten(2).sum(-1)
            sgn = wm.flatten(2).sum(-1)
        else:
            kind = "linear"
            n_out, n_in = w.shape
            if prev_kind == "conv" and prev_units and n_in != prev_units and n_in % prev_units == 0:
                count = m.reshape(n_out, prev_units, -1).sum(-1)
                mag = wm.abs().reshape(n_out, prev_units, -1).sum(-1)
                sgn = wm.reshape(n_out, prev_units, -1).sum(-1)
            else:
                count, mag, sgn = m.to(torch.int64), wm.abs(), wm
        out.append(LayerConnections(name, kind, count.to(torch.int64), mag, sgn, w.numel(), int(m.sum())))
        prev_units, prev_kind = count.shape[0], kind
    return out


def dead_neurons(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Which units are dead: no surviving incoming weight, or no surviving outgoing weight.

    Returns ``{"input": (in_units,), "fc1": (units,), ...}`` bool tensors, True = dead.
    Input units are dead when nothing leaves them; the last layer's units (the
    classes) when nothing reaches them. A conv unit is a channel.
    """
    layers = unit_connections(model, masks)
    if not layers:
        return {}
    dead = {"input": ~layers[0].connected.any(0)}
    for i, lc in enumerate(layers):
        no_in = ~lc.connected.any(1)
        if i + 1 < len(layers):
            no_out = ~layers[i + 1].connected.any(0)
            dead[lc.name] = no_in | no_out
        else:
            dead[lc.name] = no_in
    return dead


@dataclass(frozen=True)
class CollapseReport:
    """Layer collapse: fully pruned layers and whether the input still reaches the output."""

    pruned_layers: tuple[str, ...]  # layers with every weight pruned
    path_exists: bool  # some input -> output path of surviving weights exists
    alive_units: dict[str, int] = field(hash=False)  # units on some input -> output path, per column
    total_units: dict[str, int] = field(hash=False)

    @property
    def collapsed(self) -> bool:
        """True when a layer is fully pruned or no input -> output path survives."""
        return bool(self.pruned_layers) or not self.path_exists


def layer_collapse(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> CollapseReport:
    """Detect layer collapse (Tanaka et al. 2020): a layer pruned away, or no path left."""
    layers = unit_connections(model, masks)
    if not layers:
        return CollapseReport((), True, {}, {})
    pruned = tuple(lc.name for lc in layers if lc.surviving == 0)
    # forward: units reachable from some input
    fwd = [torch.ones(layers[0].count.shape[1], dtype=torch.bool)]
    for lc in layers:
        fwd.append((lc.connected.to(torch.float32) @ fwd[-1].to(torch.float32)) > 0)
    # backward: units from which some output is reachable
    bwd = [torch.ones(layers[-1].count.shape[0], dtype=torch.bool)]
    for lc in reversed(layers):
        bwd.insert(0, (lc.connected.to(torch.float32).T @ bwd[0].to(torch.float32)) > 0)
    names = ["input", *(lc.name for lc in layers)]
    on_path = [f & b for f, b in zip(fwd, bwd)]
    alive = {n: int(p.sum()) for n, p in zip(names, on_path)}
    total = {n: int(p.numel()) for n, p in zip(names, on_path)}
    return CollapseReport(pruned, bool(on_path[-1].any()), alive, total)


def _image_side(n: int) -> int | None:
    side = math.isqrt(n)
    return side if side * side == n and side >= 4 else None


def input_fanout(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None = None,
    input_shape: Sequence[int] | None = None,
) -> torch.Tensor:
    """Surviving outgoing connections of every input feature of the first layer.

    For a Linear first layer: the number of surviving weights in each input
    column, shaped ``(H, W)`` for image inputs (from ``input_shape``, or a square
    number of features >= 16) and ``(features,)`` otherwise. For a Conv2d first
    layer (``input_shape`` required): for each pixel, the number of (filter, output
    position) uses of a surviving kernel weight that read it, summed over input
    channels, shaped ``(H, W)``. Returns int64.
    """
    masks = _masks_or_zeros(model, masks)
    layers = prunable_layers(model)
    if not layers:
        raise ValueError("The model has no Linear / Conv2d layer.")
    name, module = layers[0]
    mask = masks.get(f"{name}.weight")
    m = torch.ones_like(module.weight, dtype=torch.bool) if mask is None else mask
    m = m.detach().to("cpu")
    if isinstance(module, nn.Conv2d):
        if input_shape is None:
            raise ValueError("input_fanout of a convolutional model needs input_shape=(C, H, W).")
        h, w = input_shape[-2:]
        kh, kw = module.kernel_size
        sh, sw = module.stride
        ph, pw = module.padding
        dh, dw = module.dilation
        ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        op = (h - ((ho - 1) * sh - 2 * ph + dh * (kh - 1) + 1), w - ((wo - 1) * sw - 2 * pw + dw * (kw - 1) + 1))
        ones = torch.ones(1, module.out_channels, ho, wo, dtype=torch.float64)
        fan = F.conv_transpose2d(
            ones,
            m.to(torch.float64),
            stride=module.stride,
            padding=module.padding,
            output_padding=op,
            dilation=module.dilation,
        )  # (1, C_in, H, W)
        return fan[0].sum(0).round().to(torch.int64)
    fan = m.sum(0).to(torch.int64)  # (in_features,)
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if math.prod(shape) != fan.numel():
            raise ValueError(f"input_shape {shape} does not match {fan.numel()} input features.")
        spatial = tuple(s for s in shape if s != 1) if len(shape) == 3 and shape[0] == 1 else shape
        return fan.reshape(spatial if len(spatial) > 0 else shape)
    side = _image_side(fan.numel())
    return fan.reshape(side, side) if side else fan


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
        return torch.arange(n_in), "one node per input feature"
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
    if shape is not None and math.prod(shape) == n_in and len(shape) >= 2:
        h, w = shape[-2:]
        c = n_in // (h * w)
    elif _image_side(n_in):
        c, h, w = 1, _image_side(n_in), _image_side(n_in)
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
