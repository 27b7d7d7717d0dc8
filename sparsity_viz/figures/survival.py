"""Strategy-lab figures: which connections two strategies keep, which layers each hits, when weights died.

* ``survival_heatmap`` -- one cell per connection, four categories (kept by both /
  only A / only B / neither) on a 4-colour Okabe-Ito scale with a labelled colour bar
  as legend. Conv weights use ``heatmap_matrix``'s kernel-tile layout.
* ``jaccard_bars`` -- Jaccard overlap per layer, with what two independent random
  masks of the same densities would share (a reference line per bar).
* ``sparsity_profile_chart`` -- grouped bars: per layer, the share each strategy pruned
  (effective sparsity as a marker when it is higher).
* ``timeline_state`` / ``death_time_heatmap`` -- at a pruning step, which connections
  are alive, which regrew, and the step at which each dead one died.
* ``lottery_curves`` -- accuracy vs remaining weights (log axis, 100 % on the left)
  for the ticket and its controls.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from .heatmaps import heatmap_matrix
from .style import BASELINE_COLOR, LEGEND_BELOW, OKABE_ITO, SEQUENTIAL, apply_style, strategy_color

# code = kept_A + 2 * kept_B (as sparsity_viz.comparison.survival_map)
SURVIVAL_CATEGORIES = ("neither", "only A", "only B", "both")
SURVIVAL_COLORS = ("#e8e8e8", "#E69F00", "#CC79A7", "#0072B2")  # light grey, Okabe-Ito orange, purple, blue
ALIVE_COLOR = "#000000"
REGROWN_COLOR = "#D55E00"  # Okabe-Ito vermilion: absent from Viridis, so a regrown cell never reads as a death step


def _weight_axes(fig: go.Figure, conv: bool) -> go.Figure:
    """Axes of a weight-matrix picture: rows = output units (top to bottom), columns = inputs."""
    if conv:
        fig.update_xaxes(title_text="input channel (kernel per tile)", showticklabels=False)
        fig.update_yaxes(title_text="output channel (filter)", showticklabels=False, scaleanchor="x", scaleratio=1)
    else:
        fig.update_xaxes(title_text="input unit (index)")
        fig.update_yaxes(title_text="output unit (index)")
    fig.update_xaxes(showgrid=False, zeroline=False)
    fig.update_yaxes(showgrid=False, zeroline=False, autorange="reversed")
    return fig


def _discrete_scale(colors: tuple[str, ...]) -> list[list]:
    """A stepped colour scale for integer codes ``0 .. len(colors) - 1`` (zmin -0.5, zmax n - 0.5)."""
    n = len(colors)
    scale = []
    for i, c in enumerate(colors):
        scale += [[i / n, c], [(i + 1) / n, c]]
    return scale


def _layout_for(cat: torch.Tensor) -> tuple[np.ndarray, bool]:
    """The 2-D array to draw for a Linear (as is) or Conv (kernel tiles, NaN gaps) tensor."""
    values, _, index = heatmap_matrix(cat.float(), None)
    return values, index is not None


def survival_heatmap(categories: torch.Tensor, *, label_a: str = "A", label_b: str = "B",
                     title: str | None = None) -> go.Figure:
    """Heatmap of one layer's survival codes (0 neither, 1 only A, 2 only B, 3 both)."""
    values, conv = _layout_for(categories)
    names = ("pruned by both", f"kept only by {label_a}", f"kept only by {label_b}", "kept by both")
    counts = [int((categories == k).sum()) for k in range(4)]
    text = np.array(names, dtype=object)
    custom = np.where(np.isfinite(values), values, 0).astype(int)
    fig = go.Figure(go.Heatmap(
        z=values, zmin=-0.5, zmax=3.5, colorscale=_discrete_scale(SURVIVAL_COLORS), name="survival",
        customdata=text[custom], hoverongaps=False,
        hovertemplate="input %{x}<br>output %{y}<br>%{customdata}<extra></extra>" if not conv
        else "%{customdata}<extra></extra>",
        colorbar=dict(tickvals=[0, 1, 2, 3], ticktext=[f"{n} ({c:,})" for n, c in zip(names, counts)],
                      title=dict(text="connection"), len=0.9, thickness=28),
    ))
    union = counts[1] + counts[2] + counts[3]
    sub = (f"Jaccard overlap {counts[3] / union:.2f} · both {counts[3]:,} · only {label_a} {counts[1]:,} · "
           f"only {label_b} {counts[2]:,}" if union else "neither strategy keeps a weight here")
    apply_style(fig, f"{title}<br><sup>{sub}</sup>" if title else sub)
    return _weight_axes(fig, conv)


