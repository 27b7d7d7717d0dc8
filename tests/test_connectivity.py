"""Connectivity: dead units, layer collapse, effective sparsity and input fan-out on hand-built
masks, checked against brute force; and proof that reports, graph and comparison use it."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as Fn
from torch import nn

import sparsity_viz
from sparsity_viz import comparison, connectivity, graph, prune, reports
from sparsity_viz.connectivity import (
    collapse_report, collapse_warnings, collapsed_layers, dead_neurons, effective_masks, effective_sparsity,
    fold_units, input_fanout, layer_collapse, layer_masks, nominal_sparsity, unconnected_units, unit_counts,
    weight_masks,
)
from sparsity_viz.masks import full_masks
from sparsity_viz.models import MLP, LeNet5, build_model

B = torch.bool
T, F = True, False

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


class TinyConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)  # (1,4,4) -> (2,2,2)
        self.fc1 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc1(torch.relu(self.conv1(x)).flatten(1))


# --- dead units (moved from test_graph / test_reports) -----------------------------------


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


def test_dead_neurons_conv_to_linear_groups_columns():
    torch.manual_seed(0)
    model = LeNet5(channels=(2, 3), hidden=5)
    masks = full_masks(model)
    masks["fc1.weight"][:, 16:32] = False  # all 16 columns of conv2's channel 1
    dead = dead_neurons(model, masks)
    assert dead["conv2"].tolist() == [False, True, False]
    assert not dead["conv1"].any()


# --- dead units (new) --------------------------------------------------------------------


def test_dead_channels_on_a_hand_made_conv_mask():
    # conv1: 1 -> 2 channels, fc1 reads 2 channels x 4 positions.
    # channel 0 keeps one tap but fc1 reads nothing of it -> dead (no output);
    # channel 1 has no tap -> dead (no input) although fc1 reads it; fc1 unit 2 reads nothing -> dead;
    # the input channel feeds channel 0, so it is alive.
    model = TinyConv()
    m_conv = torch.zeros(2, 1, 3, 3, dtype=B)
    m_conv[0, 0, 1, 1] = True
    m_fc = torch.zeros(3, 8, dtype=B)
    m_fc[0, 5] = m_fc[1, 7] = True  # positions 1 and 3 of channel 1
    masks = {"conv1.weight": m_conv, "fc1.weight": m_fc}
    dead = dead_neurons(model, masks)
    assert {k: v.tolist() for k, v in dead.items()} == {
        "input": [False], "conv1": [True, True], "fc1": [False, False, True],
    }
    # own-matrix counts: fc1 reads features (8), not channels
    assert unconnected_units(layer_masks(model, masks)) == {"conv1.weight": (0, 1), "fc1.weight": (6, 1)}
    assert [c.tolist() for _, c in unit_counts(masks)] == [[[1], [0]], [[0, 1], [0, 1], [0, 0]]]


def test_layer_masks_and_weights_with_exact_zeros(tiny):
    model, masks = tiny
    with torch.no_grad():
        model.fc3.weight[0, 0] = 0.0  # masked in, but zero: carries nothing
    alive = layer_masks(model, masks)
    assert list(alive) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert alive["fc3.weight"].tolist() == [[F, F, T], [F, T, F]]
    assert layer_masks(model, {"fc1.weight": M1})["fc2.weight"].all()  # no mask: dense
    grouped = nn.Sequential(nn.Conv2d(2, 2, 3, groups=2))
    with pytest.raises(ValueError, match="Grouped"):
        dead_neurons(grouped)


def test_fold_units_refuses_a_chain_that_does_not_fit():
    assert fold_units(torch.ones(2, 6, dtype=B), 3).tolist() == [[2, 2, 2], [2, 2, 2]]
    with pytest.raises(ValueError, match="Cannot connect"):
        fold_units(torch.ones(2, 7, dtype=B), 3)


# --- layer collapse ----------------------------------------------------------------------


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
    assert collapsed_layers(gone) == ["fc2.weight"] and collapsed_layers(cut) == []
    assert effective_sparsity(cut) == 1.0  # no path: every weight is effectively removed


def test_layer_collapse_is_reported():
    masks = {"fc1.weight": torch.ones(4, 3, dtype=torch.bool), "fc2.weight": torch.zeros(2, 4, dtype=torch.bool)}
    report = collapse_report(masks).set_index("layer")
    assert report.loc["fc2.weight", "collapsed"] and report.loc["fc1.weight", "disconnected"]
    assert effective_sparsity(masks) == 1.0
    warnings = collapse_warnings(masks)
    assert len(warnings) == 1 and "fc2.weight" in warnings[0]
    assert collapse_warnings({"fc1.weight": torch.ones(2, 2, dtype=torch.bool)}) == []


# --- effective sparsity ------------------------------------------------------------------


def test_effective_sparsity_removes_weights_on_no_path():
    # 3 inputs -> 2 hidden -> 1 output. Hidden unit 1 has no input weight, so its
    # outgoing weight is useless; input 2 feeds only hidden 1, so that weight is useless too.
    masks = {
        "fc1.weight": torch.tensor([[T, T, F], [F, F, F]]),
        "fc2.weight": torch.tensor([[T, T]]),
    }
    eff = effective_masks(masks)
    assert eff["fc1.weight"].tolist() == [[T, T, F], [F, F, F]]
    assert eff["fc2.weight"].tolist() == [[T, F]]
    assert nominal_sparsity(masks) == pytest.approx(4 / 8)
    assert effective_sparsity(masks) == pytest.approx(5 / 8)
    # backwards: hidden unit 0 reaches no output -> its input weights are useless
    masks = {"fc1.weight": torch.tensor([[T, T, T], [T, F, F]]), "fc2.weight": torch.tensor([[F, T]])}
    assert effective_masks(masks)["fc1.weight"].tolist() == [[F, F, F], [T, F, F]]
    assert any("Effective sparsity" in w for w in collapse_warnings(masks))


def test_effective_masks_on_a_conv_net(tiny_conv):
    masks = prune(tiny_conv, "magnitude", 0.5).masks
    masks["conv2.weight"][2] = False  # filter 2 of conv2 is gone: its 16 fc1 inputs are dead
    eff = effective_masks(masks)
    assert not eff["fc1.weight"][:, 32:48].any()
    assert eff["fc1.weight"][:, :32].equal(masks["fc1.weight"][:, :32] & eff["fc1.weight"][:, :32])
    assert effective_sparsity(masks) >= nominal_sparsity(masks)


def test_effective_masks_keep_exactly_the_weights_on_a_path(tiny, tiny_conv):
    """Brute force: a weight is effective iff it survives, its source is on a path from the input
    and its target on a path to the output (reachability by repeated boolean products)."""
    model, masks = tiny
    conv_masks = prune(tiny_conv, "magnitude", 0.95).masks
    conv_masks["conv2.weight"][1] = False
    conv_masks["fc2.weight"][:, 5] = False
    assert effective_sparsity(conv_masks) > nominal_sparsity(conv_masks) + 0.02
    for m in (masks, conv_masks):
        items = weight_masks(m)
        adj = [c > 0 for _, c in unit_counts(m)]
        eff = effective_masks(m)
        for i, (name, mask) in enumerate(items):
            src = torch.ones(adj[0].shape[1], dtype=B)
            for a in adj[:i]:
                src = (a.to(torch.int64) @ src.to(torch.int64)) > 0
            dst = torch.ones(adj[-1].shape[0], dtype=B)
            for a in reversed(adj[i + 1:]):
                dst = (a.to(torch.int64).T @ dst.to(torch.int64)) > 0
            src = src.repeat_interleave(mask.shape[1] // src.numel())
            expect = mask & (dst[:, None] & src[None, :]).view(*mask.shape[:2], *([1] * (mask.dim() - 2)))
            assert eff[name].equal(expect), name


# --- input fan-out -----------------------------------------------------------------------


def test_input_fanout_exact(tiny):
    model, masks = tiny
    assert input_fanout(model, masks).tolist() == [2, 2, 0]
    assert input_fanout(model, masks).dtype == torch.int64


def test_input_fanout_of_pruned_masks(lenet300):  # was comparison.pixel_fanout
    masks = prune(lenet300, "magnitude", 0.9).masks
    fan = input_fanout(lenet300, masks)
    assert fan.shape == (28, 28)
    assert int(fan.sum()) == int(masks["fc1.weight"].sum())
    with pytest.raises(ValueError):
        input_fanout(lenet300, masks, input_shape=(3, 5))


def test_a_linear_first_layer_on_colour_images_sums_its_channels():
    """Found by an audit: an MLP on (3, 8, 8) uploads got a (3, 8, 8) fan-out, which the fan-out map refused."""
    from sparsity_viz.models import MLP

    torch.manual_seed(0)
    model = MLP(3 * 8 * 8, (5,), 2)
    masks = prune(model, "magnitude", 0.5).masks
    fan = connectivity.input_fanout(model, masks, (3, 8, 8))
    per_feature = masks["fc1.weight"].sum(0).reshape(3, 8, 8)
    assert torch.equal(fan, per_feature.sum(0))  # (H, W), as a conv first layer gives
    from sparsity_viz import figures

    figures.fanout_map(fan)
    assert connectivity.input_fanout(model, masks, (1, 8, 24)).shape == (8, 24)


def test_mlp_fanout_by_hand():
    # 4 inputs (a 2x2 image) -> 3 hidden -> 2 classes
    model = MLP(4, (3,), 2)
    m1 = torch.tensor([[1, 0, 0, 1], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=B)
    m2 = torch.tensor([[1, 1, 0], [0, 1, 0]], dtype=B)  # hidden 2 reaches no class
    masks = {"fc1.weight": m1, "fc2.weight": m2}
    # column sums: pixel 0 -> 2, pixel 1 -> 1, pixel 2 -> 0, pixel 3 -> 2
    assert input_fanout(model, masks).tolist() == [2, 1, 0, 2]
    assert input_fanout(model, masks, input_shape=(1, 2, 2)).tolist() == [[2, 1], [0, 2]]
    # effective: the weight pixel 3 -> hidden 2 is on no path
    assert input_fanout(model, masks, effective=True).tolist() == [2, 1, 0, 1]


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


@pytest.mark.parametrize("geometry", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),  # odd size: output_padding matters
    dict(kernel_size=(2, 3), stride=(2, 1), padding=(0, 2), dilation=(1, 2)),
    dict(kernel_size=5, padding=2),
])
def test_conv_fanout_equals_autograd(geometry):
    """Reference: d(sum of a conv with |mask| as its weights)/d(pixel) counts every surviving
    (filter, output position, tap) that reads the pixel; summed over input channels."""
    g = torch.Generator().manual_seed(1)
    conv = nn.Conv2d(3, 4, **geometry)
    model = nn.Sequential(conv)
    mask = torch.rand(conv.weight.shape, generator=g) > 0.4
    shape = (3, 9, 7)
    x = torch.zeros(1, *shape, dtype=torch.float64, requires_grad=True)
    Fn.conv2d(x, mask.to(torch.float64), stride=conv.stride, padding=conv.padding, dilation=conv.dilation).sum().backward()
    reference = x.grad[0].sum(0).round().to(torch.int64)
    fan = input_fanout(model, {"0.weight": mask}, input_shape=shape)
    assert fan.shape == (9, 7) and fan.dtype == torch.int64
    assert fan.equal(reference)


def test_conv_fanout_direct_count_with_stride_and_padding():
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1)
    mask = torch.rand(conv.weight.shape, generator=torch.Generator().manual_seed(2)) > 0.5
    h, w = 5, 6
    ho, wo = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
    brute = torch.zeros(h, w, dtype=torch.int64)
    for o, c, oy, ox, ky, kx in itertools.product(range(3), range(2), range(ho), range(wo), range(3), range(3)):
        y, x = oy * 2 - 1 + ky, ox * 2 - 1 + kx
        if mask[o, c, ky, kx] and 0 <= y < h and 0 <= x < w:
            brute[y, x] += 1
    assert input_fanout(nn.Sequential(conv), {"0.weight": mask}, input_shape=(2, h, w)).equal(brute)


def test_fanout_shapes_of_real_models():  # from test_graph.test_real_models_shapes_and_speed
    lenet300 = build_model("lenet300", seed=0)
    assert input_fanout(lenet300, None).shape == (28, 28)
    assert input_fanout(lenet300, None, input_shape=(1, 28, 28)).shape == (28, 28)
    assert input_fanout(build_model("moons_mlp", seed=0), None).shape == (2,)
    lenet5 = build_model("lenet5", seed=0)
    dense = input_fanout(lenet5, None, input_shape=(1, 28, 28))
    assert dense.shape == (28, 28) and int(dense[14, 14]) == 20 * 25 and int(dense[0, 0]) == 20


# --- one copy: reports, graph, comparison and the package use connectivity ---------------


def test_modules_share_one_implementation():
    assert graph.dead_neurons is connectivity.dead_neurons
    assert graph.layer_collapse is connectivity.layer_collapse
    assert comparison.input_fanout is connectivity.input_fanout
    assert comparison.effective_masks is connectivity.effective_masks
    assert reports.dead_neurons is connectivity.dead_neurons
    for name in ("input_fanout", "dead_neurons", "layer_collapse"):
        assert getattr(sparsity_viz, name) is getattr(connectivity, name)


CONNECTIVITY_NAMES = (
    "weight_masks", "layer_masks", "fold_units", "unit_counts", "unconnected_units", "dead_units", "dead_neurons",
    "collapsed_layers", "layer_collapse", "effective_masks", "effective_sparsity", "nominal_sparsity",
    "collapse_report", "collapse_warnings", "input_fanout", "pixel_fanout", "image_side",
    "_alive", "_adjacency", "_resize_units", "_masks_or_zeros", "_image_side",
)


def test_no_second_copy_in_the_library():
    root = Path(connectivity.__file__).parent
    pattern = re.compile(rf"^\s*def ({'|'.join(CONNECTIVITY_NAMES)})\(", re.M)
    copies = [f"{p.relative_to(root)}: {m}" for p in sorted(root.rglob("*.py")) if p.name != "connectivity.py"
              for m in pattern.findall(p.read_text())]
    assert copies == []


def test_reports_graph_and_comparison_give_connectivity_numbers(tiny_conv):
    model, masks = prune(tiny_conv, "magnitude", 0.95)
    masks["conv2.weight"][1] = False  # pruned in the masks, not in the weights: both must count
    masks["fc2.weight"][:, 5] = False
    dead = dead_neurons(model, masks)
    unconnected = unconnected_units(layer_masks(model, masks))
    assert all(flags.any() for name, flags in dead.items() if name != "input")  # a case with something to count

    report = reports.sparsity_report(model, masks).set_index("layer")
    for name, flags in dead.items():
        if name != "input":
            assert report.loc[name, "dead_neurons"] == int(flags.sum())
            assert (report.loc[name, "dead_inputs"], report.loc[name, "dead_outputs"]) == unconnected[f"{name}.weight"]

    g = graph.build_graph(model, masks)
    assert [s.dead_units for s in g.layers] == [int(dead[s.name].sum()) for s in g.layers]
    assert [n.dead for n in g.nodes if n.column == 1] == dead["conv1"].tolist()
    assert g.path_exists == layer_collapse(model, masks).path_exists
    assert [c.count.tolist() for c in graph.unit_connections(model, masks)] == \
        [c.tolist() for _, c in unit_counts(layer_masks(model, masks))]

    eff = effective_masks(masks)
    profile = comparison.sparsity_profile({"x": masks}).set_index("layer")
    for name, e in eff.items():
        assert profile.loc[name, "effective_sparsity"] == 1.0 - int(e.sum()) / e.numel()
    table = collapse_report(masks).set_index("layer")
    for name, (dead_in, dead_out) in unconnected_units(masks).items():
        assert (table.loc[name, "dead_inputs"], table.loc[name, "dead_outputs"]) == (dead_in, dead_out)


def test_compare_masks_fanout_is_connectivity_fanout(lenet300, tiny_conv):
    out = comparison.compare_masks(lenet300, ("random", 0), ("magnitude", 0), 0.8)
    assert out["fanout"]["a"].equal(input_fanout(lenet300, out["masks_a"]))
    assert out["fanout"]["difference"].equal(input_fanout(lenet300, out["masks_b"]) - out["fanout"]["a"])
    conv = comparison.compare_masks(tiny_conv, ("random", 0), ("random", 1), 0.5, input_shape=(1, 28, 28))
    assert conv["fanout"]["b"].equal(input_fanout(tiny_conv, conv["masks_b"], (1, 28, 28)))
    assert "fanout" not in comparison.compare_masks(tiny_conv, ("random", 0), ("random", 1), 0.5)


def test_a_trace_in_one_thread_leaves_other_threads_forward_passes_alone():
    """torch.fx patches nn.Module for the whole process while it traces: another thread's forward pass ran into the
    tracer ("module is not installed as a submodule": 116 of 417 evaluations failed while new layouts were traced;
    an audit). The tracer now lets other threads' calls through."""
    import threading

    from sparsity_viz.data import load_dataset
    from sparsity_viz.layers import chain_layers
    from sparsity_viz.models import MLP, build_model
    from sparsity_viz.training import evaluate_dataset

    model, data = build_model("digits_mlp", seed=0), load_dataset("digits")
    expected = evaluate_dataset(model, data, device="cpu").accuracy
    errors, done = [], threading.Event()

    def evaluate():  # a student's evaluation, over and over (what a Prune slider step does)
        while not done.is_set():
            try:
                assert evaluate_dataset(model, data, device="cpu").accuracy == expected
            except Exception as exc:  # noqa: BLE001 - counted, the assertion below names them
                errors.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=evaluate)
    worker.start()
    try:
        for hidden in itertools.product(range(1, 9), repeat=3):  # another student's 512 new layouts: 512 traces
            assert len(chain_layers(MLP(2, hidden, 2))) == 4
    finally:
        done.set()
        worker.join()
    assert errors == [], errors[:3]
