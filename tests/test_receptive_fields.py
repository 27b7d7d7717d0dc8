"""Receptive fields and one unit's fans: checked against hand-made weights, torch.nn.utils.prune and connectivity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as tprune

from sparsity_viz import figures
from sparsity_viz.connectivity import dead_neurons
from sparsity_viz.graph import build_graph
from sparsity_viz.models import MLP, LeNet5
from sparsity_viz.receptive_fields import first_layer, receptive_fields, unit_fans, unit_masks


def _tiny() -> tuple[MLP, dict[str, torch.Tensor]]:
    """A 4x4-pixel MLP 16 -> 3 -> 2 with hand-set weights; unit 1 loses every input, unit 2 every output."""
    torch.manual_seed(0)
    model = MLP(16, (3,), 2)
    with torch.no_grad():
        model.fc1.weight.copy_(torch.arange(48, dtype=torch.float32).reshape(3, 16) - 20)  # one zero: (1, 4)
        model.fc2.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]]))
    m1 = torch.ones(3, 16, dtype=torch.bool)
    m1[0, :8] = False  # unit 0: the top two rows pruned
    m1[1] = False  # unit 1: nothing in
    m2 = torch.ones(2, 3, dtype=torch.bool)
    m2[:, 2] = False  # unit 2: nothing out
    return model, {"fc1.weight": m1, "fc2.weight": m2, "fc1.bias": torch.ones(3, dtype=torch.bool)}


def test_linear_fields_are_the_surviving_weights_as_images():
    model, masks = _tiny()
    rf = receptive_fields(model, masks, input_shape=(1, 4, 4))
    assert (rf.layer, rf.kind, rf.images.shape, rf.inputs) == ("fc1", "linear", (3, 4, 4), 16)
    w = model.fc1.weight.detach()
    alive = masks["fc1.weight"] & (w != 0)  # a weight that is exactly zero counts as pruned
    expected = np.where(alive.numpy(), w.numpy(), np.nan).reshape(3, 4, 4)
    np.testing.assert_array_equal(rf.images, expected.astype(np.float32))
    assert rf.alive.tolist() == alive.sum(1).tolist() == [8, 0, 16]
    assert rf.dead.tolist() == dead_neurons(model, masks)["fc1"].tolist() == [False, True, True]
    assert rf.zmax == float(w[alive].abs().max())


def test_fields_match_torch_prune_masks_on_an_mnist_mlp():
    model = MLP(784, (20,), 10)
    tprune.l1_unstructured(model.fc1, "weight", amount=0.9)
    mask = model.fc1.weight_mask.bool().clone()
    tprune.remove(model.fc1, "weight")
    rf = receptive_fields(model, {"fc1.weight": mask}, input_shape=(1, 28, 28))
    assert rf.images.shape == (20, 28, 28)
    np.testing.assert_array_equal(np.isfinite(rf.images), mask.reshape(20, 28, 28).numpy())
    assert int(rf.alive.sum()) == int(mask.sum()) == round(0.1 * 784 * 20)
    # without an input shape, a square number of features is read as a square image
    np.testing.assert_array_equal(receptive_fields(model, {"fc1.weight": mask}).images, rf.images)


def test_conv_filters_and_channels_side_by_side():
    model = LeNet5()
    rf = receptive_fields(model)
    w = model.conv1.weight.detach()
    assert rf.kind == "conv" and rf.images.shape == (w.shape[0], 5, 5)
    np.testing.assert_array_equal(rf.images, w[:, 0].numpy())
    conv2 = receptive_fields(model, layer="conv2")
    c_in = model.conv2.weight.shape[1]
    assert conv2.images.shape == (model.conv2.weight.shape[0], 5, c_in * 6 - 1)
    np.testing.assert_array_equal(conv2.images[3, :, 6:11], model.conv2.weight.detach()[3, 1].numpy())
    assert np.isnan(conv2.images[:, :, 5]).all()  # the gap between channel 0 and 1


def test_bad_inputs_say_why():
    with pytest.raises(ValueError, match="need image inputs"):
        receptive_fields(MLP(2, (8,), 2))
    with pytest.raises(ValueError, match="no prunable layer 'fc9'"):
        receptive_fields(MLP(16, (3,), 2), layer="fc9")
    with pytest.raises(ValueError, match="does not read the image"):
        receptive_fields(MLP(16, (3,), 2), layer="fc2")
    model, masks = _tiny()
    with pytest.raises(ValueError, match="3 units; unit 3"):
        unit_fans(model, masks, "fc1", 3)
    assert first_layer(model) == "fc1"


def test_unit_fans_count_the_masks():
    model, masks = _tiny()
    for u in range(3):
        fans = unit_fans(model, masks, "fc1", u)
        alive_in = masks["fc1.weight"][u] & (model.fc1.weight[u] != 0)
        assert fans.fan_in_weights == int(alive_in.sum()) == fans.fan_in_units
        assert fans.fan_out_weights == int(masks["fc2.weight"][:, u].sum()) == fans.fan_out_units
    last = unit_fans(model, masks, "fc2", 0)
    assert (last.fan_in_weights, last.fan_out_weights) == (2, 0)


def test_conv_fan_out_into_a_flattened_linear_layer():
    model = LeNet5()
    fans = unit_fans(model, None, "conv2", 4)
    k = model.fc1.weight.shape[1] // model.conv2.weight.shape[0]  # flattened positions per channel
    assert fans.fan_out_weights == int((model.fc1.weight[:, 4 * k : 5 * k] != 0).sum())
    assert fans.fan_in_units == model.conv2.weight.shape[1]


def test_unit_masks_draw_exactly_the_units_edges():
    model, masks = _tiny()
    graph = build_graph(model, unit_masks(model, masks, "fc1", 0), max_edges_per_layer=10**6)
    edges = {(e.layer, e.src, e.dst) for e in graph.edges}
    assert edges == {(0, i, 0) for i in range(8, 16)} | {(1, 0, 0), (1, 0, 1)}


def test_grid_figure_tiles_dead_units_and_clickable_markers():
    model, masks = _tiny()
    rf = receptive_fields(model, masks, input_shape=(1, 4, 4))
    fig = figures.receptive_field_grid(rf, [0, 1, 2], selected=2, title="t")
    heat, units = fig.data
    rows, cols = figures.receptive_fields.grid_shape(3)
    assert (rows, cols) == (2, 2)
    np.testing.assert_array_equal(np.asarray(heat.z, dtype=np.float32), figures.tile_grid(rf.images, cols))
    assert np.asarray(heat.z).shape == (2 * 5 - 1, 2 * 5 - 1)
    assert list(units.customdata) == [0, 1, 2] and units.meta == {"kind": "units"}
    names = [s.name for s in fig.layout.shapes]
    assert names.count("dead") == 2 and names.count("selected") == 1
    with pytest.raises(ValueError, match="3 units"):
        figures.receptive_field_grid(rf, [5])


def test_unit_graph_highlights_the_fans():
    model, masks = _tiny()
    fig = figures.unit_graph(model, masks, "fc1", 0)
    segs = sum(sum(v is None for v in tr.x) for tr in fig.data if (tr.meta or {}).get("kind") == "unit_edges")
    fans = unit_fans(model, masks, "fc1", 0)
    assert segs == fans.fan_in_units + fans.fan_out_units == 10
    assert "8 weights in" in fig.layout.title.text and "2 out" in fig.layout.title.text
    assert [tr for tr in fig.data if (tr.meta or {}).get("kind") == "selected"]


def test_preview_grid_of_lenet300_fits_a_classroom_payload():
    model = MLP(784, (300,), 10)
    rf = receptive_fields(model)
    fig = figures.receptive_field_grid(rf, range(25))
    assert len(fig.to_json()) < 150_000
    assert math.isclose(rf.zmax, float(model.fc1.weight.detach().abs().max()), rel_tol=1e-6)