def jaccard_bars(table: pd.DataFrame, *, title: str | None = "Overlap of the kept connections per layer") -> go.Figure:
    """Bars of Jaccard overlap (%) per layer from ``comparison.survival_table``; diamonds: two random masks."""
    t = table.copy()
    t["layer"] = t["layer"].astype(str).str.removesuffix(".weight")
    da = (t["both"] + t["only_a"]) / t["total"].clip(lower=1)
    db = (t["both"] + t["only_b"]) / t["total"].clip(lower=1)
    union = (da + db - da * db).replace(0, np.nan)
    expected = (da * db / union).fillna(1.0)
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=t["layer"], y=100 * t["jaccard"], name="Jaccard: kept by both / kept by either",
        marker_color=[OKABE_ITO[0] if layer != "all" else BASELINE_COLOR for layer in t["layer"]],
        text=[f"{100 * j:.0f} %" for j in t["jaccard"]], textposition="outside",
        hovertemplate="%{x}: %{y:.1f} %<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=t["layer"], y=100 * expected, mode="markers", name="chance: two random masks",
        marker=dict(symbol="diamond", size=16, color=OKABE_ITO[1], line=dict(color="black", width=1)),
        hovertemplate="%{x}: random masks would share %{y:.1f} %<extra></extra>",
    ))
    apply_style(fig, title)
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="Jaccard overlap (%)", range=[0, 112])
    fig.update_layout(legend=LEGEND_BELOW, bargap=0.35)
    return fig


def sparsity_profile_chart(profile: pd.DataFrame, *,
                           title: str | None = "Which layers does each strategy hit hardest?") -> go.Figure:
    """Grouped bars from ``comparison.sparsity_profile``: % pruned per layer and strategy.

    Effective sparsity (weights on no input -> output path count as removed) is a
    black tick on the bar where it exceeds the nominal sparsity.
    """
    p = profile.copy()
    p["layer"] = p["layer"].astype(str).str.removesuffix(".weight")
    layers = list(dict.fromkeys(p["layer"]))
    fig = go.Figure()
    strategies = list(dict.fromkeys(p["strategy"]))
    for i, s in enumerate(strategies):
        d = p[p["strategy"] == s].set_index("layer").reindex(layers)
        fig.add_trace(go.Bar(
            x=layers, y=100 * d["sparsity"], name=str(s), marker_color=strategy_color(s, fallback=i), offsetgroup=str(i),
            customdata=np.stack([d["kept"], d["total"], 100 * d["effective_sparsity"]], axis=1),
            hovertemplate=f"{s}<br>%{{x}}: %{{y:.1f}} % pruned<br>%{{customdata[0]:,}} of %{{customdata[1]:,}} kept"
                          "<br>effective %{customdata[2]:.1f} %<extra></extra>",
        ))
    extra = p[p["effective_sparsity"] > p["sparsity"] + 1e-3]
    if len(extra):
        for i, s in enumerate(strategies):
            d = p[p["strategy"] == s].set_index("layer").reindex(layers)
            eff = np.where(d["effective_sparsity"] > d["sparsity"] + 1e-3, 100 * d["effective_sparsity"], np.nan)
            fig.add_trace(go.Scatter(
                x=layers, y=eff, mode="markers", offsetgroup=str(i), name="effective sparsity" if i == 0 else None,
                showlegend=i == 0, legendgroup="effective",
                marker=dict(symbol="line-ew", size=26, line=dict(width=4, color="black")),
                hovertemplate=f"{s}<br>%{{x}}: effective %{{y:.1f}} %<extra></extra>",
            ))
    apply_style(fig, title)
    fig.update_xaxes(title_text="layer (input → output)")
    fig.update_yaxes(title_text="weights pruned in the layer (%)", range=[0, 105])
    fig.update_layout(barmode="group", legend=LEGEND_BELOW, scattermode="group")
    return fig


def timeline_state(timeline, step: int) -> dict[str, dict[str, torch.Tensor]]:
    """Per layer at ``step``: ``alive`` (bool), ``died`` (step of the last death <= step, -1) and
    ``regrown`` (step of the last regrowth <= step, -1), from a ``MaskTimeline``."""
    out = {n: {"alive": m.clone().cpu().bool(), "died": torch.full(m.shape, -1, dtype=torch.int64),
               "regrown": torch.full(m.shape, -1, dtype=torch.int64)} for n, m in timeline.initial.items()}
    for e in sorted(timeline.events, key=lambda e: e.step):
        if e.step > step:
            break
        s = out[e.name]
        s["alive"].view(-1)[e.died] = False
        s["alive"].view(-1)[e.regrown] = True
        s["died"].view(-1)[e.died] = e.step
        s["regrown"].view(-1)[e.regrown] = e.step
    return out


