"""Activation figures: one input's activations per layer, a layer's value histogram, zero share per layer.

* ``activation_heatmaps``: one panel per hidden layer, one row per model (dense, current).
  A Linear layer's units are folded into a near-square grid (``unit_grid_shape``: 300 -> 15 x 20,
  row-major, unit ``r * cols + c``); a conv layer's channel maps are tiled into a grid of
  small multiples with one blank pixel between maps (``activation_mosaic``). Every panel is
  two ``Heatmap`` traces: the non-zero values on a shared colour axis, and the **exact zeros**
  in ``ZERO_COLOR`` (a grey no value colour can be mistaken for). Hover names the unit
  (or channel, row, column) and its value. Traces carry ``meta = {"row", "layer", "kind"}``.
* ``activation_histogram``: per model, the share of a layer's activations that are exactly 0
  (left panel, labelled) and the histogram of the non-zero values (right panel, % of all
  activations), from ``activations.ValueHistogram`` counts.
* ``zero_share_bars``: the zero share of every layer, dense against current
  (``activations.compare_reports`` columns), dense in grey as everywhere else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .style import BASE_FONT_SIZE, LEGEND_BELOW, PRUNED_COLOR, SEQUENTIAL, apply_style, palette, title_margin

ZERO_COLOR = PRUNED_COLOR  # exact zeros: the grey of "off" (pruned weights, dead units)
DENSE_COLOR = PRUNED_COLOR  # the dense reference (as in the weight histogram and the speed bars)
CURRENT_COLOR = palette(0)
_ZERO_SCALE = [[0.0, ZERO_COLOR], [1.0, ZERO_COLOR]]


def unit_grid_shape(n: int) -> tuple[int, int]:
    """``(rows, cols)`` of a near-square grid for ``n`` units: an exact factorisation when one is close to square
    (300 -> 15 x 20, 100 -> 10 x 10), else ``ceil(sqrt(n))`` columns with the last row part-filled."""
    if n < 1:
        raise ValueError(f"need at least one unit, got {n}.")
    root = math.isqrt(n)
    for rows in range(root, 0, -1):
        if n % rows == 0:
            if 2 * rows >= root:  # cols / rows <= ~4
                return rows, n // rows
            break
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _np(t: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().to("cpu", torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def activation_mosaic(act: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(z, ids)`` of one layer's activations for one input, as drawn by ``activation_heatmaps``.

    ``(units,)``: ``z`` is the ``unit_grid_shape`` grid (NaN where the grid is padded), ``ids[r, c] = [unit]``.
    ``(channels, L)`` is drawn as ``(channels, 1, L)``.
    ``(channels, H, W)``: the channel maps tiled ``unit_grid_shape(channels)`` with a NaN gap of one pixel,
    ``ids[r, c] = [channel, row, col]``. ``ids`` is -1 on padding.
    """
    a = _np(act)
    if a.ndim == 1:
        rows, cols = unit_grid_shape(a.size)
        z = np.full(rows * cols, np.nan)
        z[: a.size] = a
        ids = np.full(rows * cols, -1)
        ids[: a.size] = np.arange(a.size)
        return z.reshape(rows, cols), ids.reshape(rows, cols, 1)
    if a.ndim == 2:  # a Conv1d layer's (channels, L): each channel a row of L (it raised, an audit)
        a = a[:, None, :]
    if a.ndim != 3:
        raise ValueError(f"expected (units,), (channels, L) or (channels, H, W) activations, got shape {a.shape}.")
    channels, h, w = a.shape
    rows, cols = unit_grid_shape(channels)
    z = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    ids = np.full(z.shape + (3,), -1)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    for ch in range(channels):
        r0, c0 = (ch // cols) * (h + 1), (ch % cols) * (w + 1)
        z[r0 : r0 + h, c0 : c0 + w] = a[ch]
        ids[r0 : r0 + h, c0 : c0 + w] = np.stack([np.full((h, w), ch), yy, xx], axis=-1)
    return z, ids


def _zero_share(a: np.ndarray) -> float:
    return float((a == 0).mean()) if a.size else 0.0


def activation_heatmaps(rows: Mapping[str, Mapping[str, torch.Tensor]], *,
                        title: str | None = "Activations of one input", height: int | None = None) -> go.Figure:
    """One panel per layer (columns) and model (rows: ``{"dense": acts, "current": acts}``).

    ``acts`` is ``activations.activations_of_input``'s ``{layer: (units,) or (C, H, W)}``; every row must
    have the same layers. Exact zeros are drawn in ``ZERO_COLOR``; the other values share one colour axis.
    """
    labels = list(rows)
    if not labels:
        raise ValueError("no activations to draw.")
    layers = list(rows[labels[0]])
    if any(list(rows[l]) != layers for l in labels) or not layers:
        raise ValueError(f"every row needs the same hidden layers, got {[list(rows[l]) for l in labels]}.")
    mosaics = {(l, n): activation_mosaic(rows[l][n]) for l in labels for n in layers}
    values = np.concatenate([_np(rows[l][n]).ravel() for l in labels for n in layers])
    nonzero = values[values != 0]
    cmin = min(0.0, float(nonzero.min())) if nonzero.size else 0.0
    cmax = float(nonzero.max()) if nonzero.size else 1.0
    if cmax <= cmin:
        cmax = cmin + 1.0
    # every panel at least a quarter of the row, short panel titles, the row named on its left: LeNet-5's fc1 panel
    # was 40 px wide and "current: fc1, 41 % zero" ran into its neighbour's title (a browser walk at 1280x720)
    widths = [mosaics[(labels[0], n)][0].shape[1] for n in layers]
    widths = [max(w, sum(widths) / 4) for w in widths]
    titles = [f"{n}: {100 * _zero_share(_np(rows[l][n])):.0f} % zero" for l in labels for n in layers]
    fig = make_subplots(rows=len(labels), cols=len(layers), subplot_titles=titles,
                        column_widths=[w / sum(widths) for w in widths], horizontal_spacing=0.04,
                        vertical_spacing=0.12 if len(labels) > 1 else 0.08)
    for i, label in enumerate(labels, start=1):
        for j, name in enumerate(layers, start=1):
            z, ids = mosaics[(label, name)]
            conv = ids.shape[-1] == 3
            where = "channel %{customdata[0]}, row %{customdata[1]}, col %{customdata[2]}" if conv \
                else "unit %{customdata[0]}"
            zero = np.where(z == 0, 1.0, np.nan).astype(np.float32)  # float32: half the JSON
            shown = np.where(z == 0, np.nan, z).astype(np.float32)
            fig.add_trace(go.Heatmap(z=shown, customdata=ids, coloraxis="coloraxis", hoverongaps=False,
                                     hovertemplate=f"{name} {where}<br>value %{{z:.4g}}<extra>{label}</extra>",
                                     meta={"row": label, "layer": name, "kind": "values"}), row=i, col=j)
            fig.add_trace(go.Heatmap(z=zero, customdata=ids, colorscale=_ZERO_SCALE, showscale=False,
                                     hoverongaps=False, zmin=0, zmax=1,
                                     hovertemplate=f"{name} {where}<br>exactly 0<extra>{label}</extra>",
                                     meta={"row": label, "layer": name, "kind": "zeros"}), row=i, col=j)
            k = (i - 1) * len(layers) + j
            fig.update_yaxes(autorange="reversed", scaleanchor=f"x{'' if k == 1 else k}", constrain="domain",
                             showticklabels=False, showgrid=False, zeroline=False, row=i, col=j)
            fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", row=i, col=j)
        if len(labels) > 1:
            fig.update_yaxes(title_text=label, row=i, col=1)
    grey = f"<span style='color:{ZERO_COLOR}'><b>grey</b> = exactly 0</span>"
    # the key under the title: as a note above the plot's right edge it sat on a long title (an audit)
    apply_style(fig, f"{title}<br><sup>{grey}</sup>" if title else None, height=height or (330 * len(labels) + 120))
    # the bar under the maps: at the right, the last map's title ran over it at 1280x720 (a browser walk)
    fig.update_layout(coloraxis=dict(colorscale=SEQUENTIAL, cmin=cmin, cmax=cmax,
                                     colorbar=dict(title=dict(text="value", side="right"), orientation="h", len=0.5,
                                                   x=0.5, y=-0.03, yanchor="top", thickness=12)),
                      margin=dict(l=20, r=20, b=90))
    if not title:
        fig.add_annotation(text=grey, xref="paper", yref="paper", x=1.0, y=1.0, yanchor="bottom", xanchor="right",
                           showarrow=False, yshift=10, font=dict(size=BASE_FONT_SIZE))
    fig.update_annotations(font_size=BASE_FONT_SIZE - 2)
    return fig


def _color(label: str, i: int) -> str:
    return DENSE_COLOR if label == "dense" else (CURRENT_COLOR if i <= 1 else palette(i))


def activation_histogram(hists: Mapping[str, Any], *, title: str | None = None) -> go.Figure:
    """Exact zeros (left) and the non-zero values (right) of one layer, per model, as % of its activations.

    ``hists`` maps a label ("dense", "current") to an ``activations.ValueHistogram`` of one layer; all over the
    same bins (``value_histogram(..., value_range=...)``).
    """
    labels = list(hists)
    if not labels:
        raise ValueError("no histogram to draw.")
    edges = _np(hists[labels[0]].edges)
    if any(not np.array_equal(_np(h.edges), edges) for h in hists.values()):
        raise ValueError("the histograms must share their bins (pass the same value_range).")
    centres, width = 0.5 * (edges[:-1] + edges[1:]), float(edges[1] - edges[0])
    fig = make_subplots(rows=1, cols=2, column_widths=[0.22, 0.78], horizontal_spacing=0.1,
                        subplot_titles=["exactly 0", "the other values"])
    for i, label in enumerate(labels):
        h = hists[label]
        color = _color(label, i)
        share = 100 * h.zero_fraction
        fig.add_trace(go.Bar(x=[label], y=[share], marker_color=color, text=[f"{share:.1f} %"],
                             textposition="outside", cliponaxis=False, showlegend=False, customdata=[h.zeros],
                             hovertemplate="%{customdata:,} of " + f"{h.total:,}" + " exactly 0<extra>%{x}</extra>",
                             meta={"row": label, "kind": "zeros"}), row=1, col=1)
        counts = _np(h.counts)
        fig.add_trace(go.Bar(x=centres, y=100 * counts / max(h.total, 1), width=width, marker_color=color,
                             opacity=0.7 if len(labels) > 1 else 0.9, name=label, customdata=counts,
                             hovertemplate="value ≈ %{x:.3g}<br>%{customdata:,} activations (%{y:.2f} %)"
                                           f"<extra>{label}</extra>",
                             meta={"row": label, "kind": "values"}), row=1, col=2)
    apply_style(fig, title or f"{hists[labels[0]].layer}: activation values")
    fig.update_layout(barmode="overlay", bargap=0.1, legend=LEGEND_BELOW, height=460)
    fig.update_yaxes(title_text="% of the layer's activations", row=1, col=1, range=[0, 115])
    fig.update_yaxes(title_text="% of activations", row=1, col=2)
    fig.update_xaxes(title_text="activation value (non-zero)", row=1, col=2)
    return fig


def zero_share_bars(table: pd.DataFrame, *, title: str | None = "Exact zeros per layer") -> go.Figure:
    """Zero share (%) per hidden layer, dense against current, from ``activations.compare_reports``."""
    fig = go.Figure()
    for column, label, color in (("dense_zero_pct", "dense", DENSE_COLOR), ("current_zero_pct", "current",
                                                                            CURRENT_COLOR)):
        y = table[column].astype(float).to_numpy()
        fig.add_trace(go.Bar(x=table["layer"].tolist(), y=y, name=label, marker_color=color,
                             text=[f"{v:.1f} %" for v in y], textposition="outside", cliponaxis=False,
                             hovertemplate="%{x}: %{y:.2f} % exactly 0<extra>" + label + "</extra>", meta=label))
    apply_style(fig, title, height=420)
    # the layer names are the tick labels: no x title, so the legend below never sits on one
    fig.update_layout(barmode="group", legend=LEGEND_BELOW)
    fig.update_yaxes(title_text="exactly 0 (%)", range=[0, 112])  # a longer title ran into the figure's title
    return fig


def input_point(x: torch.Tensor, y: torch.Tensor, index: int, *, class_names: tuple[str, ...] = (),
                title: str | None = None) -> go.Figure:
    """A 2-D toy's test points by class (faint) with point ``index`` marked: where the chosen input lies."""
    pts, labels = _np(x), _np(y).astype(int)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"input_point draws 2-D points, got shape {pts.shape}.")
    if not 0 <= index < len(pts):
        raise ValueError(f"index {index} is outside 0..{len(pts) - 1}.")
    fig = go.Figure()
    for c in np.unique(labels):
        sel = labels == c
        name = class_names[c] if c < len(class_names) else f"class {c}"
        fig.add_trace(go.Scatter(x=pts[sel, 0], y=pts[sel, 1], mode="markers", name=name, opacity=0.35,
                                 marker=dict(color=palette(int(c)), size=7), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[pts[index, 0]], y=[pts[index, 1]], mode="markers", name=f"input {index}",
                             marker=dict(color="black", size=18, symbol="x"), meta="chosen",
                             hovertemplate="(%{x:.2f}, %{y:.2f})<extra>input " + str(index) + "</extra>"))
    apply_style(fig, title, height=340)
    fig.update_layout(margin=dict(l=40, r=10, t=title_margin(title) if title else 10, b=40), legend=LEGEND_BELOW)
    fig.update_yaxes(scaleanchor="x")
    return fig
