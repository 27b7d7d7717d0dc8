"""Mixture-of-experts figures: where the router sends each class, expert load, compute used, expert regions.

Every figure colours expert ``e`` with ``style.palette(e)`` (the x-axis labels of the heatmap,
the load bars, the regions of the 2-D map), so one expert reads the same everywhere. Pruned
experts are named "(pruned)" and drawn in ``PRUNED_COLOR``. Inputs are the plain numbers of
``moe.expert_report`` and ``moe.expert_map``; nothing here computes routing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from .style import CLASS_SYMBOLS, LEGEND_BELOW, PRUNED_COLOR, SEQUENTIAL, apply_style, palette, with_alpha


def expert_color(e: int, pruned: Sequence[int] = ()) -> str:
    """Expert ``e``'s colour in every MoE figure (grey once pruned)."""
    return PRUNED_COLOR if e in pruned else palette(e)


def expert_names(n: int, pruned: Sequence[int] = (), colored: bool = False, short: bool = False) -> list[str]:
    """``"expert 0"``, ... with ``" (pruned)"``; ``short``: ``"0"`` with ``"(pruned)"`` on a second line (axis
    ticks under an axis titled "expert"); ``colored`` prefixes a square in the expert's colour."""
    names = []
    for e in range(n):
        name = (f"{e}" + ("<br>(pruned)" if e in pruned else "")) if short else \
            f"expert {e}" + (" (pruned)" if e in pruned else "")
        names.append(f'<span style="color:{expert_color(e, pruned)}">■</span> {name}' if colored else name)
    return names


def routing_shares(table) -> np.ndarray:
    """Row shares (%) of a class x expert count table: each class's routing assignments per expert."""
    counts = np.asarray(table, dtype=float)  # (classes, experts)
    totals = counts.sum(1, keepdims=True)
    return np.divide(100 * counts, totals, out=np.zeros_like(counts), where=totals > 0)


def routing_heatmap(table, class_names: Sequence[str], *, shares: bool = True, pruned: Sequence[int] = (),
                    title: str | None = None) -> go.Figure:
    """Class x expert heatmap: colour = share of the class's assignments (%) or the count; every cell annotated.

    ``table`` is ``moe.routing_table`` / ``expert_report["routing_table"]`` (classes x experts counts).
    """
    counts = np.asarray(table, dtype=np.int64)
    z = routing_shares(counts) if shares else counts.astype(float)
    n_classes, n_experts = counts.shape
    text = [[f"{z[c, e]:.0f} %" if shares else f"{counts[c, e]:,}" for e in range(n_experts)]
            for c in range(n_classes)]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(n_experts)), y=list(range(n_classes)), text=text, texttemplate="%{text}",
        textfont=dict(size=16 if n_classes <= 10 else 12), colorscale=SEQUENTIAL, zmin=0,
        zmax=100 if shares else max(float(counts.max()), 1.0),
        customdata=counts, colorbar=dict(title=dict(text="% of class" if shares else "inputs")),
        hovertemplate="class %{y}, expert %{x}<br>%{customdata:,} assignments<br>%{z:.1f}<extra></extra>",
        meta={"kind": "routing", "shares": shares},
    ))
    fig.update_xaxes(title="expert", tickmode="array", tickvals=list(range(n_experts)),
                     ticktext=expert_names(n_experts, pruned, colored=True, short=True), tickangle=0)
    fig.update_yaxes(title="true class", tickmode="array", tickvals=list(range(n_classes)),
                     ticktext=[str(c) for c in class_names], autorange="reversed")
    return apply_style(fig, title or "Which expert each class is routed to", height=max(360, 70 + 42 * n_classes))


def expert_load_bars(load: Sequence[int], balance_loss: float, *, pruned: Sequence[int] = (),
                     title: str | None = None) -> go.Figure:
    """Assignments per expert, one bar each in the expert's colour; the balance loss in the title.

    The balance loss is 1.0 for uniform routing and N when one expert takes everything.
    """
    load = np.asarray(load, dtype=np.int64)
    n = len(load)
    total = max(int(load.sum()), 1)
    fig = go.Figure(go.Bar(
        x=list(range(n)), y=load, marker=dict(color=[expert_color(e, pruned) for e in range(n)]),
        text=[f"{v:,} ({100 * v / total:.0f} %)" for v in load], textposition="outside", cliponaxis=False,
        customdata=expert_names(n, pruned), hovertemplate="%{customdata}: %{y:,} assignments<extra></extra>",
        meta={"kind": "load"},
    ))
    fig.add_hline(y=total / n, line=dict(dash="dash", color="#444444", width=2))  # uniform: named in the subtitle
    fig.update_xaxes(title="expert", tickmode="array", tickvals=list(range(n)),
                     ticktext=expert_names(n, pruned, short=True), tickangle=0)
    fig.update_yaxes(title="assignments", range=[0, 1.25 * max(int(load.max()), 1)])
    # two short lines: at half width of 1280x720 the longer ones were cut at the right (an audit)
    fig.add_annotation(text=f"dashed: uniform<br>loss 1 = uniform, {n} = one",
                       xref="paper", yref="paper", x=0,
                       y=1.0, yanchor="bottom", showarrow=False, font=dict(size=15, color="#555555"))
    fig = apply_style(fig, f"{title or 'Load'}: balance loss {balance_loss:.2f}", height=460)
    fig.update_layout(margin=dict(t=125))
    return fig


