"""Input fan-out: how many surviving connections leave each input pixel.

For MNIST this is Han et al.'s picture: after magnitude pruning the centre pixels
keep their connections and the border goes dark. Pixels with no surviving
connection are drawn in the pruned grey.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from .style import PRUNED_COLOR, PRUNED_SCALE, SEQUENTIAL, apply_style, palette


def fanout_map(
    fanout: torch.Tensor | np.ndarray,
    *,
    feature_names: list[str] | None = None,
    title: str | None = "Surviving connections leaving each input pixel",
) -> go.Figure:
    """Fan-out ``(H, W)`` as an image (zero fan-out grey) or ``(features,)`` as bars."""
    f = fanout.detach().cpu().numpy() if isinstance(fanout, torch.Tensor) else np.asarray(fanout)
    f = f.astype(np.float64)
    fig = go.Figure()
    if f.ndim == 2:
        zeros = int((f == 0).sum())
        fig.add_trace(
            go.Heatmap(
                z=np.where(f > 0, f, np.nan),
                colorscale=SEQUENTIAL,
                zmin=0,
                zmax=max(float(f.max()), 1.0),
                name="fan-out",
                # shorter than the plot, its title along it: full height, its foot sat on the x title in a half-width
                # column at projector size (a browser walk)
                colorbar=dict(title=dict(text="connections", side="right"), len=0.75, y=0.55),
                hoverongaps=False,
                hovertemplate="row %{y}, col %{x}<br>%{z:.0f} surviving connections<extra></extra>",
            )
        )
        fig.add_trace(
            go.Heatmap(
                z=np.where(f > 0, np.nan, 1.0),
                colorscale=PRUNED_SCALE,
                zmin=0,
                zmax=1,
                showscale=False,
                name="no connection",
                hoverongaps=False,
                hovertemplate="row %{y}, col %{x}<br>no surviving connection<extra></extra>",
            )
        )
        sub = f"{zeros} of {f.size} pixels disconnected (grey)"
        apply_style(fig, f"{title}<br><sup>{sub}</sup>" if title else sub)
        fig.update_xaxes(title_text="pixel column", showgrid=False, zeroline=False)
        fig.update_yaxes(
            title_text="pixel row", autorange="reversed", scaleanchor="x", scaleratio=1, showgrid=False, zeroline=False
        )
        return fig
    if f.ndim != 1:
        raise ValueError(f"Fan-out must be (H, W) or (features,), got shape {f.shape}.")
    names = feature_names or [f"x{i}" for i in range(f.size)]
    fig.add_trace(go.Bar(x=names, y=f, name="fan-out", marker_color=[palette(0) if v > 0 else PRUNED_COLOR for v in f]))
    apply_style(fig, title.replace("pixel", "feature") if title else None)
    fig.update_xaxes(title_text="input feature")
    fig.update_yaxes(title_text="surviving outgoing connections")
    return fig
