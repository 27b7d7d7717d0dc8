"""Weight histograms before and after pruning, as bars over shared bins.

Counts are computed here (``numpy.histogram``) and drawn as ``Bar`` traces, so the
figure carries the exact numbers: ``y`` of the ``before`` trace counts all dense
weights, ``y`` of ``after`` only the surviving ones. Magnitude pruning shows as a
gap around zero.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import plotly.graph_objects as go
import torch

from .style import LEGEND_BELOW, PRUNED_COLOR, apply_style, palette

Weights = torch.Tensor | Mapping[str, torch.Tensor]


def _flat(w: Weights, mask: Weights | None = None) -> np.ndarray:
    if isinstance(w, Mapping):
        keys = list(w)
        if isinstance(mask, Mapping):
            return np.concatenate([_flat(w[k], mask.get(k)) for k in keys]) if keys else np.zeros(0)
        return np.concatenate([_flat(w[k]) for k in keys]) if keys else np.zeros(0)
    v = w.detach().to("cpu", torch.float64).reshape(-1)
    if mask is not None:
        v = v[mask.detach().to("cpu", torch.bool).reshape(-1)]
    return v.numpy()


def histogram_counts(
    dense: Weights, pruned: Weights | None = None, masks: Weights | None = None, bins: int = 60
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(edges, dense_counts, surviving_counts)`` over bins shared by both.

    Surviving weights are ``pruned`` where ``masks`` is True, or, without masks,
    the nonzero entries of ``pruned``.
    """
    before = _flat(dense)
    after = None
    if pruned is not None:
        after = _flat(pruned, masks) if masks is not None else _flat(pruned)
        if masks is None:
            after = after[after != 0]
    lo = float(before.min()) if before.size else -1.0
    hi = float(before.max()) if before.size else 1.0
    if after is not None and after.size:
        lo, hi = min(lo, float(after.min())), max(hi, float(after.max()))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    c_before = np.histogram(before, edges)[0]
    c_after = np.histogram(after, edges)[0] if after is not None else None
    return edges, c_before, c_after


def weight_histogram(
    dense: Weights,
    pruned: Weights | None = None,
    masks: Weights | None = None,
    *,
    bins: int = 60,
    log_y: bool = False,
    title: str | None = "Weight distribution before and after pruning",
) -> go.Figure:
    """Histogram of dense weights and, if given, of the surviving weights after pruning.

    Args:
        dense: a weight tensor or ``{name: tensor}`` (all flattened together).
        pruned: the pruned weights, same form as ``dense``.
        masks: True = survives, same form; without it nonzero ``pruned`` entries survive.
        bins: number of shared bins.
        log_y: logarithmic count axis (shows the few large weights).
    """
    edges, c_before, c_after = histogram_counts(dense, pruned, masks, bins)
    centres = 0.5 * (edges[:-1] + edges[1:])
    width = float(edges[1] - edges[0])
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=centres,
            y=c_before,
            width=width,
            name=f"before pruning ({int(c_before.sum()):,} weights)",
            marker_color=PRUNED_COLOR if c_after is not None else palette(0),
            opacity=0.75,
            hovertemplate="w ≈ %{x:.3f}<br>%{y} weights<extra>before</extra>",
        )
    )
    if c_after is not None:
        fig.add_trace(
            go.Bar(
                x=centres,
                y=c_after,
                width=width,
                name=f"after pruning ({int(c_after.sum()):,} survive)",
                marker_color=palette(0),
                opacity=0.85,
                hovertemplate="w ≈ %{x:.3f}<br>%{y} weights<extra>after</extra>",
            )
        )
    apply_style(fig, title)
    fig.update_layout(barmode="overlay", bargap=0, legend=LEGEND_BELOW)
    fig.update_xaxes(title_text="weight value")
    fig.update_yaxes(title_text="number of weights (log scale)" if log_y else "number of weights")
    if log_y:
        fig.update_yaxes(type="log")
    return fig
