"""Receptive-field grids (what each first-layer unit looks at) and one unit's fan-in / fan-out graph.

``receptive_field_grid`` draws ``ReceptiveFields`` as one heatmap of tiles, one tile per
unit: surviving weights on the zero-centred diverging scale, pruned weights grey (the
plot background shows through their ``NaN``), white lines between tiles, dead units
covered in grey. A transparent marker per tile (trace ``meta={"kind": "units"}``,
``customdata`` = unit index) makes tiles clickable (``st.plotly_chart(on_select=...)``).
``unit_graph`` is ``graphs.connection_graph`` with everything faded except one unit's
surviving in- and out-edges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from ..graph import build_graph
from ..receptive_fields import ReceptiveFields, unit_fans, unit_masks
from .graphs import graph_layout, graph_traces
from .style import DIVERGING, PRUNED_COLOR, apply_style, palette

HIGHLIGHT = palette(1)  # Okabe-Ito orange: the selected unit


def grid_shape(n: int) -> tuple[int, int]:
    """``(rows, cols)`` of a near-square grid of ``n`` tiles."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return max(1, math.ceil(n / cols)), cols


def tile_grid(images: np.ndarray, cols: int) -> np.ndarray:
    """``(n, h, w)`` tiles -> one ``(rows*(h+1)-1, cols*(w+1)-1)`` array, ``NaN`` in the one-cell gaps."""
    n, h, w = images.shape
    rows = max(1, math.ceil(n / cols))
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan, dtype=np.float32)
    for k in range(n):
        r, c = divmod(k, cols)
        out[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = images[k]
    return out


def receptive_field_grid(
    fields: ReceptiveFields,
    units: Sequence[int] | None = None,
    *,
    title: str | None = None,
    zmax: float | None = None,
    selected: int | None = None,
    height: int = 480,
) -> go.Figure:
    """The tiles of ``units`` (default all) of ``fields``; ``zmax`` shared between grids that are compared."""
    units = list(range(fields.units)) if units is None else [int(u) for u in units]
    if not units:
        raise ValueError("No unit to draw.")
    if min(units) < 0 or max(units) >= fields.units:
        raise ValueError(f"{fields.layer} has {fields.units} units; asked for units {min(units)}..{max(units)}.")
    images = fields.images[units]  # (n, h, w)
    n, h, w = images.shape
    rows, cols = grid_shape(n)
    z = tile_grid(images, cols)
    zmax = zmax if zmax is not None else fields.zmax
    fig = go.Figure(go.Heatmap(
        z=z, name="weights", colorscale=DIVERGING, zmid=0.0, zmin=-zmax, zmax=zmax, hoverongaps=False,
        colorbar=dict(title=dict(text="weight")), hovertemplate="w = %{z:.4f}<extra></extra>"))
    centres_x = [(k % cols) * (w + 1) + (w - 1) / 2 for k in range(n)]
    centres_y = [(k // cols) * (h + 1) + (h - 1) / 2 for k in range(n)]
    labels = [f"{fields.layer} unit {u}<br>{int(fields.alive[u])} of {fields.inputs} weights survive"
              + ("<br><b>dead</b>" if fields.dead[u] else "") for u in units]
    fig.add_trace(go.Scatter(
        x=centres_x, y=centres_y, mode="markers", name="units", showlegend=False, customdata=units, text=labels,
        marker=dict(size=max(8, int(400 / max(rows, cols))), color="rgba(0,0,0,0)", symbol="square"),
        hovertemplate="%{text}<br>click: show its connections<extra></extra>", meta={"kind": "units"}))
    shapes = [dict(type="line", x0=c * (w + 1) - 1, x1=c * (w + 1) - 1, y0=-0.5, y1=rows * (h + 1) - 1.5,
                   line=dict(color="white", width=3)) for c in range(1, cols)]
    shapes += [dict(type="line", y0=r * (h + 1) - 1, y1=r * (h + 1) - 1, x0=-0.5, x1=cols * (w + 1) - 1.5,
                    line=dict(color="white", width=3)) for r in range(1, rows)]
    for k, u in enumerate(units):
        x0, y0 = (k % cols) * (w + 1) - 0.5, (k // cols) * (h + 1) - 0.5
        if fields.dead[u]:
            shapes.append(dict(type="rect", x0=x0, x1=x0 + w, y0=y0, y1=y0 + h, line=dict(width=0),
                               fillcolor=PRUNED_COLOR, opacity=0.9, name="dead"))
        if u == selected:
            shapes.append(dict(type="rect", x0=x0, x1=x0 + w, y0=y0, y1=y0 + h, name="selected",
                               line=dict(color=HIGHLIGHT, width=4)))
    for k in range(n, rows * cols):  # empty slots of the last row: white, not "pruned" grey
        x0, y0 = (k % cols) * (w + 1) - 0.5, (k // cols) * (h + 1) - 0.5
        shapes.append(dict(type="rect", x0=x0, x1=x0 + w + 1, y0=y0, y1=y0 + h + 1, line=dict(width=0),
                           fillcolor="white"))
    dead = int(fields.dead[units].sum())
    sub = f"units {units[0]}-{units[-1]} of {fields.units} · {dead} dead here"  # half width at 1280x720: short
    apply_style(fig, f"{title}<br><sup>{sub}</sup>" if title else sub, height=height)
    fig.update_layout(shapes=shapes, plot_bgcolor=PRUNED_COLOR, margin=dict(l=20, r=20))
    fig.update_xaxes(visible=False, range=[-0.5, cols * (w + 1) - 1.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[rows * (h + 1) - 1.5, -0.5], scaleanchor="x", scaleratio=1,
                     constrain="domain")
    return fig


def unit_graph(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None,
    layer: str,
    unit: int,
    *,
    input_shape: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    max_edges_per_layer: int = 150,
    height: int = 600,
) -> go.Figure:
    """The connection graph with one unit's surviving fan-in and fan-out drawn over the faded rest."""
    fans = unit_fans(model, masks, layer, unit)
    kw = dict(input_shape=input_shape, class_names=class_names)
    background = build_graph(model, masks, max_edges_per_layer=max_edges_per_layer, **kw)
    focus = build_graph(model, unit_masks(model, masks, layer, unit), max_edges_per_layer=10**9, **kw)
    title = (f"{layer} unit {unit}: {fans.fan_in_weights} weights in (from {fans.fan_in_units} inputs), "
             f"{fans.fan_out_weights} out (to {fans.fan_out_units} units)")
    traces = graph_traces(background)
    for tr in traces:
        if tr["meta"]["kind"] == "edges":
            tr["opacity"] = 0.12 * (tr["opacity"] or 1.0)
    # the focus graph's edges (same node positions: they depend on the column sizes only), at full strength
    for tr in graph_traces(focus):
        if tr["meta"]["kind"] == "edges":
            traces.append({**tr, "meta": {**tr["meta"], "kind": "unit_edges"}, "showlegend": False, "opacity": 0.9})
    column = [n for n in background.nodes if n.column == background.columns.index(layer)]
    node = column[unit]
    traces.append(dict(type="scatter", x=[node.column], y=[node.y], mode="markers", name=f"{layer} unit {unit}",
                       marker=dict(size=22, color=HIGHLIGHT, symbol="star", line=dict(width=1, color="black")),
                       hovertemplate=f"{layer} unit {unit}<extra></extra>", meta={"kind": "selected"}))
    fig = go.Figure(data=traces, layout=graph_layout(background, title, height))  # one constructor: see graphs.py
    return fig


__all__ = ["grid_shape", "receptive_field_grid", "tile_grid", "unit_graph"]
