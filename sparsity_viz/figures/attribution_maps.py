"""Attribution maps side by side: input, dense model, pruned model, difference.

Images: four heatmaps (pixel rows top to bottom). By default each attribution
map is divided by its own largest magnitude (a pruned model's gradients are
often much smaller, which would leave its map blank on a shared scale); dense
and pruned then share one zero-centred diverging scale and the difference has
its own. Flat inputs (2-D toys): grouped bars per feature.

A map that cannot be read (zero everywhere, constant, non-finite) is never drawn as a
silent blank with "nan" in the title: ``blank_reason`` says why in a sentence, the
title says the rank correlation is undefined, and the empty map carries a note.
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


def blank_reason(dense: torch.Tensor | np.ndarray, pruned: torch.Tensor | np.ndarray) -> str | None:
    """A sentence saying why a map is blank or the rank correlation undefined, or ``None`` when both maps are fine."""
    for a, who in ((_sample(pruned), "pruned"), (_sample(dense), "dense")):
        if not np.isfinite(a).all():
            return (f"The {who} model's attribution has non-finite values (its output overflows for this input), "
                    "so it cannot be drawn or compared.")
        if a.size and float(np.abs(a).max()) == 0.0:
            return (f"The {who} model's attribution is zero at every input: its output for this class no longer "
                    "depends on the input (with this much pruning no input reaches the output, or every unit on the "
                    "way is dead), so its map is empty and the rank correlation is undefined.")
        if a.size > 1 and float(a.max()) == float(a.min()):
            return (f"The {who} model's attribution is the same at every input, so it ranks nothing and the rank "
                    "correlation is undefined.")
    return None


def _unit_scale(a: np.ndarray) -> tuple[np.ndarray, float]:
    """``a / max|a|`` (so the largest attribution is +-1) and that maximum."""
    m = float(np.nanmax(np.abs(a))) if a.size else 0.0
    return (a / m if m > 0 else a), m


def attribution_maps(
    inputs: torch.Tensor | np.ndarray,
    dense: torch.Tensor | np.ndarray,
    pruned: torch.Tensor | np.ndarray,
    *,
    similarity: float | None = None,
    method: str | None = None,
    feature_names: Sequence[str] | None = None,
    normalize: bool = True,
    title: str | None = None,
) -> go.Figure:
    """Input, dense attribution, pruned attribution and their difference for ONE sample.

    Args:
        inputs: the sample (as it should be shown, e.g. denormalised pixels).
        dense, pruned: attribution maps of the same shape.
        similarity: rank correlation to print in the title.
        method: attribution method label for the title.
        feature_names: names of flat features (default ``x0, x1, ...``).
        normalize: scale each map by its own largest ``|attribution|`` so both
            use the full colour range (pruned models often have much smaller
            gradients; the raw maxima are printed above the maps). The
            difference is then taken between the normalised maps.
    """
    x, d, p = _sample(inputs), _sample(dense), _sample(pruned)
    if d.shape != p.shape or d.shape != x.shape:
        raise ValueError(f"Shapes differ: input {x.shape}, dense {d.shape}, pruned {p.shape}.")
    reason = blank_reason(d, p)
    d, p = np.nan_to_num(d, nan=0.0, posinf=0.0, neginf=0.0), np.nan_to_num(p, nan=0.0, posinf=0.0, neginf=0.0)
    d_max = p_max = None
    if normalize:
        (d, d_max), (p, p_max) = _unit_scale(d), _unit_scale(p)
    diff = p - d
    head = title or (f"{method} attribution" if method else "Attribution")
    if similarity is not None:
        undefined = not np.isfinite(similarity)
        head += " · rank correlation undefined (see the note)" if undefined else (
            f" · rank correlation dense vs pruned: {similarity:.2f}")
    if x.ndim == 2:
        fig = _image_maps(x, d, p, diff, head, d_max, p_max)
        for col, a in ((2, d), (3, p)):
            if reason and float(np.abs(a).max(initial=0.0)) == 0.0:  # the empty map says so where it is
                fig.add_annotation(text="zero everywhere:<br>see the note", showarrow=False, font=dict(size=14),
                                   xref=f"x{col} domain", yref=f"y{col} domain", x=0.5, y=0.5,
                                   bgcolor="rgba(255,255,255,0.85)")
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
    if reason:  # under the title: as a note on the plot's top edge it ran into the title (a browser walk)
        head += "<br><sup>a model's attribution is zero or constant: see the note</sup>"
    apply_style(fig, head)
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="input feature")
    fig.update_yaxes(title_text="attribution (score units)", zeroline=True)
    return fig


def _image_maps(x, d, p, diff, head: str, d_max: float | None, p_max: float | None) -> go.Figure:
    """Four square heatmaps in a row with horizontal colour bars under the maps they describe."""
    unit = "a ÷ max|a|" if d_max is not None else "attribution"
    blank = "<br><sub> </sub>"
    titles = (
        "input" + blank,
        "dense model" + (f"<br><sub>max |a| = {d_max:.3g}</sub>" if d_max is not None else blank),
        "pruned model" + (f"<br><sub>max |a| = {p_max:.3g}</sub>" if p_max is not None else blank),
        "pruned − dense" + blank,
    )
    fig = make_subplots(rows=1, cols=4, subplot_titles=titles, horizontal_spacing=0.075)
    fig.add_trace(
        go.Heatmap(z=x, colorscale="gray_r", showscale=False, name="input",
                   hovertemplate="row %{y}, col %{x}<br>pixel %{z:.2f}<extra></extra>"),
        row=1, col=1,
    )
    for col, (z, name) in enumerate(((d, "dense"), (p, "pruned")), start=2):
        fig.add_trace(
            go.Heatmap(z=z, coloraxis="coloraxis", name=name,
                       hovertemplate="row %{y}, col %{x}<br>attribution %{z:.3g}<extra>" + name + "</extra>"),
            row=1, col=col,
        )
    fig.add_trace(
        go.Heatmap(z=diff, coloraxis="coloraxis2", name="difference",
                   hovertemplate="row %{y}, col %{x}<br>difference %{z:.3g}<extra></extra>"),
        row=1, col=4,
    )
    zr, zd = _half_range(d, p), _half_range(diff)
    # horizontal bars under the maps they describe: a vertical one in the gap before the last map sat on it at
    # 1280x720 (measured in the browser)
    x2, x3, x4 = fig.layout.xaxis2.domain, fig.layout.xaxis3.domain, fig.layout.xaxis4.domain
    bar = dict(orientation="h", thickness=12, y=-0.06, yanchor="top", tickfont=dict(size=14), nticks=3,
               title=dict(side="right", font=dict(size=14)))
    fig.update_layout(
        coloraxis=dict(colorscale=DIVERGING, cmid=0, cmin=-zr, cmax=zr,
                       colorbar=dict(bar, x=(x2[0] + x3[1]) / 2, len=(x3[1] - x2[0]) * 0.7, title_text=unit)),
        coloraxis2=dict(colorscale=DIVERGING, cmid=0, cmin=-zd, cmax=zd,
                        colorbar=dict(bar, x=(x4[0] + x4[1]) / 2, len=(x4[1] - x4[0]) * 0.8, title_text="diff.")),
    )
    for i in range(1, 5):
        fig.update_yaxes(autorange="reversed", scaleanchor=f"x{i if i > 1 else ''}", constrain="domain",
                         showticklabels=False, showgrid=False, zeroline=False, row=1, col=i)
        fig.update_xaxes(constrain="domain", showticklabels=False, showgrid=False, zeroline=False, row=1, col=i)
    fig.update_xaxes(title_text="pixel column", row=1, col=1)
    fig.update_yaxes(title_text="pixel row", row=1, col=1)
    apply_style(fig, head, height=390)  # the maps are square: at 1280x720 a taller figure only adds empty rows
    fig.update_layout(margin=dict(l=60, r=30, t=110, b=90))
    return fig
