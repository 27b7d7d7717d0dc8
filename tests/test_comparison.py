"""Comparison helpers: survival maps, Jaccard and per-layer profiles (effective sparsity, layer
collapse and fan-out: test_connectivity)."""

from __future__ import annotations

import pytest
import torch

from sparsity_viz.comparison import (
    BOTH, NEITHER, ONLY_A, ONLY_B, compare_masks, sparsity_profile, strategy_profiles, survival_map, survival_table,
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
