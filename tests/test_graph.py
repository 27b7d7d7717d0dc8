"""The surviving-connection graph on hand-built models (dead units, collapse and fan-out: test_connectivity)."""

from __future__ import annotations

import pytest
import torch
from test_connectivity import M1, M2, M3, TinyConv, tiny  # noqa: F401 (tiny is a fixture)

from sparsity_viz.connectivity import dead_neurons, layer_collapse
from sparsity_viz.graph import build_graph, unit_connections
from sparsity_viz.models import MLP, build_model

B = torch.bool


def test_graph_edges_and_nodes_exact(tiny):
    model, masks = tiny
    g = build_graph(model, masks, class_names=["no", "yes"])
    assert g.columns == ("input", "fc1", "fc2", "fc3")
    assert g.column_sizes == (3, 4, 3, 2)
    assert len(g.edges) == int(M1.sum() + M2.sum() + M3.sum()) == 10
    expected = set()
    for layer, (m, w) in enumerate(
        zip((M1, M2, M3), (model.fc1.weight.detach(), model.fc2.weight.detach(), model.fc3.weight.detach()))
    ):
        for dst, src in torch.nonzero(m).tolist():
            expected.add((layer, src, dst, round(float(w[dst, src]), 6)))
    assert {(e.layer, e.src, e.dst, round(e.weight, 6)) for e in g.edges} == expected
    assert all(e.magnitude == pytest.approx(abs(e.weight)) and e.count == 1 for e in g.edges)
    dead = {(n.column, n.index) for n in g.nodes if n.dead}
    assert dead == {(0, 2), (1, 1), (1, 3), (2, 2)}
    assert [n.label for n in g.nodes if n.column == 3] == ["no", "yes"]
    fan = {(n.column, n.index): (n.fan_in, n.fan_out) for n in g.nodes}
    assert fan[(0, 0)] == (0, 2) and fan[(1, 2)] == (2, 1) and fan[(3, 0)] == (2, 0)
    assert [s.surviving for s in g.layers] == [4, 3, 3]
    assert [s.dead_units for s in g.layers] == [2, 1, 0]
    assert g.hidden_edges == 0 and g.path_exists


def test_graph_caps_edges_by_magnitude(tiny):
    model, masks = tiny
    g = build_graph(model, masks, max_edges_per_layer=2)
    assert [s.edges_shown for s in g.layers] == [2, 2, 2]
    assert [s.edges_hidden for s in g.layers] == [2, 1, 1]
    assert g.hidden_edges == 4
    # fc1 survivors: (0,0)=0.1, (2,0)=0.7, (2,1)=0.8, (3,1)=1.1 (|w|) -> keep (2,1) and (3,1)
    kept = {(e.dst, e.src) for e in g.edges if e.layer == 0}
    assert kept == {(2, 1), (3, 1)}


def test_graph_groups_image_pixels():
    model = MLP(16, (3,), 2)
    masks = {"fc1.weight": torch.ones(3, 16, dtype=B), "fc2.weight": torch.ones(2, 3, dtype=B)}
    masks["fc1.weight"][:, [0, 1, 4, 5]] = False  # the top-left 2x2 block of the 4x4 image
    g = build_graph(model, masks, max_input_nodes=4, input_shape=(1, 4, 4))
    assert g.column_sizes[0] == 4 and g.input_grouping == "2x2 pixel blocks"
    inputs = [n for n in g.nodes if n.column == 0]
    assert [n.size for n in inputs] == [4, 4, 4, 4]
    assert [n.dead for n in inputs] == [True, False, False, False]
    assert [n.fan_out for n in inputs] == [0, 12, 12, 12]
    e = next(e for e in g.edges if e.layer == 0 and e.src == 1 and e.dst == 0)
    cols = [2, 3, 6, 7]
    assert e.count == 4
    assert e.weight == pytest.approx(float(model.fc1.weight.detach()[0, cols].sum()))
    assert e.magnitude == pytest.approx(float(model.fc1.weight.detach()[0, cols].abs().sum()))


def test_conv_units_are_channels():
    model = TinyConv()
    m_conv = torch.ones(2, 1, 3, 3, dtype=B)
    m_conv[1] = False  # filter 1 pruned away
    m_fc = torch.ones(3, 8, dtype=B)
    m_fc[:, 0:4] = False  # nothing leaves channel 0
    m_fc[2, 4:7] = False
    masks = {"conv1.weight": m_conv, "fc1.weight": m_fc}
    conv, fc = unit_connections(model, masks)
    assert conv.kind == "conv" and conv.count.tolist() == [[9], [0]]
    assert fc.count.tolist() == [[0, 4], [0, 4], [0, 1]]
    torch.testing.assert_close(fc.magnitude[0, 1], model.fc1.weight[0, 4:8].abs().sum().detach())
    dead = dead_neurons(model, masks)
    assert dead["conv1"].tolist() == [True, True]  # 0: no output, 1: no input
    assert dead["input"].tolist() == [False]
    assert not layer_collapse(model, masks).path_exists


def test_real_models_shapes_and_speed():
    lenet300 = build_model("lenet300", seed=0)
    g = build_graph(lenet300, None, input_shape=(1, 28, 28))
    assert g.column_sizes == (49, 300, 100, 10)
    assert all(s.edges_shown <= 250 for s in g.layers)
    assert sum(s.edges_shown + s.edges_hidden for s in g.layers) == sum(s.connections for s in g.layers)
    g5 = build_graph(build_model("lenet5", seed=0), None)
    assert g5.column_sizes == (1, 20, 50, 500, 10)
    assert g5.layers[2].connections == 50 * 500  # fc1 connects conv2's 50 channels to 500 units


def test_layer_notes_stay_three_short_lines():
    """Found by audits: four-line notes ("... weights kept (7,850 weak links not drawn)") ran into the legend
    at 1280x720 in projector mode, and "23,520 of 235,200 kept" into the next layer's note."""
    from sparsity_viz import figures
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.pruning import prune

    pruned = prune(load_sample("lenet300")[0], "magnitude", 0.9)
    fig = figures.model_graph(pruned.model, pruned.masks, max_edges_per_layer=150, input_shape=(1, 28, 28))
    notes = [a.text for a in fig.layout.annotations if "kept" in a.text]
    assert notes[0].startswith("23.5k of 235k<br>kept<br>") and notes[0].endswith(" hidden")
    assert notes[2] == "100 of 1,000<br>kept"
    # the browser walk (tests/e2e/test_layout_browser.py) found longer lines running into each other at 1280x720
    assert all(n.count("<br>") <= 2 and max(len(p) for p in n.split("<br>")) <= 13 for n in notes)
