"""Decision boundary of a 2-D model, with the data and, optionally, its gradient field.

The model is evaluated on a regular grid covering the data (plus padding). For
two classes the background is P(class 1) on a blue-white-orange scale with the
0.5 contour drawn bold; for more classes it is the predicted class. Points are
drawn per class with distinct colours *and* marker shapes. The gradient field
(``sparsity_viz.attribution.gradient_field``) is the 2-D toys' attribution view:
arrows show where the input must move to raise the probability of a class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch import nn

from ..attribution import GradientField, gradient_field
from .style import CLASS_SYMBOLS, LEGEND_BELOW, apply_style, palette, with_alpha


@dataclass(frozen=True, eq=False)
class BoundaryGrid:
    """Model output on a grid: ``probs[j, i]`` at ``(xs[i], ys[j])``."""

    xs: np.ndarray  # (nx,)
    ys: np.ndarray  # (ny,)
    probs: np.ndarray  # (ny, nx, classes) softmax probabilities


def data_range(x: torch.Tensor, padding: float = 0.3) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((x0min, x0max), (x1min, x1max))`` of 2-D points, padded by ``padding`` of the span."""
    lo = x.min(0).values
    hi = x.max(0).values
    span = (hi - lo).clamp_min(1e-6)
    lo, hi = lo - padding * span, hi + padding * span
    return (float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1]))


@torch.no_grad()
def boundary_grid(
    model: nn.Module, x_range: tuple[float, float], y_range: tuple[float, float], resolution: int = 100
) -> BoundaryGrid:
    """Softmax of ``model`` on a ``resolution`` x ``resolution`` grid (model mode restored)."""
    xs = np.linspace(x_range[0], x_range[1], resolution, dtype=np.float32)
    ys = np.linspace(y_range[0], y_range[1], resolution, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)  # (ny, nx)
    pts = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        probs = torch.softmax(model(pts.to(p.device if p is not None else "cpu")), dim=1).cpu().numpy()
    finally:
        model.train(was_training)
    return BoundaryGrid(xs, ys, probs.reshape(resolution, resolution, -1))


def _boundary_traces(
    grid: BoundaryGrid,
    x: torch.Tensor | None,
    y: torch.Tensor | None,
    class_names: Sequence[str] | None,
    show_legend: bool = True,
    show_scale: bool = True,
) -> list[go.BaseTraceType]:
    n_classes = grid.probs.shape[-1]
    names = list(class_names) if class_names is not None else [f"class {c}" for c in range(n_classes)]
    traces: list[go.BaseTraceType] = []
    if n_classes == 2:
        scale = [
            [0.0, with_alpha(palette(0), 0.55)],
            [0.5, "rgba(255,255,255,0.6)"],
            [1.0, with_alpha(palette(1), 0.55)],
        ]
        traces.append(
            go.Heatmap(
                x=grid.xs,
                y=grid.ys,
                z=grid.probs[..., 1],
                zmin=0,
                zmax=1,
                colorscale=scale,
                name="P(class 1)",
                showscale=show_scale,
                colorbar=dict(title=dict(text=f"P({names[1]})")),
                hovertemplate="x0 %{x:.2f}, x1 %{y:.2f}<br>P = %{z:.2f}<extra></extra>",
                meta={"kind": "probability"},
            )
        )
        traces.append(
            go.Contour(
                x=grid.xs,
                y=grid.ys,
                z=grid.probs[..., 1],
                contours=dict(start=0.5, end=0.5, size=1, coloring="none"),
                line=dict(width=3, color="black"),
                showscale=False,
                name="decision boundary",
                showlegend=show_legend,
                hoverinfo="skip",
                meta={"kind": "boundary"},
            )
        )
    else:
        pred = grid.probs.argmax(-1)
        scale = []
        for c in range(n_classes):
            col = with_alpha(palette(c), 0.45)
            scale += [[c / n_classes, col], [(c + 1) / n_classes, col]]
        traces.append(
            go.Heatmap(
                x=grid.xs,
                y=grid.ys,
                z=pred,
                zmin=-0.5,
                zmax=n_classes - 0.5,
                colorscale=scale,
                showscale=False,
                name="predicted class",
                hovertemplate="x0 %{x:.2f}, x1 %{y:.2f}<br>class %{z}<extra></extra>",
                meta={"kind": "prediction"},
            )
        )
    if x is not None and y is not None:
        xn = x.detach().cpu().numpy()
        yn = y.detach().cpu().numpy()
        for c in range(n_classes):
            sel = yn == c
            traces.append(
                go.Scatter(
                    x=xn[sel, 0],
                    y=xn[sel, 1],
                    mode="markers",
                    name=names[c],
                    legendgroup=names[c],
                    showlegend=show_legend,
                    marker=dict(
                        color=palette(c),
                        symbol=CLASS_SYMBOLS[c % len(CLASS_SYMBOLS)],
                        size=8,
                        line=dict(width=1, color="white"),
                    ),
                    meta={"kind": "points", "class": c},
                )
            )
    return traces


