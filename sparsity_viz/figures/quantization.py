"""Quantization figures: weights against the levels they round to, the size waterfall, the accuracy grid.

* ``quantization_histogram``: two rows over shared bins, the weights *before*
  quantization (top) and their dequantized values *after* (bottom), with every
  quantization level drawn as a vertical line (one ``Scatter`` trace per row named
  ``"levels"``; its ``x`` holds each level twice, separated by ``None``). Only the
  weights that survived pruning are counted, so the zero bin of *after* grows by
  exactly the zeros quantization created.
* ``size_waterfall``: bytes of the whole model dense fp32 → pruned (CSR) →
  quantized codes → Huffman-coded, each bar labelled with its size and its ratio to
  dense (the ``total`` row of ``sparsity_viz.compression.size_table``).
* ``quantization_grid``: test accuracy over sparsity × bits as a heatmap with the
  numbers written in the cells.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..quantization.grid import FP32_BITS
from .speed import human_bytes
from .style import BASELINE_COLOR, BASE_FONT_SIZE, LEGEND_BELOW, SEQUENTIAL, apply_style, palette

SIZE_STAGES = (  # (size_table column, bar label)
    ("dense_fp32_bytes", "dense fp32"),
    ("sparse_csr_bytes", "pruned (CSR)"),
    ("quantized_bytes", "quantized codes"),
    ("huffman_bytes", "Huffman-coded"),
)


def _np(t: Any) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().to("cpu", torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def histogram_levels(quantized: Any, channel: int | None = None) -> np.ndarray:
    """The levels a histogram of ``quantized`` (a ``QuantizedTensor``) draws: sorted, unique.

    Per channel, the levels of output channel ``channel`` (default 0).
    """
    levels = _np(getattr(quantized, "grid_levels", quantized.levels))
    if getattr(quantized, "per_channel", False) and levels.ndim == 2:
        levels = levels[0 if channel is None else int(channel)]
    return np.unique(levels.reshape(-1))


def _level_trace(levels: np.ndarray, top: float, show: bool) -> go.Scatter:
    x: list[float | None] = []
    y: list[float | None] = []
    for v in levels:
        x += [float(v), float(v), None]
        y += [0.0, top, None]
    return go.Scatter(x=x, y=y, mode="lines", name=f"quantization levels ({len(levels)})", legendgroup="levels",
                      showlegend=show, line=dict(color=BASELINE_COLOR, width=1.5 if len(levels) <= 32 else 0.8),
                      opacity=0.75 if len(levels) <= 32 else 0.45, hoverinfo="skip", meta="levels")


def quantization_histogram(
    weight: torch.Tensor,
    quantized: Any,
    mask: torch.Tensor | None = None,
    *,
    channel: int | None = None,
    bins: int = 80,
    log_y: bool = True,
    title: str | None = "Weights before and after quantization",
) -> go.Figure:
    """Histogram of ``weight`` (top) and of ``quantized.dequantize()`` (bottom), the levels drawn as vertical lines.

    Args:
        weight: the float weight that was quantized.
        quantized: its ``QuantizedTensor`` (``levels``, ``per_channel``, ``dequantize()``).
        mask: True = survived pruning; pruned entries are left out of both rows.
        channel: per-channel quantizers only: the output channel (row of ``weight``) to draw (default 0).
        bins: shared bins over the weights and the levels.
        log_y: logarithmic counts (the zero bin is often far taller than the rest).
    """
    before = _np(weight)
    after = _np(quantized.dequantize())
    keep = np.ones_like(before, dtype=bool) if mask is None else _np(mask).astype(bool)
    if getattr(quantized, "per_channel", False):
        row = 0 if channel is None else int(channel)
        before, after, keep = before[row], after[row], keep[row]
    before, after = before[keep].reshape(-1), after[keep].reshape(-1)
    levels = histogram_levels(quantized, channel)
    values = np.concatenate([before, after, levels])
    lo, hi = (float(values.min()), float(values.max())) if values.size else (-1.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    pad = 0.02 * (hi - lo)
    edges = np.linspace(lo - pad, hi + pad, bins + 1)
    centres = 0.5 * (edges[:-1] + edges[1:])
    width = float(edges[1] - edges[0])
    c_before = np.histogram(before, edges)[0]
    c_after = np.histogram(after, edges)[0]
    zeros_before, zeros_after = int((before == 0).sum()), int((after == 0).sum())

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1, subplot_titles=(
        f"before: {before.size:,} weights, {zeros_before:,} exactly zero",
        f"after: {quantized.bits}-bit, {zeros_after:,} exactly zero ({zeros_after - zeros_before:+,})",
    ))
    apply_style(fig, title, height=620)
    for row, counts, name, color in ((1, c_before, "before", palette(0)), (2, c_after, "after", palette(1))):
        fig.add_trace(go.Bar(x=centres, y=counts, width=width, name=name, marker_color=color, opacity=0.85,
                             hovertemplate="w ≈ %{x:.4f}<br>%{y} weights<extra>" + name + "</extra>"), row=row, col=1)
        top = float(max(counts.max(initial=0), 1)) * (3.0 if log_y else 1.08)
        fig.add_trace(_level_trace(levels, top, show=row == 1), row=row, col=1)
        if log_y:  # powers of ten only; a bin of one weight still shows above the axis
            fig.update_yaxes(type="log", dtick=1, range=[math.log10(0.5), math.log10(top)], row=row, col=1)
        else:
            fig.update_yaxes(range=[0, top], row=row, col=1)
        # "weights (log)" twice ran into each other at projector size; the 1, 10, 100 ticks say the scale
        fig.update_yaxes(title_text="weights", row=row, col=1)
    fig.update_layout(bargap=0, legend=LEGEND_BELOW)
    fig.update_xaxes(title_text="weight value", row=2, col=1)
    fig.update_annotations(font_size=BASE_FONT_SIZE)
    return fig


def _ratio(dense: float, size: float) -> str:
    if not size or size != size:
        return ""
    r = dense / size
    return f"{r:.1f}×" if r < 100 else f"{r:.0f}×"


def size_waterfall(size_table: pd.DataFrame,
                   title: str | None = "Model size: dense → pruned → quantized → Huffman",
                   bits: int | None = None) -> go.Figure:
    """A waterfall of bytes over the compression stages, from the ``total`` row of ``size_table``.

    The first bar is the dense fp32 size; each next bar is the change that stage makes
    (pruning to CSR can *add* bytes at low sparsity: the indices cost more than the
    zeros save). Every bar is labelled with the size after its stage and the ratio to dense.
    """
    if "layer" in size_table and (size_table["layer"] == "total").any():
        total = size_table[size_table["layer"] == "total"].iloc[0]
    else:
        total = size_table.iloc[-1]
    sizes = [float(total[c]) for c, _ in SIZE_STAGES]
    labels = [label for _, label in SIZE_STAGES]
    if bits is not None:
        labels[2] = f"quantized ({bits}-bit codes)"
    dense = sizes[0]
    steps = [sizes[0]] + [b - a for a, b in zip(sizes, sizes[1:])]
    text = [f"{human_bytes(s)}" + ("" if i == 0 else f" · {_ratio(dense, s)}") for i, s in enumerate(sizes)]
    fig = go.Figure(go.Waterfall(
        x=labels, y=steps, measure=["absolute"] + ["relative"] * (len(steps) - 1), text=text,
        textposition="none", customdata=sizes,
        hovertemplate="%{x}<br>%{customdata:,.0f} bytes<extra></extra>",
        connector=dict(line=dict(color=BASELINE_COLOR, width=1, dash="dot")),
        increasing=dict(marker=dict(color=palette(3))), decreasing=dict(marker=dict(color=palette(2))),
        totals=dict(marker=dict(color=palette(0))),
    ))
    # each label sits above its bar's top (a shrinking stage's bar hangs from the previous size), size and ratio on
    # two lines: on one, neighbours ran into each other at projector size (a browser walk at 1280x720)
    for i, (label, t) in enumerate(zip(labels, text)):
        top = sizes[0] if i == 0 else max(sizes[i - 1], sizes[i])
        fig.add_annotation(x=label, y=top, text=t if i == 0 else "→ " + t.replace(" · ", "<br>"), showarrow=False,
                           yshift=6, yanchor="bottom", font=dict(size=BASE_FONT_SIZE - 1))
    apply_style(fig, title, height=480)
    fig.update_layout(showlegend=False)
    fig.update_yaxes(title_text="bytes", range=[0, 1.3 * max(sizes)])
    return fig


def grid_matrix(frame: pd.DataFrame) -> tuple[list[float], list[int], np.ndarray]:
    """``(sparsities, bits, accuracy)`` of a grid frame (columns sparsity, bits, accuracy): rows sparsity, cols bits.

    A cell not computed (a stopped run) is ``NaN``.
    """
    sparsities = sorted(float(s) for s in frame["sparsity"].unique())
    bits = sorted(int(b) for b in frame["bits"].unique())
    z = np.full((len(sparsities), len(bits)), np.nan)
    for _, r in frame.iterrows():
        z[sparsities.index(float(r["sparsity"])), bits.index(int(r["bits"]))] = float(r["accuracy"])
    return sparsities, bits, z


def quantization_grid(frame: pd.DataFrame, dense_accuracy: float | None = None,
                      title: str | None = "Test accuracy after pruning and quantization") -> go.Figure:
    """Heatmap of test accuracy (%) over sparsity (rows) × bits (columns); ``bits == 32`` is the fp32 column."""
    sparsities, bits, z = grid_matrix(frame)
    pct = 100 * z
    text = [["" if math.isnan(v) else f"{v:.1f}" for v in row] for row in pct]
    cols = ["fp32" if b == FP32_BITS else f"{b} bits" for b in bits]
    rows = [f"{100 * s:g} %" for s in sparsities]
    finite = pct[np.isfinite(pct)]
    fig = go.Figure(go.Heatmap(
        z=pct, x=cols, y=rows, text=text, texttemplate="%{text}", textfont=dict(size=BASE_FONT_SIZE),
        colorscale=SEQUENTIAL, zmin=float(finite.min()) if finite.size else 0.0,
        zmax=float(finite.max()) if finite.size else 100.0, colorbar=dict(title=dict(text="accuracy (%)")),
        hovertemplate="sparsity %{y}, %{x}<br>accuracy %{z:.2f} %<extra></extra>", xgap=2, ygap=2,
    ))
    if dense_accuracy is not None:
        title = f"{title} (dense fp32: {100 * dense_accuracy:.1f} %)" if title else None
    apply_style(fig, title, height=max(360, 80 + 64 * len(rows)))
    fig.update_xaxes(title_text="bits per weight", type="category", side="bottom")
    fig.update_yaxes(title_text="sparsity (pruned)", type="category", autorange="reversed")
    return fig
