"""The playground's network, TensorFlow-Playground style, and every hidden unit's output map.

``playground_network`` draws the MLP with one column per layer: an edge's width grows
with ``|w|`` (over the whole network, in ``WIDTH_CLASSES`` classes) and its colour is
the sign (blue positive, red negative). Connections that vanished since the last
redraw are left as faint dotted lines (next redraw they are gone); connections that
(re)appeared are underlaid in green. Every connection has a small clickable handle on
it and every hidden unit a marker, both with ``customdata = [kind, layer, a, b]`` for
``st.plotly_chart(on_select=...)`` (kind "edge": ``fc{layer}.weight[a, b]``; kind
"unit": hidden unit ``a`` of layer ``layer``). Traces carry ``meta={"kind": ...}``:
"edges", "vanished", "regrown", "edge_handles", "units", "io".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from ..playground.run import PlaygroundRun
from ..playground.spec import unit_name
from ..playground.units import UnitMaps, dead_hidden_units, unit_maps
from .boundaries import data_range, decision_boundary
from .style import DIVERGING, LEGEND_BELOW, NEGATIVE_COLOR, OKABE_ITO, POSITIVE_COLOR, PRUNED_COLOR, apply_style
from .training import training_history

WIDTH_CLASSES = 6
WIDTH_RANGE = (0.8, 9.0)
REGROWN_COLOR = OKABE_ITO[2]  # bluish green
VANISHED_COLOR = "#bbbbbb"
TILE_GAP = 7  # rows / columns between two unit maps (room for the label)


def _column_y(size: int) -> list[float]:
    """Evenly spaced unit positions in [0, 1], centred (one unit: 0.5); unit 0 on top."""
    if size == 1:
        return [0.5]
    return [1.0 - i / (size - 1) for i in range(size)]


def _handle_t(a: int, size_out: int) -> float:
    """Where along its edge a connection's handle sits: depends on the target unit, so handles do not coincide."""
    return 0.3 + 0.4 * (a + 0.5) / size_out


def handle_positions(sizes: tuple[int, ...]) -> dict[tuple[int, int, int], tuple[float, float]]:
    """``(layer, a, b) -> (x, y)`` of every connection's handle (``fc{layer}.weight[a, b]``)."""
    ys = [_column_y(s) for s in sizes]
    out = {}
    for layer in range(1, len(sizes)):
        for a in range(sizes[layer]):
            for b in range(sizes[layer - 1]):
                t = _handle_t(a, sizes[layer])
                out[(layer, a, b)] = (layer - 1 + t, ys[layer - 1][b] + t * (ys[layer][a] - ys[layer - 1][b]))
    return out