def death_time_heatmap(state: Mapping[str, torch.Tensor], *, step: int, last_step: int,
                       title: str | None = None) -> go.Figure:
    """One layer at a pruning step: dead connections coloured by the step they died (Viridis),
    alive ones black, alive ones that regrew vermilion. ``state`` is one entry of ``timeline_state``."""
    alive, died, regrown = state["alive"], state["died"], state["regrown"]
    dead_at = torch.where(alive, torch.full_like(died, -1), died).float()
    dead_at[dead_at < 0] = float("nan")
    kind = torch.full(alive.shape, float("nan"))
    kind[alive] = 0.0
    kind[alive & (regrown >= 0)] = 1.0
    dead_vals, conv = _layout_for(dead_at)
    kind_vals, _ = _layout_for(kind)
    n_alive, n = int(alive.sum()), alive.numel()
    n_regrown = int((alive & (regrown >= 0)).sum())
    key = ["alive", "alive, regrew"] if n_regrown else ["alive"]  # "regrew" only where something regrew
    fig = go.Figure()
    fig.add_trace(go.Heatmap(
        z=dead_vals, zmin=0, zmax=max(1, last_step), colorscale=SEQUENTIAL, name="died at step", hoverongaps=False,
        colorbar=dict(title=dict(text="died at<br>step"), x=1.0, len=0.55, y=0.0, yanchor="bottom"),
        hovertemplate="died at step %{z:.0f}<extra></extra>",
    ))
    fig.add_trace(go.Heatmap(
        z=kind_vals, zmin=-0.5, zmax=1.5, colorscale=_discrete_scale((ALIVE_COLOR, REGROWN_COLOR)), name="alive",
        hoverongaps=False, customdata=np.where(kind_vals == 1, "alive (regrew)", "alive"),
        hovertemplate="%{customdata}<extra></extra>",
        # above the step bar, in the same column: side by side they overlapped at 1280x720 (a browser walk);
        # gradual magnitude never regrows, and its key had said "regrew" (an audit)
        colorbar=dict(tickvals=list(range(len(key))), ticktext=key, x=1.0, len=0.3, y=1.0, yanchor="top",
                      thickness=22),
    ))
    sub = (f"after step {step}: {n_alive:,} of {n:,} alive ({100 * n_alive / max(n, 1):.1f} %)"
           + (f", {n_regrown:,} of them regrew" if n_regrown else ""))
    apply_style(fig, f"{title}<br><sup>{sub}</sup>" if title else sub)
    fig.update_layout(margin=dict(r=150))
    return _weight_axes(fig, conv)


REINIT_COLOR = "#8C8C8C"  # the re-init control is no registry strategy: a grey of its own, not a strategy's colour


def lottery_style(method: str) -> tuple[str, str, str, str]:
    """``(label, colour, dash, marker)`` of a ``lottery_experiment`` method. One colour per strategy everywhere:
    IMP is the ``iterative`` strategy and the random mask the ``random`` one (the page had drawn them in
    magnitude's and SNIP's colours, an audit)."""
    styles = {
        "imp_rewind": ("IMP + rewinding (winning ticket)", strategy_color("iterative"), "solid", "circle"),
        "reinit": ("same mask, random re-init", REINIT_COLOR, "dash", "square"),
        "random_mask": ("random mask, same init", strategy_color("random"), "dot", "diamond"),
    }
    return styles.get(method, (str(method), BASELINE_COLOR, "solid", "circle"))


def lottery_curves(frame: pd.DataFrame, *, metric: str = "best_accuracy",
                   title: str | None = "Lottery tickets: accuracy vs weights remaining") -> go.Figure:
    """Accuracy (%) vs remaining weights (%, log axis, 100 % on the left) per method of ``lottery_experiment``."""
    fig = go.Figure()
    for method, grp in frame.groupby("method", sort=False):
        label, color, dash, symbol = lottery_style(method)
        g = grp.groupby("round", as_index=False).agg(remaining=("remaining", "mean"), acc=(metric, "mean"))
        fig.add_trace(go.Scatter(
            x=100 * g["remaining"], y=100 * g["acc"], mode="lines+markers", name=label,
            line=dict(color=color, dash=dash, width=3), marker=dict(symbol=symbol, size=11),
            customdata=g["round"], hovertemplate="round %{customdata}<br>%{x:.1f} % of weights left"
                                                  "<br>accuracy %{y:.1f} %<extra>" + label + "</extra>",
        ))
    dense = frame[frame["round"] == 0][metric]
    if len(dense):
        b = 100 * float(dense.mean())
        xs = 100 * frame["remaining"]
        fig.add_trace(go.Scatter(x=[float(xs.min()), float(xs.max())], y=[b, b], mode="lines",
                                 name=f"dense ({b:.1f} %)", line=dict(color=BASELINE_COLOR, dash="dot", width=2)))
    apply_style(fig, title)
    fig.update_xaxes(type="log", autorange="reversed", title_text="weights remaining (%, log scale)")
    fig.update_yaxes(title_text=f"test accuracy (%, {'best epoch' if metric == 'best_accuracy' else 'last epoch'})")
    fig.update_layout(legend=LEGEND_BELOW)
    return fig
