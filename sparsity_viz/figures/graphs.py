"""The surviving-connection graph, drawn TensorFlow-Playground style.

Nodes sit in one column per layer; an edge's width grows with ``|w|`` (normalised
per layer, in four width classes) and its colour is the sign (blue positive, red
negative). Dead units are grey. Edges are drawn as a few ``Scatter`` line traces
(one per sign and width class, segments separated by ``None``), which keeps
LeNet-300-100 fast: the graph itself is capped by ``build_graph``. Every edge trace
has ``meta={"kind": "edges", "layer": i, "sign": "+"|"-", "width_class": k}``, node traces
``meta={"kind": "nodes", "dead": bool}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from ..graph import ConnectionGraph, build_graph
from .style import BASE_FONT_SIZE, LEGEND_BELOW, NEGATIVE_COLOR, POSITIVE_COLOR, PRUNED_COLOR, style_layout

WIDTH_CLASSES = 4


def graph_traces(graph: ConnectionGraph, width_range: tuple[float, float] = (0.6, 6.0)) -> list[dict]:
    """The traces of ``connection_graph`` as plain dicts: edges per (sign, layer, width class), then nodes."""
    by_col: dict[int, dict[int, tuple[float, bool]]] = {}
    for n in graph.nodes:
        by_col.setdefault(n.column, {})[n.index] = (n.y, n.dead)
    # per-layer max magnitude, for widths
    layer_max: dict[int, float] = {}
    for e in graph.edges:
        layer_max[e.layer] = max(layer_max.get(e.layer, 0.0), e.magnitude)
    per_layer: dict[int, int] = {}
    for e in graph.edges:
        per_layer[e.layer] = per_layer.get(e.layer, 0) + 1
    segments: dict[tuple[int, str, int], tuple[list, list]] = {}
    for e in graph.edges:
        rel = e.magnitude / layer_max[e.layer] if layer_max[e.layer] > 0 else 0.0
        k = min(WIDTH_CLASSES - 1, int(rel * WIDTH_CLASSES))
        sign = "+" if e.weight >= 0 else "-"
        xs, ys = segments.setdefault((e.layer, sign, k), ([], []))
        xs += [e.layer, e.layer + 1, None]
        ys += [by_col[e.layer][e.src][0], by_col[e.layer + 1][e.dst][0], None]
    traces: list[dict] = []
    lo, hi = width_range
    shown_legend = set()
    # thinner, fainter lines where a layer has many edges, so dense layers stay readable
    for layer, sign, k in sorted(segments, key=lambda t: (t[1], t[0], t[2])):
        xs, ys = segments[(layer, sign, k)]
        crowd = min(1.0, (60.0 / per_layer[layer]) ** 0.5)
        width = lo + (hi - lo) * crowd * k / max(WIDTH_CLASSES - 1, 1)
        opacity = (0.25 + 0.6 * k / max(WIDTH_CLASSES - 1, 1)) * (0.4 + 0.6 * crowd)
        name = "positive weight" if sign == "+" else "negative weight"
        traces.append(dict(
            type="scatter", x=xs, y=ys, mode="lines", name=name, legendgroup=name,
            showlegend=name not in shown_legend,
            line=dict(color=POSITIVE_COLOR if sign == "+" else NEGATIVE_COLOR, width=width),
            opacity=opacity, hoverinfo="skip",
            meta={"kind": "edges", "layer": layer, "sign": sign, "width_class": k},
        ))
        shown_legend.add(name)
    max_col = max(graph.column_sizes)
    marker_size = float(np.clip(400 / max_col, 4, 18))
    for dead in (False, True):
        nodes = [n for n in graph.nodes if n.dead == dead]
        if not nodes:
            continue
        traces.append(dict(
            type="scatter", x=[n.column for n in nodes], y=[n.y for n in nodes], mode="markers",
            name="dead unit" if dead else "unit",
            marker=dict(size=marker_size, color=PRUNED_COLOR if dead else "#222222", line=dict(width=1, color="white"),
                        symbol="x" if dead else "circle"),
            text=[
                f"{n.label}<br>in: {n.fan_in} · out: {n.fan_out}"
                + (f"<br>{n.size} inputs" if n.size > 1 else "")
                + ("<br><b>dead</b>" if n.dead else "")
                for n in nodes
            ],
            hovertemplate="%{text}<extra></extra>",
            meta={"kind": "nodes", "dead": dead},
        ))
    return traces


NOTE_MARGIN = 160  # px under the plot: three note lines at projector size, then the legend


def _count(n: int) -> str:
    """A count in at most 6 characters: ``950``, ``9,500``, ``23.5k``, ``30k``, ``235k``, ``1.2M``."""
    if n < 10_000:
        return f"{n:,}"
    if n < 1_000_000:
        return (f"{n / 1000:.1f}".removesuffix(".0") if n < 100_000 else f"{n / 1000:.0f}") + "k"
    return f"{n / 1e6:.1f}M"


def graph_layout(graph: ConnectionGraph, title: str | None, height: int) -> dict:
    """The layout of ``connection_graph`` as a plain dict: column titles, per-layer notes, hidden axes."""
    annotations = [dict(x=c, y=1.06, text=f"<b>{name}</b><br>{graph.column_sizes[c]}", showarrow=False,
                        yanchor="bottom", font=dict(size=16))
                   for c, name in enumerate(graph.columns)]
    for i, s in enumerate(graph.layers):
        # lines of at most 13 characters, counts of 10,000 and more as "23.5k": "23,520 of 235,200 kept" ran into
        # the next layer's note at 1280x720 in projector mode (a browser walk); the bottom margin holds three
        note = f"{_count(s.surviving)} of {_count(s.weights)}<br>kept"
        if s.edges_hidden:
            note += f"<br>{_count(s.edges_hidden)} hidden"
        if s.fully_pruned:
            note += "<br><b>layer collapsed</b>"
        annotations.append(dict(x=i + 0.5, y=-0.04, text=note, showarrow=False, yanchor="top",
                                font=dict(size=BASE_FONT_SIZE)))
    sub = [f"inputs: {graph.input_grouping}"]
    if not graph.path_exists:
        sub.append("<b>no path from input to output survives</b>")
    # one subtitle line each: joined, they ran past a two-fifths column at 1280x720 (a browser walk)
    layout = style_layout("<br>".join([title, *(f"<sup>{s}</sup>" for s in sub)]) if title else None, height)
    layout.update(annotations=annotations, legend={**layout["legend"], **LEGEND_BELOW}, plot_bgcolor="white",
                  margin={**layout["margin"], "b": NOTE_MARGIN},
                  xaxis=dict(visible=False, range=[-0.4, len(graph.columns) - 0.6]),
                  yaxis=dict(visible=False, range=[-0.2, 1.2]))
    return layout


def connection_graph(
    graph: ConnectionGraph,
    *,
    width_range: tuple[float, float] = (0.6, 6.0),
    title: str | None = "Surviving connections",
    height: int = 650,
) -> go.Figure:
    """Draw a ``ConnectionGraph``: nodes by layer, edge width ``|w|``, colour = sign, dead nodes grey.

    Built as dicts and constructed once (``add_trace`` and ``update_layout`` one by one cost several times more on
    pages that redraw the graph on every rerun)."""
    return go.Figure(data=graph_traces(graph, width_range), layout=graph_layout(graph, title, height))


def model_graph(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    max_edges_per_layer: int = 250,
    max_input_nodes: int = 64,
    input_shape: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = "Surviving connections",
) -> go.Figure:
    """``build_graph`` then ``connection_graph`` in one call."""
    graph = build_graph(
        model,
        masks,
        max_edges_per_layer=max_edges_per_layer,
        max_input_nodes=max_input_nodes,
        input_shape=input_shape,
        class_names=class_names,
    )
    return connection_graph(graph, title=title)


def edge_count(fig: go.Figure) -> int:
    """Number of edges drawn in a ``connection_graph`` figure."""
    return sum(
        sum(1 for v in tr.x if v is None)
        for tr in fig.data
        if isinstance(tr.meta, dict) and tr.meta.get("kind") == "edges"
    )


__all__ = ["connection_graph", "edge_count", "graph_layout", "graph_traces", "model_graph"]
