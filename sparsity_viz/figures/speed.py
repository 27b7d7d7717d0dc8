"""Speed and memory figures over the sparse backend's tidy DataFrames.

Inputs are the frames of ``sparsity_viz.backend``: ``benchmark_model`` (batch,
format, median_us, ratio_dense, weight_bytes, ...) and ``speedup_curves`` /
``crossovers`` (sparsity, batch, format, speedup_vs_dense). Dense is always the
reference: a dashed line per batch group, a line at 1x, or a bar in grey.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from .style import BASELINE_COLOR, LEGEND_BELOW, PRUNED_COLOR, apply_style, palette

# fixed colours per format, so the same format has the same colour in every figure
FORMAT_ORDER = ("dense", "csr-torch", "bsr-torch", "csr-native", "dense-native", "nm-native", "compact+dense", "auto",
                "dense-cuda", "csr-cuda", "2:4-cuda", "csr-int8-native", "int8-dense-weightonly", "int8-dense-dynamic",
                "act-dense-native", "act-csc-native")
FORMAT_LABELS = {
    "dense": "dense (torch)",
    "csr-torch": "CSR (torch.sparse)",
    "bsr-torch": "block CSR (torch)",
    "csr-native": "CSR (native kernel)",
    "dense-native": "dense (native kernel)",
    "nm-native": "N:M (native)",
    "compact+dense": "compacted + dense",
    "auto": "auto (per-layer choice)",
    "dense-cuda": "dense (CUDA)",
    "csr-cuda": "CSR (cuSPARSE)",
    "2:4-cuda": "2:4 semi-structured",
    "csr-int8-native": "CSR int8 (native kernel)",
    "int8-dense-weightonly": "dense int8 weights (torch)",
    "int8-dense-dynamic": "dense int8 dynamic (torch.ao)",
    "act-dense-native": "skip zero inputs, dense Wᵀ (native)",
    "act-csc-native": "skip zero inputs + weights, CSC (native)",
}

# the activation-sparse formats run at batch <= 16, next to csr/dense-native: colours unused there
# (palette 0 is otherwise only reached by cycling; bsr-torch is never timed at small batches)
SMALL_BATCH_COLORS = {"act-dense-native": 0, "act-csc-native": 2}


def format_color(fmt: str) -> str:
    """One stable colour per format (dense is grey, the reference)."""
    if fmt in ("dense", "dense-cuda"):
        return PRUNED_COLOR
    if fmt in SMALL_BATCH_COLORS:
        return palette(SMALL_BATCH_COLORS[fmt])
    i = FORMAT_ORDER.index(fmt) if fmt in FORMAT_ORDER else len(FORMAT_ORDER)
    return palette(i)


def format_label(fmt: str) -> str:
    return FORMAT_LABELS.get(fmt, fmt)


def _ordered(formats) -> list[str]:
    known = [f for f in FORMAT_ORDER if f in set(formats)]
    return known + sorted(set(formats) - set(known))


def log_ticks(lo: float, hi: float, unit: str = "") -> tuple[list[float], list[str]]:
    """1-2-5 tick values covering ``[lo, hi]`` for a log axis, with short labels (no crowded minor labels); none
    when a bound is not finite (no timing, or all NaN: plotly's own ticks then)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [], []
    lo, hi = max(lo, 1e-12), max(hi, lo * 1.0001)
    vals = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        vals += [m * 10.0 ** e for m in (1, 2, 5)]
    vals = [v for v in vals if lo <= v <= hi] or [lo, hi]

    def label(v: float) -> str:
        if unit == "us" and v >= 1000:
            return f"{v / 1000:g} ms"
        return f"{v:g}" + (" µs" if unit == "us" else unit)

    return vals, [label(v) for v in vals]


def _ratio_text(ratio: float) -> str:
    if ratio != ratio:  # NaN
        return ""
    return f"{ratio:.2f}×"


def latency_bars(bench: pd.DataFrame, title: str | None = "Latency per format and batch size") -> go.Figure:
    """Grouped bars: median latency per format, grouped by batch size, log y.

    Each bar is labelled with its time relative to dense (``0.27×`` = 3.7 times
    faster); a dashed line over each batch group marks the dense latency.
    Formats that were skipped (NaN) are left out.
    """
    df = bench.dropna(subset=["median_us"]).copy()
    batches = sorted(df["batch"].unique())
    cats = [f"batch {b}" for b in batches]
    fig = go.Figure()
    for fmt in _ordered(df["format"].unique()):
        g = df[df["format"] == fmt].set_index("batch").reindex(batches)
        ratios = g["ratio_dense"].tolist()
        fig.add_trace(go.Bar(
            x=cats, y=g["median_us"].tolist(), name=format_label(fmt), marker_color=format_color(fmt),
            text=["" if fmt == "dense" else _ratio_text(r) for r in ratios], textposition="outside",
            cliponaxis=False, customdata=[[fmt, r] for r in ratios],
            hovertemplate="%{x} · %{customdata[0]}<br>%{y:.3s} µs<br>%{customdata[1]:.2f}× dense<extra></extra>",
        ))
    dense = df[df["format"] == "dense"].set_index("batch")["median_us"]
    for i, b in enumerate(batches):
        if b in dense.index:
            fig.add_shape(type="line", x0=i - 0.45, x1=i + 0.45, y0=float(dense[b]), y1=float(dense[b]), xref="x",
                          yref="y", line=dict(color=BASELINE_COLOR, width=2, dash="dash"))
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="dense latency (reference)",
                             line=dict(color=BASELINE_COLOR, width=2, dash="dash")))
    apply_style(fig, title, height=480)
    fig.update_layout(barmode="group", bargap=0.2, legend=LEGEND_BELOW,
                      uniformtext=dict(minsize=11, mode="show"))
    fig.update_traces(textfont_size=13, selector=dict(type="bar"))
    lo, hi = float(df["median_us"].min()), float(df["median_us"].max())
    vals, texts = log_ticks(lo / 1.5, hi * 1.5, unit="us")
    fig.update_yaxes(type="log", title_text="median latency (log scale)", tickvals=vals, ticktext=texts,
                     range=[math.log10(lo / 1.5), math.log10(hi * 1.5)])
    fig.update_xaxes(title_text=None)
    return fig


