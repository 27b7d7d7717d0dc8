"""The conditional forward equals the dense-gated reference; pruning and copying MoE models work."""

import copy

import pytest
import torch

from sparsity_viz.masks import apply_masks, count_total, count_zeros
from sparsity_viz.models import prunable_parameters
from sparsity_viz.moe import (MoEMLP, conditional_forward, dense_gated_forward, expert_masks, expert_parameter_names,
                              get_moe_spec, routing)
from sparsity_viz.pruning import prune


def _moe(top_k, seed=0, **kw):
    torch.manual_seed(seed)
    return MoEMLP(12, (16, 8), 3, num_experts=5, top_k=top_k, **kw).eval()


@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("batch", [1, 64])
def test_conditional_forward_equals_dense_gated_reference(top_k, batch):
    model = _moe(top_k)
    x = torch.randn(batch, 12, generator=torch.Generator().manual_seed(batch))
    torch.testing.assert_close(model(x), dense_gated_forward(model, x))


@pytest.mark.parametrize("top_k", [1, 2])
def test_expert_with_no_input_is_not_run_and_result_still_matches(top_k):
    model = _moe(top_k)
    with torch.no_grad():  # expert 4 can never win: its router logit is hugely negative
        model.router.bias[4] = -1e4
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(1))
    r = routing(model, x)
    assert r.load[4] == 0
    calls = []
    model.experts[4].register_forward_hook(lambda *a: calls.append(1))
    out = model(x)
    assert calls == []
    torch.testing.assert_close(out, dense_gated_forward(model, x, r))


def test_gradients_match_the_reference():
    model = _moe(2).train()
    x = torch.randn(32, 12, generator=torch.Generator().manual_seed(2))
    grads = []
    for fn in (lambda: model(x), lambda: dense_gated_forward(model, x)):
        model.zero_grad()
        fn().square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    for name in grads[1]:
        torch.testing.assert_close(grads[0].get(name, torch.zeros_like(grads[1][name])), grads[1][name])


def test_the_aux_loss_keeps_its_graph_to_the_router():
    model = _moe(2).train()
    model(torch.randn(32, 12, generator=torch.Generator().manual_seed(3)))
    model.aux_loss.backward()
    assert model.router.weight.grad.abs().sum() > 0


def test_deepcopy_after_a_training_forward():
    model = _moe(1).train()
    model(torch.randn(4, 12)).sum().backward()
    clone = copy.deepcopy(model)
    assert clone.aux_loss is None and model.aux_loss is not None


def test_images_are_flattened():
    model = get_moe_spec("moe_mnist").build(0).eval()
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(model(x), model(x.flatten(1)))


def test_experts_are_prunable_router_is_not():
    model = _moe(1)
    names = list(prunable_parameters(model))
    assert names == [f"experts.{e}.fc{i}.weight" for e in range(5) for i in (1, 2, 3)]
    assert not any(n.startswith("router") for n in names)


@pytest.mark.parametrize("strategy,scope", [("magnitude", None), ("global_magnitude", None), ("random", None)])
def test_pruning_an_moe_hits_the_exact_sparsity(strategy, scope):
    model = _moe(2)
    before = copy.deepcopy(model.state_dict())
    pruned = prune(model, strategy, 0.5, scope=scope)
    if strategy == "magnitude":  # per layer: half of every expert layer, to the element
        for name, m in pruned.masks.items():
            assert int((~m).sum()) == round(0.5 * m.numel()), name
    assert count_zeros(pruned.masks) == round(0.5 * count_total(pruned.masks))
    for name, p in prunable_parameters(pruned.model).items():
        assert torch.equal(p == 0, ~pruned.masks[name])
    torch.testing.assert_close(pruned.model.router.weight, model.router.weight)  # router untouched
    for k, v in model.state_dict().items():  # input not mutated
        assert torch.equal(v, before[k])
    x = torch.randn(16, 12)
    torch.testing.assert_close(pruned.model(x), dense_gated_forward(pruned.model, x))


def test_pruning_a_whole_expert_keeps_routing_and_outputs_its_last_bias():
    """Documented behaviour: the router is not told, so inputs still go to the pruned expert.

    With every weight of expert e at 0 (biases kept, as weight pruning does), expert e maps any
    input to its last layer's bias: a constant logit vector. Routing is unchanged; only the
    outputs of inputs routed to e change. Retraining the router (e.g. ``train_moe`` with the
    masks held) is what moves inputs away.
    """
    model = _moe(1)
    x = torch.randn(64, 12, generator=torch.Generator().manual_seed(4))
    before = routing(model, x)
    masks = expert_masks(model, [2])
    assert all(not masks[n].any() for n in expert_parameter_names(model, 2))
    assert sum(int((~m).sum()) for m in masks.values()) == sum(
        p.numel() for n, p in prunable_parameters(model).items() if n.startswith("experts.2."))
    apply_masks(model, masks)
    after = routing(model, x)
    assert torch.equal(before.experts, after.experts)
    out = model(x)
    to_e = before.experts[:, 0] == 2
    assert to_e.any()
    expected = before.gates[to_e] * model.experts[2].fc3.bias  # gate x constant bias logits
    torch.testing.assert_close(out[to_e], expected)


def test_bad_arguments():
    with pytest.raises(ValueError, match="top_k"):
        MoEMLP(4, (4,), 2, num_experts=2, top_k=3)
    with pytest.raises(ValueError, match="at least 2"):
        MoEMLP(4, (4,), 2, num_experts=1)
    with pytest.raises(ValueError, match="Unknown MoE"):
        get_moe_spec("nope")
    with pytest.raises(ValueError, match="expert must be"):
        expert_parameter_names(_moe(1), 5)


def test_conditional_forward_function_is_the_forward():
    model = _moe(2)
    x = torch.randn(7, 12)
    torch.testing.assert_close(conditional_forward(model, x, routing(model, x)), model(x))


def test_routing_refuses_non_finite_router_logits():
    """Found by an audit: a NaN input was counted as routed to an arbitrary expert (top-k sorts NaN first),
    so the class x expert table and the load counted inputs no expert could have been chosen for."""
    model = _moe(top_k=2)
    x = torch.randn(6, 12)
    assert routing(model, x).load.sum() == 12
    x[4, 3] = float("nan")
    with pytest.raises(ValueError, match="1 of 6 inputs get NaN or infinite router logits .first: input 4."):
        routing(model, x)
    with torch.no_grad():
        model.router.bias[1] = float("inf")
    with pytest.raises(ValueError, match="6 of 6 inputs"):
        routing(model, torch.randn(6, 12))
