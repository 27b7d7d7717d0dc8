"""Attribution maps side by side: input, dense model, pruned model, difference.

Images: four heatmaps (pixel rows top to bottom). Dense and pruned share one
zero-centred diverging scale so their colours compare directly; the difference
(pruned - dense) has its own. Flat inputs (2-D toys): grouped bars per feature.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .style import DIVERGING, apply_style, palette


def _sample(t: torch.Tensor | np.ndarray) -> np.ndarray:
    """One sample as a 2-D image (H, W) or a flat vector (F,)."""
    a = t.detach().to("cpu", torch.float32).numpy() if isinstance(t, torch.Tensor) else np.asarray(t, np.float32)
    if a.ndim == 3:
        a = a.sum(0) if a.shape[0] > 1 else a[0]  # channels summed (our data has one)
    if a.ndim not in (1, 2):
        raise ValueError(f"Expected one sample of shape (C,H,W), (H,W) or (F,), got {a.shape}.")
    return a


def _half_range(*arrays: np.ndarray) -> float:
    m = max((float(np.nanmax(np.abs(a))) for a in arrays if a.size), default=0.0)
    return m if m > 0 else 1.0


def attribution_maps(
    inputs: torch.Tensor | np.ndarray,
    dense: torch.Tensor | np.ndarray,
    pruned: torch.Tensor | np.ndarray,
    *,
    similarity: float | None = None,
    method: str | None = None,
    feature_names: Sequence[str] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Input, dense attribution, pruned attribution and their difference for ONE sample.

    Args:
        inputs: the sample (as it should be shown, e.g. denormalised pixels).
        dense, pruned: attribution maps of the same shape.
        similarity: rank correlation to print in the title.
        method: attribution method label for the title.
        feature_names: names of flat features (default ``x0, x1, ...``).
    """
    x, d, p = _sample(inputs), _sample(dense), _sample(pruned)
    if d.shape != p.shape or d.shape != x.shape:
        raise ValueError(f"Shapes differ: input {x.shape}, dense {d.shape}, pruned {p.shape}.")
    diff = p - d
    head = title or (f"{method} attribution" if method else "Attribution")
    if similarity is not None:
        head += f" · rank correlation dense vs pruned: {similarity:.2f}"
    if x.ndim == 2:
        fig = make_subplots(
            rows=1,
            cols=4,
            subplot_titles=("input", "dense model", "pruned model", "pruned − dense"),
            horizontal_spacing=0.06,
        )
        zr = _half_range(d, p)
        zd = _half_range(diff)
        fig.add_trace(
            go.Heatmap(
                z=x,
                colorscale="gray_r",
                showscale=False,
                name="input",
                hovertemplate="row %{y}, col %{x}<br>pixel %{z:.2f}<extra></extra>",
            ),
            row=1,
            col=1,
        )
        for col, (z, name) in enumerate(((d, "dense"), (p, "pruned")), start=2):
            fig.add_trace(
                go.Heatmap(
                    z=z,
                    coloraxis="coloraxis",
                    name=name,
                    hovertemplate="row %{y}, col %{x}<br>attribution %{z:.3g}<extra>" + name + "</extra>",
                ),
                row=1,
                col=col,
            )
        fig.add_trace(
            go.Heatmap(
                z=diff,
                coloraxis="coloraxis2",
                name="difference",
                hovertemplate="row %{y}, col %{x}<br>difference %{z:.3g}<extra></extra>",
            ),
            row=1,
            col=4,
        )
        bar = dict(orientation="h", y=-0.3, yanchor="top", thickness=14, title=dict(side="top"))
        fig.update_layout(
            coloraxis=dict(
                colorscale=DIVERGING,
                cmid=0,
                cmin=-zr,
                cmax=zr,
                colorbar=dict(bar, x=0.5, len=0.45, title=dict(text="attribution (dense and pruned)")),
            ),
            coloraxis2=dict(
                colorscale=DIVERGING,
                cmid=0,
                cmin=-zd,
                cmax=zd,
                colorbar=dict(bar, x=0.88, len=0.22, title=dict(text="difference")),
            ),
        )
        for i in range(1, 5):
            fig.update_yaxes(
                autorange="reversed",
                scaleanchor=f"x{i if i > 1 else ''}",
                showticklabels=False,
                showgrid=False,
                zeroline=False,
                row=1,
                col=i,
            )
            fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, row=1, col=i)
        fig.update_xaxes(title_text="pixel column", row=1, col=1)
        fig.update_yaxes(title_text="pixel row", row=1, col=1)
        apply_style(fig, head, height=500)
        fig.update_layout(margin=dict(b=150))
        return fig
    names = list(feature_names) if feature_names is not None else [f"x{i}" for i in range(x.size)]
    fig = go.Figure()
    for i, (vals, name) in enumerate(((d, "dense model"), (p, "pruned model"), (diff, "pruned − dense"))):
        fig.add_trace(
            go.Bar(
                x=names,
                y=vals,
                name=name,
                marker_color=palette(i),
                hovertemplate="%{x}: %{y:.3g}<extra>" + name + "</extra>",
            )
        )
    apply_style(fig, head)
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="input feature")
    fig.update_yaxes(title_text="attribution (score units)", zeroline=True)
    return fig
