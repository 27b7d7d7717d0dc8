"""Comparison helpers: survival maps, Jaccard, pixel fan-out, effective sparsity, layer
collapse and per-layer profiles."""

from __future__ import annotations


import pytest
import torch

from sparsity_viz import prune
from sparsity_viz.comparison import (
    BOTH, NEITHER, ONLY_A, ONLY_B, collapse_report, collapse_warnings, compare_masks,
    effective_masks, effective_sparsity, nominal_sparsity, pixel_fanout, sparsity_profile,
    strategy_profiles, survival_map, survival_table,
)

T, F = True, False


def test_survival_map_and_jaccard_by_hand():
    a = {"w": torch.tensor([[T, T, F, F]]), "v": torch.tensor([[T, F]])}
    b = {"w": torch.tensor([[T, F, T, F]]), "v": torch.tensor([[T, F]])}
    cats = survival_map(a, b)
    assert cats["w"].tolist() == [[BOTH, ONLY_A, ONLY_B, NEITHER]]
    table = survival_table(a, b).set_index("layer")
    assert table.loc["w", "jaccard"] == pytest.approx(1 / 3)
    assert table.loc["v", "jaccard"] == 1.0
    assert table.loc["all"].tolist()[:5] == [6, 2, 1, 1, 2]
    assert table.loc["all", "jaccard"] == pytest.approx(2 / 4)


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


def test_layer_collapse_is_reported():
    masks = {"fc1.weight": torch.ones(4, 3, dtype=torch.bool), "fc2.weight": torch.zeros(2, 4, dtype=torch.bool)}
    report = collapse_report(masks).set_index("layer")
    assert report.loc["fc2.weight", "collapsed"] and report.loc["fc1.weight", "disconnected"]
    assert effective_sparsity(masks) == 1.0
    warnings = collapse_warnings(masks)
    assert len(warnings) == 1 and "fc2.weight" in warnings[0]
    assert collapse_warnings({"fc1.weight": torch.ones(2, 2, dtype=torch.bool)}) == []


def test_effective_masks_on_a_conv_net(tiny_conv):
    masks = prune(tiny_conv, "magnitude", 0.5).masks
    masks["conv2.weight"][2] = False  # filter 2 of conv2 is gone: its 16 fc1 inputs are dead
    eff = effective_masks(masks)
    assert not eff["fc1.weight"][:, 32:48].any()
    assert eff["fc1.weight"][:, :32].equal(masks["fc1.weight"][:, :32] & eff["fc1.weight"][:, :32])
    assert effective_sparsity(masks) >= nominal_sparsity(masks)


def test_pixel_fanout(lenet300):
    masks = prune(lenet300, "magnitude", 0.9).masks
    fan = pixel_fanout(masks)
    assert fan.shape == (28, 28)
    assert int(fan.sum()) == int(masks["fc1.weight"].sum())
    with pytest.raises(ValueError):
        pixel_fanout({"fc1.weight": torch.ones(3, 5, dtype=torch.bool)})


def test_compare_masks_two_seeds_of_random(lenet300):
    out = compare_masks(lenet300, ("random", 0), ("random", 1), 0.5)
    table = out["table"].set_index("layer")
    assert table.loc["all", "jaccard"] == pytest.approx(1 / 3, abs=0.01)  # independent halves
    assert set(out) >= {"masks_a", "masks_b", "categories", "fanout"}
    same = compare_masks(lenet300, ("magnitude", 0), ("magnitude", 1), 0.5)["table"]
    assert (same.jaccard == 1.0).all()


def test_profiles_show_which_layers_are_hit(lenet300):
    frame = strategy_profiles(lenet300, ["magnitude", "erdos_renyi"], 0.9)
    mag = frame[frame.strategy == "magnitude"].set_index("layer")
    er = frame[frame.strategy == "erdos_renyi"].set_index("layer")
    assert (mag.sparsity.round(6) == 0.9).all()
    assert er.loc["fc1.weight", "sparsity"] > er.loc["fc3.weight", "sparsity"]
    direct = sparsity_profile({"x": {"fc1.weight": torch.tensor([[T, F]])}})
    assert direct.sparsity.tolist() == [0.5]