def playground_network(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor],
    *,
    before: Mapping[str, torch.Tensor] | None = None,
    title: str | None = "The network",
    height: int = 560,
) -> go.Figure:
    """The MLP's connections: width ``|w|``, colour = sign; vanished dotted, regrown green; clickable handles.

    Args:
        model: the playground MLP (``fc1..fcN``).
        masks: ``{"fc<i>.weight": bool (out, in)}``; a connection is alive when masked in and non-zero.
        before: which connections were alive at the previous redraw (None: nothing vanished or regrew).
    """
    layers = sorted((n for n in masks if n.endswith(".weight")), key=lambda n: int(n[2:].split(".")[0]))
    weights = [model.get_parameter(n).detach().cpu().numpy() for n in layers]  # (out, in) each
    alive = [masks[n].cpu().numpy() & (w != 0) for n, w in zip(layers, weights)]
    prev = [before[n].cpu().numpy() for n in layers] if before is not None else alive
    sizes = (weights[0].shape[1], *(w.shape[0] for w in weights))
    ys = [_column_y(s) for s in sizes]
    last = len(sizes) - 1
    wmax = max((float(np.abs(w[a]).max()) for w, a in zip(weights, alive) if a.any()), default=1.0) or 1.0
    fig = go.Figure()
    segments: dict[tuple[str, int], tuple[list, list]] = {}
    vanished: tuple[list, list] = ([], [])
    regrown: tuple[list, list] = ([], [])
    for i, (w, a, p) in enumerate(zip(weights, alive, prev)):
        for dst in range(w.shape[0]):
            for src in range(w.shape[1]):
                seg_x, seg_y = [i, i + 1, None], [ys[i][src], ys[i + 1][dst], None]
                if a[dst, src]:
                    k = min(WIDTH_CLASSES - 1, int(abs(w[dst, src]) / wmax * WIDTH_CLASSES))
                    xs, yy = segments.setdefault(("+" if w[dst, src] >= 0 else "-", k), ([], []))
                    xs += seg_x
                    yy += seg_y
                    if not p[dst, src]:
                        regrown[0].extend(seg_x)
                        regrown[1].extend(seg_y)
                elif p[dst, src]:
                    vanished[0].extend(seg_x)
                    vanished[1].extend(seg_y)
    if regrown[0]:
        fig.add_trace(go.Scatter(x=regrown[0], y=regrown[1], mode="lines", name="(re)appeared",
                                 line=dict(color=REGROWN_COLOR, width=12), opacity=0.45, hoverinfo="skip",
                                 meta={"kind": "regrown"}))
    if vanished[0]:
        fig.add_trace(go.Scatter(x=vanished[0], y=vanished[1], mode="lines", name="just pruned",
                                 line=dict(color=VANISHED_COLOR, width=2, dash="dot"), hoverinfo="skip",
                                 meta={"kind": "vanished"}))
    lo, hi = WIDTH_RANGE
    shown = set()
    for sign, k in sorted(segments):
        xs, yy = segments[(sign, k)]
        name = "positive weight" if sign == "+" else "negative weight"
        fig.add_trace(go.Scatter(
            x=xs, y=yy, mode="lines", name=name, legendgroup=name, showlegend=name not in shown,
            line=dict(color=POSITIVE_COLOR if sign == "+" else NEGATIVE_COLOR,
                      width=lo + (hi - lo) * k / (WIDTH_CLASSES - 1)),
            opacity=0.35 + 0.6 * k / (WIDTH_CLASSES - 1), hoverinfo="skip",
            meta={"kind": "edges", "sign": sign, "width_class": k}))
        shown.add(name)
    # clickable handles: one marker per connection (pruned ones hollow)
    pos = handle_positions(sizes)
    hx, hy, custom, text, colors, symbols = [], [], [], [], [], []
    for (layer, dst, src), (x, y) in pos.items():
        w = weights[layer - 1][dst, src]
        on = bool(alive[layer - 1][dst, src])
        hx.append(x)
        hy.append(y)
        custom.append(["edge", layer, dst, src])
        text.append(f"{unit_name(layer - 1, src, last)} → {unit_name(layer, dst, last)}<br>"
                    + (f"w = {w:+.3f}<br>click to prune" if on else "pruned<br>click to restore"))
        colors.append((POSITIVE_COLOR if w >= 0 else NEGATIVE_COLOR) if on else PRUNED_COLOR)
        symbols.append("circle" if on else "circle-open")
    fig.add_trace(go.Scatter(x=hx, y=hy, mode="markers", name="connection (click)", showlegend=False,
                             marker=dict(size=9, color=colors, symbol=symbols, line=dict(width=1, color="white")),
                             customdata=custom, text=text, hovertemplate="%{text}<extra></extra>",
                             meta={"kind": "edge_handles"}))
    # units: inputs and outputs (not clickable), hidden units clickable
    io_x, io_y, io_text, io_pos = [], [], [], []
    ux, uy, ucustom, utext, ucolor, usymbol = [], [], [], [], [], []
    for c, size in enumerate(sizes):
        for u in range(size):
            if c in (0, last):
                io_x.append(c)
                io_y.append(ys[c][u])
                io_text.append(unit_name(c, u, last))
                io_pos.append("middle left" if c == 0 else "middle right")
                continue
            fan_in = int(alive[c - 1][u].sum())
            fan_out = int(alive[c][:, u].sum())
            dead = fan_in == 0 or fan_out == 0
            ux.append(c)
            uy.append(ys[c][u])
            ucustom.append(["unit", c, u, 0])
            utext.append(f"{unit_name(c, u, last)}<br>in: {fan_in} · out: {fan_out}"
                         + ("<br><b>carries no signal</b>" if dead else "") + "<br>click to cut / restore")
            ucolor.append(PRUNED_COLOR if dead else "#222222")
            usymbol.append("x" if dead else "circle")
    fig.add_trace(go.Scatter(x=io_x, y=io_y, mode="markers+text", text=io_text, textposition=io_pos,
                             name="inputs / outputs", showlegend=False, hoverinfo="skip",
                             marker=dict(size=26, color="#ffffff", symbol="square",
                                         line=dict(width=2, color="#222222")),
                             meta={"kind": "io"}))
    fig.add_trace(go.Scatter(x=ux, y=uy, mode="markers", name="hidden unit (click)", showlegend=False,
                             marker=dict(size=26, color=ucolor, symbol=usymbol, line=dict(width=2, color="white")),
                             customdata=ucustom, text=utext, hovertemplate="%{text}<extra></extra>",
                             meta={"kind": "units"}))
    apply_style(fig, title, height=height)
    fig.update_layout(annotations=[dict(x=c, y=1.08, showarrow=False, yanchor="bottom", font=dict(size=16),
                                        text="<b>input</b>" if c == 0 else "<b>output</b>" if c == last
                                        else f"<b>hidden {c}</b>") for c in range(len(sizes))])
    fig.update_xaxes(visible=False, range=[-0.5, last + 0.6])
    fig.update_yaxes(visible=False, range=[-0.1, 1.2])
    fig.update_layout(legend=LEGEND_BELOW, plot_bgcolor="white",
                      clickmode="event+select", dragmode=False, margin=dict(l=20, r=20, b=60))
    return fig


