"""Quantization figures: the levels drawn are the quantizer's levels, exact counts, sizes and grid cells as given."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from sparsity_viz import figures
from sparsity_viz.quantization import get_quantizer


def _levels_drawn(trace) -> list[float]:
    xs = [x for x in trace.x if x is not None]
    assert xs[0::2] == xs[1::2]  # each level is one vertical segment (x, x)
    return xs[0::2]


def _traces(fig: go.Figure):
    bars = [t for t in fig.data if t.type == "bar"]
    lines = [t for t in fig.data if t.type == "scatter" and t.meta == "levels"]
    return bars, lines


def test_histogram_draws_exactly_the_quantizers_levels_on_both_rows():
    w = torch.tensor([[-1.0, -0.6, -0.2, -0.05], [0.04, 0.3, 0.7, 1.0]])
    qt = get_quantizer("uniform_symmetric", 3).quantize(w)
    fig = figures.quantization_histogram(w, qt, log_y=False)
    bars, lines = _traces(fig)
    assert len(bars) == 2 and len(lines) == 2
    expected = sorted(np.unique(qt.grid_levels.numpy()).tolist())
    for line in lines:
        assert sorted(_levels_drawn(line)) == pytest.approx(expected)
    # scale = 1/3 (max |w| = 1 over 3 positive steps): the 7 levels -1..1; the never-used code -4/3 is not drawn
    assert expected == pytest.approx([k / 3 for k in range(-3, 4)])
    assert [int(sum(b.y)) for b in bars] == [8, 8]  # every weight counted once per row
    assert lines[0].showlegend and not lines[1].showlegend


def test_histogram_after_row_counts_the_zeros_quantization_created():
    w = torch.tensor([-0.9, -0.02, 0.01, 0.03, 0.5, 0.9, 0.0, 0.4])
    mask = torch.tensor([True, True, True, True, True, True, False, False])  # the last two were pruned
    qt = get_quantizer("uniform_symmetric", 2).quantize(w, mask)
    fig = figures.quantization_histogram(w, qt, mask, log_y=False, bins=40)
    bars, _ = _traces(fig)
    before, after = bars
    assert int(sum(before.y)) == int(sum(after.y)) == 6  # pruned entries left out of both rows
    deq = qt.dequantize()[mask]
    zero_bin = int(np.argmin(np.abs(np.asarray(after.x))))
    assert after.y[zero_bin] == int((deq == 0).sum()) == 3  # -0.02, 0.01, 0.03 round to 0 (step 0.9)
    assert "3 exactly zero (+3)" in fig.layout.annotations[1].text


def test_histogram_per_channel_draws_the_chosen_rows_levels():
    torch.manual_seed(0)
    w = torch.randn(4, 16)
    qt = get_quantizer("uniform_affine", 2, per_channel=True).quantize(w)
    for ch in (0, 3):
        fig = figures.quantization_histogram(w, qt, channel=ch)
        bars, lines = _traces(fig)
        assert sorted(_levels_drawn(lines[0])) == pytest.approx(sorted(np.unique(qt.levels[ch].numpy()).tolist()))
        assert int(sum(bars[0].y)) == 16  # one row's weights
    assert figures.histogram_levels(qt, 3) == pytest.approx(np.unique(qt.levels[3].numpy()))


def test_histogram_kmeans_levels():
    w = torch.tensor([-1.0, -0.9, -0.1, 0.0, 0.1, 0.8, 1.0, 1.1])
    qt = get_quantizer("kmeans", 2).quantize(w)
    fig = figures.quantization_histogram(w, qt)
    _, lines = _traces(fig)
    assert sorted(_levels_drawn(lines[0])) == pytest.approx(sorted(np.unique(qt.levels.numpy()).tolist()))
    assert 0.0 in _levels_drawn(lines[0])  # zero is always a level


def _sizes() -> pd.DataFrame:
    return pd.DataFrame([
        {"layer": "fc1", "dense_fp32_bytes": 800_000, "sparse_csr_bytes": 100_000, "quantized_bytes": 30_000,
         "huffman_bytes": 20_000},
        {"layer": "fc2", "dense_fp32_bytes": 200_000, "sparse_csr_bytes": 30_000, "quantized_bytes": 10_000,
         "huffman_bytes": 5_000},
        {"layer": "total", "dense_fp32_bytes": 1_000_000, "sparse_csr_bytes": 130_000, "quantized_bytes": 40_000,
         "huffman_bytes": 25_000},
    ])


def test_size_waterfall_steps_sizes_and_ratio_labels():
    fig = figures.size_waterfall(_sizes(), bits=4)
    (trace,) = fig.data
    assert trace.type == "waterfall"
    assert list(trace.measure) == ["absolute", "relative", "relative", "relative"]
    assert list(trace.y) == [1_000_000, -870_000, -90_000, -15_000]
    assert float(np.cumsum(trace.y)[-1]) == 25_000  # the last bar ends at the Huffman-coded size
    assert list(trace.customdata) == [1_000_000, 130_000, 40_000, 25_000]
    assert list(trace.x) == ["dense fp32", "pruned (CSR)", "quantized (4-bit codes)", "Huffman-coded"]
    assert trace.text[1].endswith("7.7×") and trace.text[2].endswith("25.0×") and trace.text[3].endswith("40.0×")
    notes = [a.text for a in fig.layout.annotations]
    assert notes == ["1 MB", "→ 130 KB<br>7.7×", "→ 40 KB<br>25.0×", "→ 25 KB<br>40.0×"]  # two lines: they ran together
    assert [a.y for a in fig.layout.annotations] == [1_000_000, 1_000_000, 130_000, 40_000]  # above each bar's top


def test_size_waterfall_shows_csr_growing_at_low_sparsity():
    sizes = _sizes()
    sizes.loc[2, "sparse_csr_bytes"] = 1_200_000  # indices cost more than the zeros save
    trace = figures.size_waterfall(sizes).data[0]
    assert trace.y[1] == 200_000 and trace.text[1].endswith("0.8×")


def test_quantization_grid_shape_labels_and_missing_cells():
    rows = [{"sparsity": s, "bits": b, "accuracy": 0.5 + s / 4 + b / 100} for s in (0.0, 0.5, 0.9) for b in (2, 4, 32)]
    frame = pd.DataFrame(rows[:-1])  # a stopped run: the last cell is missing
    fig = figures.quantization_grid(frame, dense_accuracy=0.97)
    (heat,) = fig.data
    z = np.array(heat.z, dtype=float)
    assert z.shape == (3, 3)
    assert list(heat.x) == ["2 bits", "4 bits", "fp32"] and list(heat.y) == ["0 %", "50 %", "90 %"]
    assert z[1, 1] == pytest.approx(100 * (0.5 + 0.125 + 0.04))
    assert math.isnan(z[2, 2]) and heat.text[2][2] == ""
    assert heat.text[0][0] == f"{100 * 0.52:.1f}"
    assert "97.0 %" in fig.layout.title.text
    sp, bits, acc = figures.grid_matrix(frame)
    assert sp == [0.0, 0.5, 0.9] and bits == [2, 4, 32] and acc.shape == (3, 3)