def compute_bars(report: dict, title: str | None = None) -> go.Figure:
    """Per input: parameters used (top-k experts + router) vs the dense-equivalent total, and FLOPs likewise.

    ``report`` is ``moe.expert_report``'s dict (``active_parameters``, ``total_parameters``,
    ``flops_per_input``, ``flops_per_input_all_experts``, ``top_k``, ``num_experts``).
    """
    k, n = report["top_k"], report["num_experts"]
    labels = [f"top-{k}", f"all {n}"]
    colors = [palette(2), "#9a9a9a"]
    fig = make_subplots(rows=2, cols=1, subplot_titles=("parameters used per input", "FLOPs per input"),
                        vertical_spacing=0.3)
    for row, (key_used, key_all) in enumerate((("active_parameters", "total_parameters"),
                                               ("flops_per_input", "flops_per_input_all_experts")), start=1):
        used, every = report[key_used], report[key_all]
        fig.add_trace(go.Bar(
            y=labels, x=[used, every], orientation="h", marker=dict(color=colors), showlegend=False,
            text=[f"{used:,} ({100 * used / every:.0f} %)", f"{every:,}"], textposition="outside", cliponaxis=False,
            hovertemplate="%{y}: %{x:,}<extra></extra>", meta={"kind": key_used},
        ), row=row, col=1)
        fig.update_xaxes(range=[0, 1.45 * every], showticklabels=False, row=row, col=1)
        fig.update_yaxes(autorange="reversed", row=row, col=1)
    fig = apply_style(fig, title or f"Experts per input: top-{k} of {n}", height=440)
    fig.update_layout(margin=dict(t=120))  # room between the title and the first panel's title (they overlapped)
    return fig


def expert_regions(emap, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                   class_names: Sequence[str] | None = None, *, pruned: Sequence[int] = (),
                   title: str | None = None) -> go.Figure:
    """The 2-D input plane coloured by the router's first choice (``moe.expert_map``), the data on top.

    Points keep the decision-boundary figures' class marker shapes, drawn black and white so
    they do not borrow the experts' colours.
    """
    n = emap.num_experts
    scale = []
    for e in range(n):
        col = with_alpha(expert_color(e, pruned), 0.55)
        scale += [[e / n, col], [(e + 1) / n, col]]
    names = expert_names(n, pruned)
    fig = go.Figure(go.Heatmap(
        x=emap.xs, y=emap.ys, z=emap.experts, zmin=-0.5, zmax=n - 0.5, colorscale=scale,
        colorbar=dict(title=dict(text="expert"), tickvals=list(range(n)), ticktext=names),
        hovertemplate="x0 %{x:.2f}, x1 %{y:.2f}<br>expert %{z}<extra></extra>", meta={"kind": "expert_map"},
    ))
    if x is not None and y is not None:
        xn, yn = x.detach().cpu().numpy(), y.detach().cpu().numpy()
        classes = list(class_names) if class_names is not None else [f"class {c}" for c in range(int(yn.max()) + 1)]
        for c, name in enumerate(classes):
            sel = yn == c
            fig.add_trace(go.Scatter(
                x=xn[sel, 0], y=xn[sel, 1], mode="markers", name=name,
                marker=dict(symbol=CLASS_SYMBOLS[c % len(CLASS_SYMBOLS)], size=8, color="white" if c else "black",
                            line=dict(width=1.5, color="black")),
                meta={"kind": "points", "class": c},
            ))
    # no axis titles (the toy's coordinates mean nothing), so the class legend below never sits on one
    fig.update_xaxes(range=[float(emap.xs[0]), float(emap.xs[-1])])
    fig.update_yaxes(range=[float(emap.ys[0]), float(emap.ys[-1])])
    fig = apply_style(fig, title or "Input plane coloured by the router's chosen expert", height=540)
    fig.update_layout(legend=LEGEND_BELOW)
    return fig