def tile_unit_maps(maps: UnitMaps, dead: list[list[bool]] | None = None, gap: int = TILE_GAP) -> np.ndarray:
    """All unit maps in one picture, top row first: column ``l`` = hidden layer ``l + 1``, row ``u`` = unit ``u``.

    Shape ``(rows * (r + gap), cols * (r + gap))`` (``r`` the maps' resolution); NaN in the gaps
    and where a unit is dead (``dead[l][u]``) or absent. Each map is flipped so that its
    highest y is on top, as in the decision boundary.
    """
    r = maps.maps[0].shape[1]
    rows, cols = max(m.shape[0] for m in maps.maps), len(maps.maps)
    z = np.full((rows * (r + gap), cols * (r + gap)), np.nan, dtype=np.float32)
    for c, layer in enumerate(maps.maps):
        for u in range(layer.shape[0]):
            if not (dead and dead[c][u]):
                top, left = u * (r + gap) + gap, c * (r + gap)
                z[top:top + r, left:left + r] = layer[u][::-1]  # a map's row 0 is the lowest y
    return z


def unit_output_maps(maps: UnitMaps, dead: list[list[bool]] | None = None, *,
                     title: str | None = "What units compute", cell: int = 80) -> go.Figure:
    """Every hidden unit's output over the input plane, tiled (columns = hidden layers, rows = units).

    One diverging colour scale centred at 0 for all units; a unit that carries no signal
    (``dead[l][u]``) is a grey tile. One heatmap (the tiles) plus grey rectangles: redrawn
    live many times, so no subplot or annotation call per unit.
    """
    z = tile_unit_maps(maps, dead)
    r, g = maps.maps[0].shape[1], TILE_GAP
    rows = max(m.shape[0] for m in maps.maps)
    vmax = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    vmax = vmax or 1.0
    # drawn with y reversed (row 0 on top): y of row k is k
    fig = go.Figure(go.Heatmap(z=z, zmin=-vmax, zmax=vmax, colorscale=DIVERGING, hoverinfo="skip",
                               colorbar=dict(title=dict(text="output"), thickness=14), meta={"kind": "unit_maps"}))
    labels, greys = [], []
    for c, layer in enumerate(maps.maps):
        for u in range(layer.shape[0]):
            top, left = u * (r + g) + g, c * (r + g)
            labels.append(dict(x=left + r / 2, y=top - 0.5, text=f"h{c + 1}.{u + 1}", showarrow=False,
                               yanchor="bottom", font=dict(size=13)))
            if dead and dead[c][u]:
                greys.append(dict(type="rect", x0=left - 0.5, x1=left + r - 0.5, y0=top - 0.5, y1=top + r - 0.5,
                                  fillcolor=PRUNED_COLOR, line=dict(width=0), name=f"dead h{c + 1}.{u + 1}"))
    apply_style(fig, title, height=max(300, cell * rows + 110))
    # one assignment each: add_annotation / add_shape per unit is slow
    fig.update_layout(annotations=labels, shapes=greys, margin=dict(l=20, r=20))
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, scaleanchor="x", autorange="reversed")
    return fig


def playground_boundary(model: nn.Module, x: torch.Tensor, y: torch.Tensor, x_range: tuple[float, float],
                        y_range: tuple[float, float], class_names=None, *, resolution: int = 60,
                        title: str | None = "Decision boundary") -> go.Figure:
    """``boundaries.decision_boundary`` in its compact form, for the playground's narrow column."""
    fig = decision_boundary(model, x, y, x_range=x_range, y_range=y_range, resolution=resolution,
                            class_names=class_names, title=title, compact=True)
    fig.update_layout(height=500, margin=dict(l=50, r=10))
    return fig


def playground_figures(run: PlaygroundRun, *, resolution: int = 20) -> dict[str, go.Figure | None]:
    """Everything the page draws for ``run``: ``network``, ``boundary``, ``maps`` and ``loss`` (None before epoch 1).

    ``loss`` is ``training.training_history`` (train and test loss together, with accuracy and sparsity).
    """
    ds = run.dataset
    x_range, y_range = data_range(ds.x_train)
    alive = run.alive()
    return {
        "network": playground_network(run.model, run.masks, before=run.before,
                                      title=f"Epoch {run.epoch} of {run.spec.epochs}"),
        "boundary": playground_boundary(run.model, ds.x_test, ds.y_test, x_range, y_range, ds.class_names),
        "maps": unit_output_maps(unit_maps(run.model, x_range, y_range, resolution),
                                 dead_hidden_units(run.model, alive)),
        "loss": training_history([asdict(h) for h in run.history], "Train and test loss") if run.history else None,
    }


__all__ = ["handle_positions", "playground_boundary", "playground_figures", "playground_network", "tile_unit_maps",
           "unit_output_maps"]
