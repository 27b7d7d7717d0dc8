"""Activation figures carry the library's numbers: heatmap cells are the activations (zeros in their own trace),
histogram bars are ``value_histogram``'s counts, the zero-share bars are ``compare_reports``'s columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsity_viz import figures
from sparsity_viz.activations import activation_sparsity, activations_of_input, compare_reports, value_histogram
from sparsity_viz.figures.activations import ZERO_COLOR
from sparsity_viz.masks import masks_from_zeros


@pytest.mark.parametrize("n, shape", [(300, (15, 20)), (100, (10, 10)), (500, (20, 25)), (8, (2, 4)), (32, (4, 8)),
                                      (20, (4, 5)), (50, (5, 10)), (1, (1, 1)), (11, (3, 4)), (13, (4, 4))])
def test_unit_grid_shape_is_near_square_and_holds_every_unit(n, shape):
    rows, cols = figures.unit_grid_shape(n)
    assert (rows, cols) == shape and rows * cols >= n and rows * cols - n < cols


def test_mosaic_of_units_is_row_major_with_padding():
    z, ids = figures.activation_mosaic(torch.arange(11.0))  # 3 x 4, one padded cell
    assert z.shape == (3, 4) and ids.shape == (3, 4, 1)
    assert z.ravel()[:11].tolist() == list(range(11)) and np.isnan(z.ravel()[11])
    assert ids[2, 1, 0] == 9 and ids[2, 3, 0] == -1


def test_mosaic_of_channel_maps_tiles_each_map_with_a_gap():
    a = torch.arange(6 * 2 * 3, dtype=torch.float32).view(6, 2, 3)  # 6 channels of 2 x 3 -> 2 x 3 grid of maps
    z, ids = figures.activation_mosaic(a)
    assert z.shape == (2 * 3 - 1, 3 * 4 - 1)
    ch = 4  # grid row 1, col 1 -> top-left pixel at (3, 4)
    np.testing.assert_array_equal(z[3:5, 4:7], a[ch].numpy())
    assert ids[4, 6].tolist() == [4, 1, 2] and np.isnan(z[2, 0]) and ids[2, 0].tolist() == [-1, -1, -1]
    with pytest.raises(ValueError, match="got shape"):
        figures.activation_mosaic(torch.zeros(2, 3, 4, 5))
    # a Conv1d layer's (channels, L) is drawn as (channels, 1, L) (it raised on the Activations page, an audit)
    seq = torch.arange(6.0).reshape(2, 3)
    z, ids = figures.activation_mosaic(seq)
    z3, ids3 = figures.activation_mosaic(seq[:, None, :])
    np.testing.assert_array_equal(z, z3)
    np.testing.assert_array_equal(ids, ids3)


def _traces(fig, row: str, layer: str) -> dict:
    return {t.meta["kind"]: t for t in fig.data if t.meta and t.meta.get("row") == row and t.meta.get("layer") == layer}


@pytest.mark.parametrize("fixture", ["lenet300", "tiny_conv"])
def test_heatmap_cells_are_the_activations_and_zeros_have_their_own_colour(fixture, request, batch_for):
    model = request.getfixturevalue(fixture)
    x, _ = batch_for(model)
    dense = activations_of_input(model, x[0])
    masks = masks_from_zeros(model)
    first = next(iter(masks))
    masks[first] = torch.rand(masks[first].shape, generator=torch.Generator().manual_seed(0)) > 0.8
    from sparsity_viz.masks import masked_copy

    current = activations_of_input(masked_copy(model, masks), x[0])
    fig = figures.activation_heatmaps({"dense": dense, "current": current})
    for label, acts in (("dense", dense), ("current", current)):
        for name, a in acts.items():
            t = _traces(fig, label, name)
            z, _ = figures.activation_mosaic(a)
            values, zeros = np.asarray(t["values"].z, dtype=float), np.asarray(t["zeros"].z, dtype=float)
            is_zero = z == 0
            assert int(np.nansum(zeros)) == int((a == 0).sum())  # one zero cell per exact zero
            np.testing.assert_array_equal(np.isnan(zeros), ~is_zero)
            np.testing.assert_allclose(values[~is_zero & ~np.isnan(z)], z[~is_zero & ~np.isnan(z)], rtol=1e-6)
            assert np.isnan(values[is_zero]).all()
            assert t["zeros"].colorscale[0][1] == ZERO_COLOR
            k = ["dense", "current"].index(label) * len(acts) + list(acts).index(name)  # row by row
            assert fig.layout.annotations[k].text == f"{name}: {100 * float((a == 0).double().mean()):.0f} % zero"
    assert [fig.layout[f"yaxis{1 + i * len(dense) if i else ''}"].title.text for i in range(2)] == ["dense", "current"]
    with pytest.raises(ValueError, match="same hidden layers"):
        figures.activation_heatmaps({"dense": dense, "current": {"other": torch.zeros(3)}})


def test_histogram_bars_are_the_counts(lenet300):
    x = torch.randn(40, 784, generator=torch.Generator().manual_seed(1))
    masks = {k: v & (torch.rand(v.shape, generator=torch.Generator().manual_seed(2)) > 0.9)
             for k, v in masks_from_zeros(lenet300).items()}
    from sparsity_viz.masks import masked_copy

    pruned = masked_copy(lenet300, masks)
    d0, c0 = value_histogram(lenet300, x, "fc1"), value_histogram(pruned, x, "fc1")
    lo, hi = min(float(d0.edges[0]), float(c0.edges[0])), max(float(d0.edges[-1]), float(c0.edges[-1]))
    d, c = (value_histogram(m, x, "fc1", value_range=(lo, hi)) for m in (lenet300, pruned))
    fig = figures.activation_histogram({"dense": d, "current": c})
    for label, h in (("dense", d), ("current", c)):
        zeros = next(t for t in fig.data if t.meta == {"row": label, "kind": "zeros"})
        values = next(t for t in fig.data if t.meta == {"row": label, "kind": "values"})
        assert zeros.y[0] == pytest.approx(100 * h.zeros / h.total) and zeros.text[0] == f"{100 * h.zero_fraction:.1f} %"
        assert np.asarray(values.customdata).tolist() == h.counts.tolist()
        assert np.asarray(values.y) == pytest.approx(100 * h.counts.numpy() / h.total)
    assert "fc1" in fig.layout.title.text
    with pytest.raises(ValueError, match="share their bins"):
        figures.activation_histogram({"dense": d0, "current": value_histogram(pruned, x, "fc1", bins=3)})


def test_zero_share_bars_are_the_report_table(lenet300):
    x = torch.randn(30, 784, generator=torch.Generator().manual_seed(3))
    table = compare_reports(activation_sparsity(lenet300, x), activation_sparsity(lenet300, x))
    fig = figures.zero_share_bars(table)
    by = {t.meta: t for t in fig.data}
    assert list(by) == ["dense", "current"]
    assert list(by["dense"].x) == ["fc1", "fc2"]
    assert list(by["dense"].y) == table["dense_zero_pct"].tolist()
    assert list(by["current"].y) == table["current_zero_pct"].tolist()
    assert by["dense"].marker.color != by["current"].marker.color


def test_input_point_marks_the_chosen_input():
    x = torch.tensor([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    fig = figures.input_point(x, torch.tensor([0, 1, 1]), 2, class_names=("a", "b"))
    chosen = next(t for t in fig.data if t.meta == "chosen")
    assert (chosen.x[0], chosen.y[0]) == (4.0, 5.0)
    assert [t.name for t in fig.data if t.meta != "chosen"] == ["a", "b"]
    with pytest.raises(ValueError, match="outside"):
        figures.input_point(x, torch.tensor([0, 1, 1]), 3)
