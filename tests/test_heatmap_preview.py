"""Heatmap previews: at most ~300 KB of figure JSON per layer of every bundled model, every drawn cell a real weight."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sparsity_viz import figures
from sparsity_viz.checkpoints import available_samples, load_sample
from sparsity_viz.pruning import prune

LIMIT = 300_000  # bytes of figure JSON per rerun (issue 13)


def _z(trace: dict) -> np.ndarray:
    import base64

    z = trace["z"]
    if isinstance(z, dict):
        arr = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.dtype(z["dtype"]))
        return arr.reshape([int(s) for s in str(z["shape"]).split(",")])
    return np.asarray(z, dtype=float)


@pytest.mark.parametrize("name", available_samples())
def test_every_layer_preview_is_light(name):
    model, _ = load_sample(name)
    pruned = prune(model, "magnitude", 0.9)
    for key, w in pruned.model.named_parameters():
        if w.dim() not in (2, 4):
            continue
        fig = figures.layer_heatmap(pruned.model, pruned.masks, key, max_cells=figures.PREVIEW_CELLS)
        size = len(fig.to_json())  # what st.plotly_chart sends (plotly.io.to_json)
        assert size <= LIMIT, f"{name} {key}: {size:,} bytes"


def test_preview_cells_are_the_weights_at_the_stride():
    model, _ = load_sample("lenet300")
    pruned = prune(model, "magnitude", 0.9)
    w, m = pruned.model.fc1.weight.detach(), pruned.masks["fc1.weight"]
    full = json.loads(figures.layer_heatmap(pruned.model, pruned.masks, "fc1").to_json())
    assert len(full["data"][0]["z"]["bdata"]) > 1_000_000  # the full figure is what was too heavy
    fig = json.loads(figures.layer_heatmap(pruned.model, pruned.masks, "fc1", max_cells=20_000).to_json())
    s = figures.preview_stride((300, 784), 20_000)
    assert s == 4 and len(range(0, 300, s)) * len(range(0, 784, s)) <= 20_000 < 100 * 262  # stride 3 would not fit
    values, grey = _z(fig["data"][0]), _z(fig["data"][1])
    expected = w[::s, ::s].numpy()
    kept = m[::s, ::s].numpy()
    np.testing.assert_array_equal(values[kept], expected[kept])
    assert np.isnan(values[~kept]).all() and (grey[~kept] == 1).all() and np.isnan(grey[kept]).all()
    assert fig["data"][0]["x"] == list(range(0, 784, s)) and fig["data"][0]["y"] == list(range(0, 300, s))
    # the counts and the colour range are the whole layer's, not the preview's
    assert f"{int(m.sum()):,} of {m.numel():,} survive" in fig["layout"]["title"]["text"]
    assert fig["data"][0]["zmax"] == pytest.approx(float(w[m].abs().max()))
    assert "every 4th row and column" in fig["layout"]["title"]["text"]


def test_conv_preview_keeps_true_channel_indices():
    torch.manual_seed(0)
    w = torch.randn(50, 20, 5, 5)
    fig = figures.weight_heatmap(w, None, max_cells=3_000)
    s = figures.preview_stride((50, 20, 5, 5), 3_000 // 3)
    index = np.asarray(fig.data[0].customdata)
    outs, ins = set(index[..., 0].ravel()) - {-1}, set(index[..., 1].ravel()) - {-1}
    assert outs == set(range(0, 50, s)) and ins == set(range(0, 20, s))
    row = index[0, 0]  # the first cell is (out 0, in 0, ky 0, kx 0)
    assert row.tolist() == [0, 0, 0, 0]
    assert figures.weight_heatmap(w, None).data[0].z.shape == (50 * 6 - 1, 20 * 6 - 1)  # no max_cells: every weight


def test_small_layers_and_bad_limits():
    w = torch.randn(10, 100)
    assert figures.preview_stride(tuple(w.shape), figures.PREVIEW_CELLS) == 1
    full, preview = figures.weight_heatmap(w), figures.weight_heatmap(w, max_cells=figures.PREVIEW_CELLS)
    assert full.to_json() == preview.to_json()
    with pytest.raises(ValueError, match="at least 1"):
        figures.weight_heatmap(w, max_cells=0)
