"""Per-layer sensitivity: accuracy against the level one layer is pruned to (the others dense).

Input: a frame from ``sensitivity.sensitivity_scan`` (columns ``layer, level, seed, accuracy,
accuracy_drop``; ``attrs["dense_accuracy"]``). ``sensitivity_curves`` draws one line per layer
(the mean over seeds; a mean ± std band when there are several seeds) and the dense model as a
dotted line, as in Han et al. 2015, Fig. 5; ``sensitivity_heatmap`` shows the accuracy drop per
layer (rows) and level (columns). ``sensitivity_numbers`` is what the line figure draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..sensitivity import scan_summary
from .style import BASELINE_COLOR, SEQUENTIAL, apply_style, palette, with_alpha

REQUIRED = ("layer", "level", "seed", "accuracy", "accuracy_drop")


def sensitivity_numbers(scan: pd.DataFrame) -> pd.DataFrame:
    """Per layer and level, in display units: ``x`` (level %), ``mean``, ``std``, ``drop`` (points), ``seeds``."""
    missing = [c for c in REQUIRED if c not in scan.columns]
    if missing:
        raise ValueError(f"A sensitivity scan needs the columns {', '.join(REQUIRED)}; missing {', '.join(missing)}.")
    t = scan_summary(scan).sort_values(["level"], kind="stable")
    t = t.assign(x=100.0 * t["level"], mean=100.0 * t["mean"], std=100.0 * t["std"], drop=100.0 * t["drop"])
    layers = list(dict.fromkeys(scan["layer"]))
    t["_r"] = t["layer"].map({n: i for i, n in enumerate(layers)})
    return t.sort_values(["_r", "level"], kind="stable").drop(columns="_r").reset_index(drop=True)


def sensitivity_curves(scan: pd.DataFrame, *, dense_accuracy: float | None = None,
                       title: str | None = "Accuracy with one layer pruned") -> go.Figure:
    """Test accuracy (%) against the level (%) one layer is pruned to; one line per layer, the dense model dotted."""
    t = sensitivity_numbers(scan)
    dense = scan.attrs.get("dense_accuracy") if dense_accuracy is None else dense_accuracy
    fig = go.Figure()
    for i, (layer, grp) in enumerate(t.groupby("layer", sort=False)):
        color = palette(i)
        if (grp["seeds"] > 1).any():
            for kind, y in (("band_upper", grp["mean"] + grp["std"]), ("band_lower", grp["mean"] - grp["std"])):
                fig.add_trace(go.Scatter(
                    x=grp["x"], y=y, mode="lines", line=dict(width=0), showlegend=False, legendgroup=layer,
                    hoverinfo="skip", name=f"{layer} ± std", meta={"kind": kind, "layer": layer},
                    fill="tonexty" if kind == "band_lower" else None,
                    fillcolor=with_alpha(color, 0.2) if kind == "band_lower" else None))
        fig.add_trace(go.Scatter(
            x=grp["x"], y=grp["mean"], mode="lines+markers", name=str(layer), legendgroup=layer,
            line=dict(color=color, width=3), marker=dict(size=9),
            customdata=np.stack([grp["drop"], grp["std"], grp["seeds"]], axis=1),
            hovertemplate="pruned %{x:g} %<br>accuracy %{y:.2f} %<br>drop %{customdata[0]:.2f} points"
                          "<br>std %{customdata[1]:.2f} over %{customdata[2]} seed(s)<extra>" + str(layer) + "</extra>",
            meta={"kind": "mean", "layer": layer}))
    if dense is not None and len(t):
        b = 100.0 * float(dense)
        fig.add_trace(go.Scatter(x=[0.0, 100.0], y=[b, b], mode="lines", name=f"dense ({b:.1f} %)",
                                 line=dict(color=BASELINE_COLOR, dash="dot", width=2), meta={"kind": "dense"}))
    apply_style(fig, title)
    fig.update_xaxes(title_text="weights pruned in that layer (%)", range=[-2, 102])
    fig.update_yaxes(title_text="test accuracy (%)")
    fig.update_layout(legend=dict(title_text="layer pruned", x=1.02, xanchor="left", y=1.0, yanchor="top"),
                      margin=dict(r=170))
    return fig


def sensitivity_heatmap(scan: pd.DataFrame, *, title: str | None = "Accuracy drop (points) per layer and level"
                        ) -> go.Figure:
    """Layers (rows) x levels (columns): the mean accuracy drop in points, written in each cell."""
    t = sensitivity_numbers(scan)
    layers = list(dict.fromkeys(t["layer"]))
    levels = sorted(dict.fromkeys(t["x"]))
    z = (t.pivot(index="layer", columns="x", values="drop").reindex(index=layers, columns=levels)
         .to_numpy(dtype=float))
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"{v:g} %" for v in levels], y=layers, colorscale=SEQUENTIAL, zmin=0.0,
        text=[[("" if v != v else f"{v:.1f}") for v in row] for row in z], texttemplate="%{text}",
        colorbar=dict(title=dict(text="drop<br>(points)")),
        hovertemplate="%{y} pruned %{x}<br>drop %{z:.2f} points<extra></extra>"))
    apply_style(fig, title, height=max(320, 90 + 70 * len(layers)))
    fig.update_xaxes(title_text="weights pruned in that layer", type="category")
    fig.update_yaxes(title_text="layer", autorange="reversed", type="category")
    return fig
