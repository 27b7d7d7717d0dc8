"""Connection graph, dead neurons, layer collapse and fan-out on hand-built models."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sparsity_viz.graph import build_graph, dead_neurons, input_fanout, layer_collapse, unit_connections
from sparsity_viz.models import MLP, build_model

B = torch.bool

# 3 -> 4 -> 3 -> 2 with known masks (True = survives)
M1 = torch.tensor([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=B)  # fc1 unit 1: no input; input 2: no output
M2 = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]], dtype=B)  # fc1 unit 3: no output; fc2 unit 2: no input
M3 = torch.tensor([[1, 0, 1], [0, 1, 0]], dtype=B)


@pytest.fixture
def tiny():
    model = MLP(3, (4, 3), 2)
    with torch.no_grad():
        for i, layer in enumerate((model.fc1, model.fc2, model.fc3), start=1):
            n = layer.weight.numel()
            # distinct magnitudes, alternating signs: w = ±(k+1)/10 * layer index
            vals = torch.arange(1, n + 1, dtype=torch.float32) / 10 * i
            signs = torch.where(torch.arange(n) % 2 == 0, 1.0, -1.0)
            layer.weight.copy_((vals * signs).reshape(layer.weight.shape))
    masks = {"fc1.weight": M1.clone(), "fc2.weight": M2.clone(), "fc3.weight": M3.clone()}
    return model, masks


def test_dead_neurons_exact(tiny):
    model, masks = tiny
    dead = dead_neurons(model, masks)
    assert dead["input"].tolist() == [False, False, True]
    assert dead["fc1"].tolist() == [False, True, False, True]
    assert dead["fc2"].tolist() == [False, False, True]
    assert dead["fc3"].tolist() == [False, False]


def test_masks_default_to_the_zeros_of_the_weights(tiny):
    model, masks = tiny
    with torch.no_grad():
        for name, m in masks.items():
            dict(model.named_parameters())[name].mul_(m)
    assert {k: v.tolist() for k, v in dead_neurons(model).items()} == {
        k: v.tolist() for k, v in dead_neurons(model, masks).items()
    }


def test_input_fanout_exact(tiny):
    model, masks = tiny
    assert input_fanout(model, masks).tolist() == [2, 2, 0]
    assert input_fanout(model, masks).dtype == torch.int64


def test_layer_collapse(tiny):
    model, masks = tiny
    report = layer_collapse(model, masks)
    assert report.pruned_layers == () and report.path_exists and not report.collapsed
    assert report.alive_units == {"input": 2, "fc1": 2, "fc2": 2, "fc3": 2}
    assert report.total_units == {"input": 3, "fc1": 4, "fc2": 3, "fc3": 2}

    gone = dict(masks, **{"fc2.weight": torch.zeros(3, 4, dtype=B)})
    report = layer_collapse(model, gone)
    assert report.pruned_layers == ("fc2",) and not report.path_exists and report.collapsed

    # no layer empty, yet no path: fc2 only reads fc1 unit 1, which has no input
    cut = dict(masks, **{"fc2.weight": torch.tensor([[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=B)})
    report = layer_collapse(model, cut)
    assert report.pruned_layers == () and not report.path_exists and report.collapsed


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


class TinyConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)  # (1,4,4) -> (2,2,2)
        self.fc1 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc1(torch.relu(self.conv1(x)).flatten(1))


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


def test_conv_fanout_counts_kernel_uses():
    model = TinyConv()
    mask = torch.ones(2, 1, 3, 3, dtype=B)
    mask[1, 0, 0, 0] = False
    fan = input_fanout(model, {"conv1.weight": mask}, input_shape=(1, 4, 4))
    brute = torch.zeros(4, 4, dtype=torch.int64)
    for o in range(2):
        for oy in range(2):
            for ox in range(2):
                for ky in range(3):
                    for kx in range(3):
                        if mask[o, 0, ky, kx]:
                            brute[oy + ky, ox + kx] += 1
    assert fan.tolist() == brute.tolist()
    with pytest.raises(ValueError, match="input_shape"):
        input_fanout(model, {"conv1.weight": mask})


def test_real_models_shapes_and_speed():
    lenet300 = build_model("lenet300", seed=0)
    assert input_fanout(lenet300, None).shape == (28, 28)
    assert input_fanout(lenet300, None, input_shape=(1, 28, 28)).shape == (28, 28)
    assert input_fanout(build_model("moons_mlp", seed=0), None).shape == (2,)
    g = build_graph(lenet300, None, input_shape=(1, 28, 28))
    assert g.column_sizes == (49, 300, 100, 10)
    assert all(s.edges_shown <= 250 for s in g.layers)
    assert sum(s.edges_shown + s.edges_hidden for s in g.layers) == sum(s.connections for s in g.layers)
    g5 = build_graph(build_model("lenet5", seed=0), None)
    assert g5.column_sizes == (1, 20, 50, 500, 10)
    assert g5.layers[2].connections == 50 * 500  # fc1 connects conv2's 50 channels to 500 units
