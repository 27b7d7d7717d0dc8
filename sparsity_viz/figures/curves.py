"""Accuracy against sparsity (or compression): one line per strategy, a band over seeds.

Input: a pandas DataFrame with columns ``strategy, sparsity, seed, accuracy`` and
optionally ``finetuned`` (bool). Fractions (``<= 1``) are shown as percentages.
Per strategy (and fine-tuning state, when both occur), the mean over seeds is the
line; the band spans min..max (or mean ± std) over seeds. The dense baseline is a
horizontal dotted line.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from .style import BASELINE_COLOR, LEGEND_BELOW, apply_style, strategy_color, with_alpha

REQUIRED_COLUMNS = ("strategy", "sparsity", "seed", "accuracy")


def curve_table(df: pd.DataFrame, x_axis: str = "sparsity") -> pd.DataFrame:
    """The numbers ``accuracy_curves`` draws: one row per (group, sparsity).

    Columns: ``group`` keys (``strategy`` and, if it varies, ``finetuned``),
    ``sparsity``, ``x``, ``mean``, ``min``, ``max``, ``std``, ``seeds``; ``x`` and
    accuracies already in display units (percent / compression ratio).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"DataFrame lacks column(s) {', '.join(missing)}; needs {', '.join(REQUIRED_COLUMNS)}.")
    if x_axis not in ("sparsity", "compression"):
        raise ValueError(f"x_axis must be 'sparsity' or 'compression', not {x_axis!r}.")
    d = df.copy()
    s_frac = d["sparsity"].astype(float)
    if s_frac.max() > 1.0:
        s_frac = s_frac / 100.0
    d["_s"] = s_frac
    acc_scale = 100.0 if d["accuracy"].max() <= 1.0 else 1.0
    d["_acc"] = d["accuracy"].astype(float) * acc_scale
    keys = ["strategy"]
    if "finetuned" in d.columns and d["finetuned"].nunique() > 1:
        keys.append("finetuned")
    if x_axis == "compression":
        d = d[d["_s"] < 1.0]
    g = d.groupby([*keys, "_s"], sort=True)["_acc"]
    t = g.agg(["mean", "min", "max", "std", "count"]).reset_index().rename(columns={"_s": "sparsity", "count": "seeds"})
    t["std"] = t["std"].fillna(0.0)
    t["x"] = 1.0 / (1.0 - t["sparsity"]) if x_axis == "compression" else 100.0 * t["sparsity"]
    return t


def accuracy_curves(
    df: pd.DataFrame,
    *,
    x_axis: str = "sparsity",
    band: str | None = "minmax",
    dense_accuracy: float | None = None,
    labels: Mapping[str, str] | None = None,
    title: str | None = "Accuracy after pruning",
) -> go.Figure:
    """Accuracy-vs-sparsity curves.

    Args:
        df: columns ``strategy, sparsity, seed, accuracy[, finetuned, kind]``; strategies whose rows
            have ``kind == "scheduled"`` are named "(scheduled training)", never "fine-tuned".
        x_axis: ``"sparsity"`` (% of weights pruned) or ``"compression"``
            (``1 / (1 - sparsity)``, log axis; rows at sparsity 1 dropped).
        band: ``"minmax"``, ``"std"`` (mean ± std) or ``None``.
        dense_accuracy: baseline; default the mean accuracy at sparsity 0, if any.
        labels: display names per strategy (e.g. the registry labels); default the raw names.
    """
    if band not in ("minmax", "std", None):
        raise ValueError(f"band must be 'minmax', 'std' or None, not {band!r}.")
    t = curve_table(df, x_axis)
    acc_scale = 100.0 if df["accuracy"].max() <= 1.0 else 1.0
    keys = [k for k in ("strategy", "finetuned") if k in t.columns]
    if dense_accuracy is None:
        s = df["sparsity"].astype(float)
        at_zero = df.loc[s == 0, "accuracy"]
        dense_accuracy = float(at_zero.mean()) if len(at_zero) else None
    fig = go.Figure()
    strategies = list(dict.fromkeys(t["strategy"]))
    scheduled = set(df.loc[df["kind"] == "scheduled", "strategy"]) if "kind" in df.columns else set()
    for gkey, grp in t.groupby(keys, sort=False):
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        strategy = gkey[0]
        finetuned = gkey[1] if len(gkey) > 1 and strategy not in scheduled else None
        color = strategy_color(strategy, fallback=strategies.index(strategy))  # one colour per strategy, every page
        label = (labels or {}).get(strategy, str(strategy))
        if strategy in scheduled:  # trained while pruning: neither "fine-tuned" nor "no fine-tuning"
            name = f"{label} (scheduled training)"
        else:
            name = label if finetuned is None else f"{label} ({'fine-tuned' if finetuned else 'no fine-tuning'})"
        dash = "dash" if finetuned is not None and not bool(finetuned) else "solid"
        grp = grp.sort_values("x")
        if band is not None and (grp["seeds"] > 1).any():
            lo = grp["min"] if band == "minmax" else grp["mean"] - grp["std"]
            hi = grp["max"] if band == "minmax" else grp["mean"] + grp["std"]
            fig.add_trace(
                go.Scatter(
                    x=grp["x"],
                    y=hi,
                    mode="lines",
                    line=dict(width=0),
                    showlegend=False,
                    legendgroup=name,
                    hoverinfo="skip",
                    name=f"{name} band",
                    meta={"kind": "band_upper", "group": name},
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=grp["x"],
                    y=lo,
                    mode="lines",
                    line=dict(width=0),
                    fill="tonexty",
                    fillcolor=with_alpha(color, 0.2),
                    showlegend=False,
                    legendgroup=name,
                    hoverinfo="skip",
                    name=f"{name} band",
                    meta={"kind": "band_lower", "group": name},
                )
            )
        fig.add_trace(
            go.Scatter(
                x=grp["x"],
                y=grp["mean"],
                mode="lines+markers",
                name=name,
                legendgroup=name,
                line=dict(color=color, width=3, dash=dash),
                marker=dict(size=8),
                customdata=np.stack([grp["sparsity"] * 100, grp["seeds"]], axis=1),
                hovertemplate="sparsity %{customdata[0]:.1f} %<br>accuracy %{y:.2f} %<br>%{customdata[1]} seed(s)"
                "<extra>" + name + "</extra>",
                meta={"kind": "mean", "group": name},
            )
        )
    if dense_accuracy is not None and len(t):
        b = float(dense_accuracy) * (acc_scale if dense_accuracy <= 1.0 else 1.0)
        xs = [float(t["x"].min()), float(t["x"].max())]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[b, b],
                mode="lines",
                name=f"dense baseline ({b:.1f} %)",
                line=dict(color=BASELINE_COLOR, dash="dot", width=2),
                meta={"kind": "baseline"},
            )
        )
    apply_style(fig, title)
    if x_axis == "compression":
        fig.update_xaxes(type="log", title_text="compression ratio (× fewer weights, log scale)")
    else:
        fig.update_xaxes(title_text="sparsity (% of weights pruned)")
    fig.update_yaxes(title_text="test accuracy (%)")
    fig.update_layout(legend=LEGEND_BELOW)
    return fig
