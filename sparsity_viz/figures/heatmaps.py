"""Weight heatmaps: one cell per weight, zero-centred diverging colours, pruned cells grey.

Each figure has two heatmap traces: ``weights`` (the values, ``NaN`` where pruned)
and ``pruned`` (1 where pruned, ``NaN`` elsewhere, drawn in ``PRUNED_COLOR``).
Conv2d weights ``(C_out, C_in, kh, kw)`` become a grid of kernel tiles separated by
one blank (``NaN`` in both traces) row/column: a grid of filters when ``C_in == 1``,
else one row per output channel and one column per input channel.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from .style import DIVERGING, PRUNED_SCALE, apply_style


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
    if w.ndim == 2:
        values = np.where(m, w, np.nan).astype(np.float32)
        pruned = np.where(m, np.nan, 1.0).astype(np.float32)
        return values, pruned, None
    if w.ndim != 4:
        raise ValueError(f"Expected a 2-D (Linear) or 4-D (Conv2d) weight, got shape {tuple(w.shape)}.")
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


def weight_heatmap(
    weight: torch.Tensor,
    mask: torch.Tensor | None = None,
    *,
    title: str | None = None,
    zmax: float | None = None,
) -> go.Figure:
    """Heatmap of a Linear ``(out, in)`` or Conv2d ``(C_out, C_in, kh, kw)`` weight.

    Args:
        weight: the layer's weight.
        mask: True = survives; ``None`` draws every weight as surviving.
        title: figure title (a subtitle with the surviving count is added).
        zmax: colour-scale half range; default the largest surviving ``|w|``.
    """
    values, pruned, index = heatmap_matrix(weight, mask)
    finite = np.abs(values[np.isfinite(values)])
    if zmax is None:
        zmax = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    n_total = weight.numel()
    n_alive = n_total if mask is None else int(mask.sum())
    conv = index is not None
    if conv:
        hover = "out %{customdata[0]}, in %{customdata[1]}<br>kernel (%{customdata[2]}, %{customdata[3]})"
        value_hover = hover + "<br>w = %{z:.4f}<extra></extra>"
        pruned_hover = hover + "<br>pruned<extra></extra>"
    else:
        value_hover = "input %{x}<br>output %{y}<br>w = %{z:.4f}<extra></extra>"
        pruned_hover = "input %{x}<br>output %{y}<br>pruned<extra></extra>"
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=values,
            name="weights",
            colorscale=DIVERGING,
            zmid=0.0,
            zmin=-zmax,
            zmax=zmax,
            customdata=index if conv else None,
            hovertemplate=value_hover,
            colorbar=dict(title=dict(text="weight")),
            hoverongaps=False,
        )
    )
    fig.add_trace(
        go.Heatmap(
            z=pruned,
            name="pruned",
            colorscale=PRUNED_SCALE,
            showscale=False,
            zmin=0,
            zmax=1,
            customdata=index if conv else None,
            hovertemplate=pruned_hover,
            hoverongaps=False,
        )
    )
    sub = f"{n_alive:,} of {n_total:,} weights survive ({100 * n_alive / max(n_total, 1):.1f} %) · grey = pruned"
    full_title = f"{title}<br><sup>{sub}</sup>" if title else sub
    apply_style(fig, full_title)
    if conv:
        _, c_in, kh, kw = weight.shape
        xt = f"input channel ({kh}x{kw} kernel per tile)" if c_in > 1 else f"filter ({kh}x{kw} kernel per tile)"
        yt = "output channel (filter)" if c_in > 1 else "filter"
        fig.update_xaxes(title_text=xt, showticklabels=False, showgrid=False, zeroline=False)
        fig.update_yaxes(title_text=yt, showticklabels=False, showgrid=False, zeroline=False)
    else:
        fig.update_xaxes(title_text="input unit (index)", showgrid=False, zeroline=False)
        fig.update_yaxes(title_text="output unit (index)", showgrid=False, zeroline=False)
    fig.update_yaxes(autorange="reversed")
    if conv:
        fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def layer_heatmap(
    model: nn.Module, masks: Mapping[str, torch.Tensor] | None, layer: str, *, zmax: float | None = None
) -> go.Figure:
    """``weight_heatmap`` of the named layer (``"fc1"`` or ``"fc1.weight"``) of ``model``."""
    key = layer if layer.endswith(".weight") else f"{layer}.weight"
    params = dict(model.named_parameters())
    if key not in params:
        raise ValueError(f"Model has no parameter {key!r}.")
    mask = None if masks is None else masks.get(key)
    w = params[key]
    return weight_heatmap(w, mask, title=f"{key.removesuffix('.weight')} weights {tuple(w.shape)}", zmax=zmax)