def bytes_bars(bench: pd.DataFrame, checkpoint_bytes: int | None = None,
               title: str | None = "Weight memory per format") -> go.Figure:
    """Horizontal bars: weight bytes per format (one batch's row per format), dense as reference.

    ``checkpoint_bytes`` adds the sparse checkpoint file (weights + biases +
    layout) as an extra bar. A dotted line marks the ideal: nonzero values only.
    """
    df = bench.dropna(subset=["weight_bytes"])
    df = df[df["batch"] == df["batch"].max()]
    rows = df.drop_duplicates("format").set_index("format")
    fmts = _ordered(rows.index)
    dense_bytes = float(rows.loc["dense", "weight_bytes"]) if "dense" in rows.index else None
    labels = [format_label(f) for f in fmts]
    values = [float(rows.loc[f, "weight_bytes"]) for f in fmts]
    colors = [format_color(f) for f in fmts]
    if checkpoint_bytes is not None:
        labels.append("sparse checkpoint file")
        values.append(float(checkpoint_bytes))
        colors.append(palette(5))
    texts = [f"{_human(v)}" + (f" ({v / dense_bytes:.2f}×)" if dense_bytes else "") for v in values]
    fig = go.Figure(go.Bar(x=values, y=labels, orientation="h", marker_color=colors, text=texts, textposition="outside",
                           cliponaxis=False, hovertemplate="%{y}: %{x:,} bytes<extra></extra>", showlegend=False))
    if dense_bytes:
        fig.add_vline(x=dense_bytes, line=dict(color=BASELINE_COLOR, dash="dash", width=2))
    if "ideal_bytes_ratio" in rows.columns and dense_bytes:
        ideal = float(rows["ideal_bytes_ratio"].iloc[0]) * dense_bytes
        fig.add_vline(x=ideal, line=dict(color=palette(2), dash="dot", width=2))
        fig.add_annotation(x=ideal, y=1.0, yref="paper", text="nonzero values only", showarrow=False, xanchor="left",
                           yanchor="bottom", font=dict(size=13, color=palette(2)))
    apply_style(fig, title, height=max(300, 70 + 48 * len(values)))
    fig.update_xaxes(title_text="bytes of weights", range=[0, 1.3 * max(values)] if values else None)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(margin=dict(l=250))
    return fig


