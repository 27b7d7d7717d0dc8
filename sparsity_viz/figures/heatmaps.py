"""Weight heatmaps: one cell per weight, zero-centred diverging colours, pruned cells grey.

Each figure has two heatmap traces: ``weights`` (the values, ``NaN`` where pruned)
and ``pruned`` (1 where pruned, ``NaN`` elsewhere, drawn in ``PRUNED_COLOR``).
Conv2d weights ``(C_out, C_in, kh, kw)`` become a grid of kernel tiles separated by
one blank (``NaN`` in both traces) row/column: a grid of filters when ``C_in == 1``,
else one row per output channel and one column per input channel.

A *preview* (``max_cells``) keeps every ``s``-th row and column of a Linear weight (every
``s``-th filter / channel of a conv weight), the smallest ``s`` that fits: each cell drawn
is a real weight, grey exactly where it is pruned, and hovers with its true indices. At
``PREVIEW_CELLS`` a heatmap's figure JSON stays under about 300 KB (LeNet-300-100's fc1 at
full resolution is 3 MB, sent on every slider move).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from .style import DIVERGING, PRUNED_SCALE, style_layout

PREVIEW_CELLS = 20_000  # two float32 traces of 20,000 cells: about 215 KB of figure JSON
CONV_CELL_COST = 3  # a conv cell also carries its (out, in, ky, kx) hover indices (int16) in both traces


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


def heatmap_matrix(
    weight: torch.Tensor, mask: torch.Tensor | None = None, gap: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The 2-D arrays a weight heatmap draws.

    Returns ``(values, pruned, index)``: ``values`` float32 with ``NaN`` where pruned
    or in a gap; ``pruned`` 1.0 where pruned, ``NaN`` elsewhere; ``index`` for conv
    weights an ``(rows, cols, 4)`` int array of ``(out, in, ky, kx)`` per cell (-1 in
    gaps), ``None`` for 2-D weights.
    """
    w = _np(weight)
    m = np.ones_like(w, dtype=bool) if mask is None else mask.detach().to("cpu", torch.bool).numpy()
    if w.ndim == 3:  # Conv1d (out, in, k): one row of taps per kernel
        w, m = w[:, :, None, :], m[:, :, None, :]
    if w.ndim == 2:
        values = np.where(m, w, np.nan).astype(np.float32)
        pruned = np.where(m, np.nan, 1.0).astype(np.float32)
        return values, pruned, None
    if w.ndim != 4:
        raise ValueError(f"Expected a 2-D (Linear), 3-D (Conv1d) or 4-D (Conv2d) weight, got shape {tuple(w.shape)}.")
    c_out, c_in, kh, kw = w.shape
    if c_in == 1:
        ncols = math.ceil(math.sqrt(c_out))
        nrows = math.ceil(c_out / ncols)
        slots = [((o // ncols), (o % ncols), o, 0) for o in range(c_out)]
    else:
        nrows, ncols = c_out, c_in
        slots = [(o, i, o, i) for o in range(c_out) for i in range(c_in)]
    rows, cols = nrows * (kh + gap) - gap, ncols * (kw + gap) - gap
    values = np.full((rows, cols), np.nan, dtype=np.float32)
    pruned = np.full((rows, cols), np.nan, dtype=np.float32)
    index = np.full((rows, cols, 4), -1, dtype=np.int32)
    ky, kx = np.meshgrid(np.arange(kh), np.arange(kw), indexing="ij")
    for r, c, o, i in slots:
        r0, c0 = r * (kh + gap), c * (kw + gap)
        tile_w, tile_m = w[o, i], m[o, i]
        values[r0 : r0 + kh, c0 : c0 + kw] = np.where(tile_m, tile_w, np.nan)
        pruned[r0 : r0 + kh, c0 : c0 + kw] = np.where(tile_m, np.nan, 1.0)
        index[r0 : r0 + kh, c0 : c0 + kw] = np.stack([np.full_like(ky, o), np.full_like(ky, i), ky, kx], axis=-1)
    return values, pruned, index


def _cells(shape: tuple[int, ...], stride: int) -> int:
    """Cells of ``heatmap_matrix`` for a weight of ``shape`` kept every ``stride``-th row / column (channel)."""
    if len(shape) == 2:
        return math.ceil(shape[0] / stride) * math.ceil(shape[1] / stride)
    c_out, c_in, kh, kw = shape
    c_out = math.ceil(c_out / stride)
    if c_in == 1:
        ncols = math.ceil(math.sqrt(c_out))
        return (math.ceil(c_out / ncols) * (kh + 1) - 1) * (ncols * (kw + 1) - 1)
    c_in = math.ceil(c_in / stride)
    return (c_out * (kh + 1) - 1) * (c_in * (kw + 1) - 1)


def preview_stride(shape: tuple[int, ...], max_cells: int | None) -> int:
    """The smallest stride whose preview of a weight of ``shape`` has at most ``max_cells`` cells (1: all)."""
    if max_cells is None:
        return 1
    if max_cells < 1:
        raise ValueError(f"max_cells must be at least 1, got {max_cells}.")
    stride = 1
    while _cells(tuple(shape), stride) > max_cells and stride < max(shape[:2]):
        stride += 1
    return stride


def weight_heatmap(
    weight: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    title: str | None = None,
    zmax: float | None = None,
    max_cells: int | None = None,
    height: int | None = None,
) -> go.Figure:
    """Heatmap of a Linear ``(out, in)`` or Conv2d ``(C_out, C_in, kh, kw)`` weight.

    Args:
        weight: the layer's weight.
        mask: True = survives; ``None`` draws every weight as surviving.
        title: figure title (a subtitle with the surviving count is added).
        zmax: colour-scale half range; default the largest surviving ``|w|`` (of the whole weight).
        max_cells: draw a preview of at most this many cells (every ``s``-th row and column;
            ``preview_stride``); ``None`` draws every weight.
        height: figure height in px (default plotly's).
    """
    if weight.dim() == 3:  # Conv1d (out, in, k): drawn as a conv of 1 x k kernels (the pages raised on it, an audit)
        weight = weight.unsqueeze(2)
        mask = mask.unsqueeze(2) if mask is not None else None
    if weight.dim() not in (2, 4):
        raise ValueError(f"Expected a 2-D (Linear), 3-D (Conv1d) or 4-D (Conv2d) weight, got shape "
                         f"{tuple(weight.shape)}.")
    full_mask, full_shape = mask, tuple(weight.shape)
    if zmax is None:
        alive = weight.detach().abs() if mask is None else weight.detach().abs()[mask.to(torch.bool)]
        zmax = float(alive.max()) if alive.numel() and float(alive.max()) > 0 else 1.0
    budget = None if max_cells is None or weight.dim() == 2 else max(1, max_cells // CONV_CELL_COST)
    stride = preview_stride(tuple(weight.shape), max_cells if budget is None else budget)
    rows = torch.arange(0, weight.shape[0], stride)
    cols = torch.arange(0, weight.shape[1], stride) if weight.dim() == 2 or weight.shape[1] > 1 else torch.arange(1)
    if stride > 1:
        weight = weight[rows][:, cols]
        mask = None if mask is None else mask[rows][:, cols]
    values, pruned, index = heatmap_matrix(weight, mask)
    if index is not None and stride > 1:  # true channel indices in the hover
        live = index[..., 0] >= 0
        index[..., 0][live] = rows.numpy()[index[..., 0][live]]
        index[..., 1][live] = cols.numpy()[index[..., 1][live]]
    n_total = math.prod(full_shape)
    n_alive = n_total if full_mask is None else int(full_mask.sum())
    conv = index is not None
    if conv and index.size and index.max() < np.iinfo(np.int16).max:
        index = index.astype(np.int16)  # half the bytes sent to the browser
    xy = {} if conv or stride == 1 else {"x": cols.tolist(), "y": rows.tolist()}
    if conv:
        hover = "out %{customdata[0]}, in %{customdata[1]}<br>kernel (%{customdata[2]}, %{customdata[3]})"
        value_hover = hover + "<br>w = %{z:.4f}<extra></extra>"
        pruned_hover = hover + "<br>pruned<extra></extra>"
    else:
        value_hover = "input %{x}<br>output %{y}<br>w = %{z:.4f}<extra></extra>"
        pruned_hover = "input %{x}<br>output %{y}<br>pruned<extra></extra>"
    traces = [
        go.Heatmap(z=values, **xy, name="weights", colorscale=DIVERGING, zmid=0.0, zmin=-zmax, zmax=zmax,
                   customdata=index if conv else None, hovertemplate=value_hover,
                   colorbar=dict(title=dict(text="weight")), hoverongaps=False),
        go.Heatmap(z=pruned, **xy, name="pruned", colorscale=PRUNED_SCALE, showscale=False, zmin=0, zmax=1,
                   customdata=index if conv else None, hovertemplate=pruned_hover, hoverongaps=False),
    ]
    sub = f"{n_alive:,} of {n_total:,} survive ({100 * n_alive / max(n_total, 1):.1f} %) · grey = pruned"
    if stride > 1:
        what = "row and column" if not conv else ("filter" if full_shape[1] == 1 else "filter and input channel")
        sub += f"<br>preview: every {_nth(stride)} {what}"  # the page's toggle draws them all
    full_title = f"{title}<br><sup>{sub}</sup>" if title else sub
    axis = dict(showgrid=False, zeroline=False)
    if conv:
        _, c_in, kh, kw = full_shape
        xt = f"input channel ({kh}x{kw} kernel per tile)" if c_in > 1 else f"filter ({kh}x{kw} kernel per tile)"
        yt = "output channel (filter)" if c_in > 1 else "filter"
        xaxis = dict(axis, title_text=xt, showticklabels=False)
        yaxis = dict(axis, title_text=yt, showticklabels=False, autorange="reversed", scaleanchor="x", scaleratio=1)
    else:
        xaxis = dict(axis, title_text="input unit (index)")
        yaxis = dict(axis, title_text="output unit (index)", autorange="reversed")
    # one constructor call: drawn on every slider move, where update_layout after add_trace costs three times more
    return go.Figure(data=traces, layout={**style_layout(full_title, height), "xaxis": xaxis, "yaxis": yaxis})


def _nth(k: int) -> str:
    return f"{k}{'th' if 10 <= k % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(k % 10, 'th')}"


def layer_heatmap(
    model: nn.Module, masks: Mapping[str, torch.Tensor] | None, layer: str, *, zmax: float | None = None,
    max_cells: int | None = None, height: int | None = None,
) -> go.Figure:
    """``weight_heatmap`` of the named layer (``"fc1"`` or ``"fc1.weight"``) of ``model``."""
    key = layer if layer.endswith(".weight") else f"{layer}.weight"
    params = dict(model.named_parameters())
    if key not in params:
        raise ValueError(f"Model has no parameter {key!r}.")
    mask = None if masks is None else masks.get(key)
    w = params[key]
    return weight_heatmap(w, mask, title=f"{key.removesuffix('.weight')} weights {tuple(w.shape)}", zmax=zmax,
                          max_cells=max_cells, height=height)