def _arrow_traces(field: GradientField, x_step: float, y_step: float, show_legend: bool = True) -> list[go.Scatter]:
    g = field.grad.detach().cpu().numpy()  # (ny, nx, 2)
    xs, ys = field.xs.cpu().numpy(), field.ys.cpu().numpy()
    gx, gy = np.meshgrid(xs, ys)
    norm = np.linalg.norm(g, axis=-1)
    gmax = float(norm.max()) if norm.size and norm.max() > 0 else 1.0
    # longest arrow = 0.9 grid cells; scale per axis so arrows stay in their cell
    u = g[..., 0] / gmax * 0.9 * x_step
    v = g[..., 1] / gmax * 0.9 * y_step
    x0, y0 = gx.ravel(), gy.ravel()
    x1, y1 = x0 + u.ravel(), y0 + v.ravel()
    lx = np.stack([x0, x1, np.full_like(x0, np.nan)], 1).ravel()
    ly = np.stack([y0, y1, np.full_like(y0, np.nan)], 1).ravel()
    angle = np.degrees(np.arctan2(u.ravel() / x_step, v.ravel() / y_step))  # clockwise from up, in cell units
    keep = norm.ravel() > 1e-3 * gmax
    return [
        go.Scatter(
            x=lx,
            y=ly,
            mode="lines",
            line=dict(color="#222222", width=2),
            name="gradient",
            showlegend=show_legend,
            hoverinfo="skip",
            connectgaps=False,
            meta={"kind": "gradient_shafts"},
        ),
        go.Scatter(
            x=x1[keep],
            y=y1[keep],
            mode="markers",
            showlegend=False,
            hoverinfo="skip",
            name="gradient",
            marker=dict(symbol="triangle-up", angle=angle[keep], size=8, color="#222222"),
            meta={"kind": "gradient_heads"},
        ),
    ]


def decision_boundary(
    model: nn.Module,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    resolution: int = 100,
    class_names: Sequence[str] | None = None,
    gradient_target: int | None = None,
    gradient_resolution: int = 15,
    title: str | None = "Decision boundary",
    compact: bool = False,
) -> go.Figure:
    """Decision boundary of a 2-D classifier over a grid, with the data points.

    ``compact``: for a narrow column (a third or two fifths of 1280 px): the shading named under the title instead
    of a colour bar, axes named x0 and x1 (at full size the colour bar sat on the axis titles and the titles ran past
    the column, a browser walk at 1280x720).

    Args:
        model: takes ``(N, 2)`` points, returns logits (not modified; its mode is restored).
        x, y: points ``(N, 2)`` and labels ``(N,)`` to draw; they also set the range.
        x_range, y_range: the grid extent (default: the data, padded; else [-2, 2]).
        resolution: grid points per axis.
        gradient_target: draw the gradient field of P(this class) as arrows.
        gradient_resolution: arrows per axis.
    """
    if x is not None and (x_range is None or y_range is None):
        dx, dy = data_range(x)
        x_range, y_range = x_range or dx, y_range or dy
    x_range, y_range = x_range or (-2.0, 2.0), y_range or (-2.0, 2.0)
    grid = boundary_grid(model, x_range, y_range, resolution)
    fig = go.Figure(_boundary_traces(grid, x, y, class_names))
    if gradient_target is not None:
        field = gradient_field(model, x_range, y_range, gradient_target, gradient_resolution)
        steps = (
            (x_range[1] - x_range[0]) / max(gradient_resolution - 1, 1),
            (y_range[1] - y_range[0]) / max(gradient_resolution - 1, 1),
        )
        for tr in _arrow_traces(field, *steps):
            fig.add_trace(tr)
    if compact:
        second = class_names[1] if class_names is not None and len(class_names) > 1 else "class 1"
        sub = f"shade: P({second}), dots: test points"
        title = f"{title}<br><sup>{sub}</sup>" if title else sub
        fig.update_traces(showscale=False, selector=dict(type="heatmap"))
    apply_style(fig, title)
    fig.update_layout(legend=LEGEND_BELOW)
    axis = "x{}" if compact else "feature x{} (input units)"
    fig.update_xaxes(title_text=axis.format(0), range=list(x_range), showgrid=False, constrain="domain")
    fig.update_yaxes(
        title_text=axis.format(1),
        range=list(y_range),
        showgrid=False,
        scaleanchor="x",
        scaleratio=1,
        constrain="domain",
    )
    return fig


def boundary_comparison(
    dense_model: nn.Module,
    pruned_model: nn.Module,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    *,
    resolution: int = 80,
    class_names: Sequence[str] | None = None,
    gradient_target: int | None = None,
    gradient_resolution: int = 13,
    subplot_titles: tuple[str, str] = ("dense model", "pruned model"),
    title: str | None = "Decision boundary before and after pruning",
) -> go.Figure:
    """Dense and pruned decision boundaries (and gradient fields) side by side, same grid."""
    if x is not None:
        x_range, y_range = data_range(x)
    else:
        x_range, y_range = (-2.0, 2.0), (-2.0, 2.0)
    fig = make_subplots(rows=1, cols=2, subplot_titles=subplot_titles, horizontal_spacing=0.08)
    steps = (
        (x_range[1] - x_range[0]) / max(gradient_resolution - 1, 1),
        (y_range[1] - y_range[0]) / max(gradient_resolution - 1, 1),
    )
    for col, model in enumerate((dense_model, pruned_model), start=1):
        grid = boundary_grid(model, x_range, y_range, resolution)
        for tr in _boundary_traces(grid, x, y, class_names, show_legend=col == 1, show_scale=col == 2):
            fig.add_trace(tr, row=1, col=col)
        if gradient_target is not None:
            field = gradient_field(model, x_range, y_range, gradient_target, gradient_resolution)
            for tr in _arrow_traces(field, *steps, show_legend=col == 1):
                fig.add_trace(tr, row=1, col=col)
    apply_style(fig, title, height=560)
    fig.update_layout(legend=LEGEND_BELOW)
    # constrain="domain": equal scales shrink the plot area instead of padding the ranges
    fig.update_xaxes(title_text="feature x0 (input units)", range=list(x_range), showgrid=False, constrain="domain")
    fig.update_yaxes(title_text="feature x1 (input units)", range=list(y_range), showgrid=False, constrain="domain")
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    fig.update_yaxes(scaleanchor="x2", row=1, col=2)
    return fig
