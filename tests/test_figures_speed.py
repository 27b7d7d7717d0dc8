"""Speed & memory figures: built from small synthetic backend frames (no timing), data checked in the figure."""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from sparsity_viz import figures
from sparsity_viz.backend.bench import crossovers


def _bench() -> pd.DataFrame:
    rows = []
    for batch, dense in ((1, 40.0), (256, 1000.0)):
        for fmt, ratio, nbytes in (("dense", 1.0, 1_064_800), ("csr-torch", 1.2 if batch == 1 else 0.5, 214_612),
                                   ("csr-native", 0.4, 161_372), ("nm-native", math.nan, math.nan),
                                   ("auto", 0.45, 160_000)):
            rows.append({"batch": batch, "format": fmt, "median_us": dense * ratio, "ratio_dense": ratio,
                         "weight_bytes": nbytes, "ideal_bytes_ratio": 0.1, "note": "skipped: x" if ratio != ratio else ""})
    return pd.DataFrame(rows)


def _curves() -> pd.DataFrame:
    rows = []
    for s in (0.0, 0.5, 0.7, 0.9, 0.99):
        for batch in (1, 256):
            rows.append({"sparsity": s, "batch": batch, "format": "dense", "speedup_vs_dense": 1.0})
            rows.append({"sparsity": s, "batch": batch, "format": "csr-native",
                         "speedup_vs_dense": 0.5 + 4 * s if batch == 256 else 0.3 + 2 * s})
            rows.append({"sparsity": s, "batch": batch, "format": "csr-torch", "speedup_vs_dense": 0.2 + 0.5 * s})
    return pd.DataFrame(rows)


def test_latency_bars_groups_formats_per_batch_with_dense_reference():
    fig = figures.latency_bars(_bench())
    assert isinstance(fig, go.Figure)
    bars = [t for t in fig.data if t.type == "bar"]
    names = [t.name for t in bars]
    assert names[0] == figures.format_label("dense")
    assert figures.format_label("nm-native") not in names  # skipped formats are left out
    native = next(t for t in bars if t.name == figures.format_label("csr-native"))
    assert list(native.x) == ["batch 1", "batch 256"]
    assert list(native.y) == pytest.approx([16.0, 400.0])
    assert list(native.text) == ["0.40×", "0.40×"]
    assert fig.layout.yaxis.type == "log"
    dashed = [s for s in fig.layout.shapes if s.line.dash == "dash"]
    assert [s.y0 for s in dashed] == [40.0, 1000.0]  # one dense reference line per batch group


def test_bytes_bars_with_checkpoint_and_ratios():
    fig = figures.bytes_bars(_bench(), checkpoint_bytes=175_348)
    bar = fig.data[0]
    assert list(bar.y)[-1] == "sparse checkpoint file"
    assert bar.x[-1] == 175_348
    assert any("0.15×" in t for t in bar.text)  # csr-native 161,372 / 1,064,800
    assert fig.layout.shapes[0].x0 == 1_064_800  # dense reference


def test_speedup_curves_mark_crossover_and_current_sparsity():
    curves = _curves()
    cross = crossovers(curves)
    fig = figures.speedup_curve_figure(curves, cross, batch=256, mark_sparsity=0.9)
    names = [t.name for t in fig.data]
    assert figures.format_label("csr-native") in names and figures.format_label("dense") not in names
    native = next(t for t in fig.data if t.name == figures.format_label("csr-native"))
    assert list(native.x) == pytest.approx([0, 50, 70, 90, 99])
    texts = [a.text for a in fig.layout.annotations]
    assert any("CSR (native kernel) wins from 50 %" in t for t in texts)  # 0.5 + 4 * 0.5 > 1 from 50 %
    assert not any("torch.sparse" in t for t in texts)  # csr-torch never wins: no crossover line
    assert any("this layer now: 90 %" in t for t in texts)
    xs = sorted(s.x0 for s in fig.layout.shapes if s.x0 == s.x1)
    assert xs == pytest.approx([50, 90])
    assert fig.layout.yaxis.type == "log"
    fig1 = figures.speedup_curve_figure(curves, batch=1)
    assert fig1.to_json() != fig.to_json()
    assert any("wins from 50 %" in a.text for a in fig1.layout.annotations)  # 0.3 + 2 * 0.5 > 1


def test_human_bytes():
    assert figures.human_bytes(175_348) == "175 KB"
    assert figures.human_bytes(1_066_896) == "1.07 MB"
    assert figures.human_bytes(856) == "856 B"


def test_activation_sparse_formats_have_labels_and_colours_distinct_from_their_small_batch_rivals():
    from sparsity_viz.backend.dispatch import default_formats

    small = default_formats(torch.device("cpu"), 1)
    assert {"act-dense-native", "act-csc-native"} <= set(small)
    colours = [figures.format_color(f) for f in small]
    assert len(set(colours)) == len(colours)  # every format timed at batch 1 gets its own colour
    assert figures.format_label("act-csc-native") != figures.format_label("act-dense-native")
    assert "skip zero inputs" in figures.format_label("act-dense-native")


def test_latency_bars_without_a_finite_time_and_an_empty_speedup_frame_say_so():
    """Found by an audit: all-NaN or infinite medians raised 'cannot convert float NaN to integer' from the tick
    maker, and an empty speed-up frame the same from int(NaN)."""
    for value in (float("nan"), float("inf")):
        bench = pd.DataFrame(dict(format=["dense", "csr-torch"], batch=[1, 1], median_us=[value, value],
                                  ratio_dense=[1.0, 0.5], weight_bytes=[100, 50]))
        assert isinstance(figures.latency_bars(bench), go.Figure)
    assert figures.speed.log_ticks(float("nan"), 10.0) == ([], [])
    with pytest.raises(ValueError, match="needs at least one measured row"):
        figures.speedup_curve_figure(pd.DataFrame(columns=["format", "sparsity", "batch", "speedup_vs_dense"]))
