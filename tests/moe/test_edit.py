"""with_top_k, prune_moe, finetune_moe and expert_map: copies only, exact masks, hand-checkable routing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsity_viz.data import load_dataset
from sparsity_viz.masks import sparsity
from sparsity_viz.moe import (MoEMLP, expert_map, expert_masks, expert_report, finetune_moe, moe_strategy_names,
                              prune_moe, routing, with_top_k)
from sparsity_viz.training import TrainConfig


@pytest.fixture()
def toy():
    torch.manual_seed(0)
    return MoEMLP(2, (8,), 2, num_experts=4, top_k=1)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_with_top_k_is_a_copy_with_the_same_weights(toy):
    before = _state(toy)
    two = with_top_k(toy, 2)
    assert two is not toy and two.top_k == 2 and toy.top_k == 1
    x = torch.randn(16, 2)
    assert routing(two, x).experts.shape == (16, 2)
    assert torch.equal(routing(two, x).experts[:, 0], routing(toy, x).experts[:, 0])  # same router, same first pick
    assert all(torch.equal(before[k], v) for k, v in toy.state_dict().items())
    with pytest.raises(ValueError, match="top_k must be between 1 and 4"):
        with_top_k(toy, 5)


def test_with_top_k_of_a_frozen_model_is_trainable(toy):
    for p in toy.parameters():
        p.requires_grad_(False)
    assert all(p.requires_grad for p in with_top_k(toy, 1).parameters())
    assert not any(p.requires_grad for p in toy.parameters())


def test_prune_whole_experts_zeroes_exactly_their_weights(toy):
    before = _state(toy)
    pruned, masks = prune_moe(toy, experts=[2, 0])
    for name, mask in masks.items():
        whole = name.startswith(("experts.0.", "experts.2."))
        assert bool(mask.any()) != whole, name
    assert all(torch.equal(before[k], v) for k, v in toy.state_dict().items())  # the input is untouched
    assert torch.equal(pruned.router.weight, toy.router.weight)
    assert float(pruned.experts[2].fc1.weight.detach().abs().sum()) == 0
    assert set(masks) == set(expert_masks(toy, []))
    with pytest.raises(ValueError, match="expert 4 does not exist; this MoE has experts 0..3"):
        prune_moe(toy, experts=[4])


def test_prune_weights_hits_the_sparsity_over_expert_layers_and_leaves_the_router(toy):
    pruned, masks = prune_moe(toy, sparsity=0.5, strategy="global_magnitude")
    assert sparsity(masks) == pytest.approx(0.5, abs=1 / 96)
    assert not any(n.startswith("router") for n in masks)
    kept = torch.cat([toy.state_dict()[n][m].abs() for n, m in masks.items()])
    gone = torch.cat([toy.state_dict()[n][~m].abs() for n, m in masks.items()])
    assert kept.min() >= gone.max()  # global magnitude: every survivor is at least as large as every pruned weight
    both, both_masks = prune_moe(toy, experts=[1], sparsity=0.5)
    assert not any(both_masks[n].any() for n in both_masks if n.startswith("experts.1."))
    assert all(torch.equal(both_masks[n], masks[n]) for n in masks if not n.startswith("experts.1."))


@pytest.mark.parametrize("kwargs,needle", [
    ({"sparsity": 1.0}, "sparsity must be in [0, 1)"),
    ({"sparsity": 0.5, "strategy": "synflow"}, "strategy must be one of"),
    ({"sparsity": 0.5, "strategy": "gradual"}, "strategy must be one of"),
    ({"sparsity": 0.5, "strategy": "structured"}, "strategy must be one of"),  # it cut whole classes (an audit)
    ({"sparsity": 0.5, "strategy": "snip"}, "snip scores weights on data"),
])
def test_prune_moe_bad_input(toy, kwargs, needle):
    with pytest.raises(ValueError) as info:
        prune_moe(toy, **kwargs)
    assert needle in str(info.value)
    assert {"synflow", "structured"}.isdisjoint(moe_strategy_names()) and "global_magnitude" in moe_strategy_names()


def test_finetune_holds_the_masks_and_leaves_the_input():
    data = load_dataset("moons")
    torch.manual_seed(0)
    model = MoEMLP(2, (8,), 2, num_experts=4, top_k=1)
    pruned, masks = prune_moe(model, experts=[0], sparsity=0.3)
    before = _state(pruned)
    tuned = finetune_moe(pruned, data, masks, TrainConfig(epochs=2, lr=1e-2, batch_size=32, seed=0, device="cpu"),
                         balance_weight=0.1)
    assert not tuned.training and tuned is not pruned
    state = tuned.state_dict()
    assert all(float(state[n][~m].abs().sum()) == 0 for n, m in masks.items())  # pruned weights stayed zero
    assert not torch.equal(state["router.weight"], before["router.weight"])  # the router did train
    assert all(torch.equal(before[k], v) for k, v in pruned.state_dict().items())
    assert expert_report(tuned, data)["accuracy"] > expert_report(model, data)["accuracy"]


def test_expert_map_is_the_router_argmax_on_the_grid(toy):
    emap = expert_map(toy, (-2.0, 2.0), (-1.0, 1.0), resolution=7)
    assert emap.experts.shape == (7, 7) and emap.xs[0] == -2 and emap.ys[-1] == 1
    j, i = 5, 2
    point = torch.tensor([[float(emap.xs[i]), float(emap.ys[j])]])
    assert emap.experts[j, i] == int(toy.router(point).argmax())
    hand = (torch.tensor(np.stack(np.meshgrid(emap.xs, emap.ys), -1).reshape(-1, 2)) @ toy.router.weight.detach().T
            + toy.router.bias.detach()).argmax(1).reshape(7, 7)
    assert np.array_equal(emap.experts, hand.numpy())
    assert emap.shares().sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs 2-D inputs"):
        expert_map(MoEMLP(3, (4,), 2), (0, 1), (0, 1))


def test_odd_experts_top_k_and_labels_are_refused(toy):
    """An audit: with_top_k(True) ran as k=1, expert 1.7 as expert 1, and a report on labels the model cannot
    output said accuracy 0.0."""
    from dataclasses import replace

    from sparsity_viz.moe import check_experts, with_top_k

    model, data = toy, load_dataset("moons")
    with pytest.raises(ValueError, match="top_k must be between 1 and"):
        with_top_k(model, True)
    with pytest.raises(ValueError, match="expert indices are whole numbers, got 1.7"):
        check_experts(model, [1.7])
    assert check_experts(model, [2.0, 1, np.int64(0)]) == (0, 1, 2)
    three = replace(data, class_names=(*data.class_names, "extra"), y_test=torch.full_like(data.y_test, 2))
    with pytest.raises(ValueError, match="moons has 3 classes; this MoE gives 2 class scores"):
        expert_report(model, three)
    with pytest.raises(ValueError, match="digits has samples of 64 values; this MoE takes 2"):
        expert_report(model, load_dataset("digits"))