def _human(n: float) -> str:
    for unit, size in (("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def human_bytes(n: float) -> str:
    """``175348 -> '175 KB'`` (decimal units)."""
    return _human(n)


def speedup_curve_figure(curves: pd.DataFrame, crossings: pd.DataFrame | None = None, batch: int | None = None,
                         mark_sparsity: float | None = None, title: str | None = None) -> go.Figure:
    """Speed-up vs dense against sparsity for one batch size, crossover marked per format.

    Args:
        curves: ``speedup_curves`` frame.
        crossings: ``crossovers(curves)``; each format's crossover becomes a dotted
            vertical line with an annotation. Computed when omitted.
        batch: which batch size to draw (default: the largest).
        mark_sparsity: e.g. the current layer's sparsity, drawn as a solid line.
    """
    from ..backend.bench import crossovers

    if not len(curves):
        raise ValueError("speedup_curve_figure needs at least one measured row (the frame is empty).")
    batch = int(curves["batch"].max()) if batch is None else int(batch)
    df = curves[curves["batch"] == batch].dropna(subset=["speedup_vs_dense"])
    crossings = crossovers(curves) if crossings is None else crossings
    fig = go.Figure()
    fig.add_hline(y=1.0, line=dict(color=BASELINE_COLOR, dash="dash", width=2))
    fig.add_annotation(x=0, xref="paper", y=0, yref="y", text="dense = 1×  (below: sparse is slower)", showarrow=False,
                       xanchor="left", yanchor="bottom", font=dict(size=13, color=BASELINE_COLOR))
    ymax = 1.0
    for fmt in _ordered(df["format"].unique()):
        if fmt.startswith("dense") and fmt != "dense-native":
            continue
        g = df[df["format"] == fmt].sort_values("sparsity")
        ymax = max(ymax, float(g["speedup_vs_dense"].max()))
        fig.add_trace(go.Scatter(x=100 * g["sparsity"], y=g["speedup_vs_dense"], mode="lines+markers",
                                 name=format_label(fmt), line=dict(color=format_color(fmt), width=3),
                                 marker=dict(size=9),
                                 hovertemplate=f"{format_label(fmt)}<br>%{{x:.0f}} % sparse: %{{y:.2f}}× dense<extra></extra>"))
    row = 0
    for _, c in crossings[crossings["batch"] == batch].iterrows():
        if c["format"] not in set(df["format"]) or c["crossover_sparsity"] is None or c["crossover_sparsity"] != c["crossover_sparsity"]:
            continue
        x = 100 * float(c["crossover_sparsity"])
        color = format_color(c["format"])
        fig.add_vline(x=x, line=dict(color=color, dash="dot", width=2))
        fig.add_annotation(x=x, y=1.0 - 0.07 * row, yref="paper", text=f"{format_label(c['format'])} wins from {x:.0f} %",
                           showarrow=False, xanchor="right", yanchor="top", xshift=-4,
                           font=dict(size=13, color=color), bgcolor="rgba(255,255,255,0.8)")
        row += 1
    if mark_sparsity is not None:
        x = 100 * float(mark_sparsity)
        fig.add_vline(x=x, line=dict(color=BASELINE_COLOR, width=2))
        right = x > 60
        fig.add_annotation(x=x, y=0.02, yref="paper", text=f"this layer now: {x:.0f} %", showarrow=False,
                           xanchor="right" if right else "left", yanchor="bottom", xshift=-4 if right else 4,
                           font=dict(size=13, color=BASELINE_COLOR), bgcolor="rgba(255,255,255,0.8)")
    apply_style(fig, title or f"Speed-up over dense vs sparsity (batch {batch})", height=480)
    ymin = float(df["speedup_vs_dense"].min()) if len(df) else 0.1
    lo, hi = min(0.5, 0.8 * ymin), max(2.0, 1.3 * ymax)
    vals, texts = log_ticks(lo, hi, unit="×")
    fig.update_yaxes(type="log", title_text="speed-up vs dense (log scale)", range=[math.log10(lo), math.log10(hi)],
                     tickvals=vals, ticktext=texts)
    fig.update_xaxes(title_text="sparsity (% of weights zero)", range=[-2, 102])
    fig.update_layout(height=520, legend=LEGEND_BELOW)
    return fig
