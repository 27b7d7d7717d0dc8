"""Pruning strategies: the contract every registered strategy must keep, and agreement with
``torch.nn.utils.prune`` as the reference.

The contract tests are parametrised over ``STRATEGIES`` (and each strategy's scopes), so a
new strategy gets them by registering itself.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch.nn.utils import prune as torch_prune

from sparsity_viz import STRATEGIES, get_strategy, prune
from sparsity_viz.masks import full_masks
from sparsity_viz.models import MLP, prunable_layers, prunable_parameters
from sparsity_viz.pruning import (
    KINDS,
    Strategy,
    is_scheduled,
    one_shot_strategy_names,
    scheduled_strategy_names,
    select_lowest,
    strategy_names,
    zeros_to_prune,
)

SPARSITIES = [0.0, 0.1, 0.5, 0.9, 0.99, 1.0]
STRATEGY_SCOPES = [(name, scope) for name, cls in STRATEGIES.items() for scope in cls.scopes]
IDS = [f"{n}-{s}" for n, s in STRATEGY_SCOPES]


def _strategy(name: str, scope: str, seed: int = 0, include_bias: bool = False) -> Strategy:
    return get_strategy(name, scope=scope, seed=seed, include_bias=include_bias)


def _prune(model, strategy: Strategy, sparsity: float, batch_for, current=None):
    batch = batch_for(model) if strategy.needs_data else None
    return prune(model, strategy, sparsity, current=current, batch=batch)


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _zeros(mask: torch.Tensor) -> int:
    return int((~mask).sum())


def _assert_zero_counts(strategy, model, sparsity, masks):
    expected = strategy.expected_zeros(model, sparsity)
    if isinstance(expected, dict):
        assert set(masks) == set(expected)
        got = {n: _zeros(m) for n, m in masks.items()}
        assert got == expected
    else:
        assert sum(_zeros(m) for m in masks.values()) == expected


def _set_distinct_weights(model, seed: int = 0) -> None:
    """Random signs and magnitudes that are distinct over the whole model (no ties anywhere)."""
    params = prunable_parameters(model)
    n = sum(p.numel() for p in params.values())
    g = torch.Generator().manual_seed(seed)
    mags = (torch.randperm(n, generator=g).double() + 1) / n
    signs = torch.randint(0, 2, (n,), generator=g).double() * 2 - 1
    values = (mags * signs).float()
    assert torch.unique(values.abs()).numel() == n
    offset = 0
    with torch.no_grad():
        for p in params.values():
            p.copy_(values[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def _hand_model(w1, w2) -> MLP:
    model = MLP(3, (2,), 2)
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor(w1))
        model.fc2.weight.copy_(torch.tensor(w2))
        model.fc1.bias.fill_(0.25)
        model.fc2.bias.fill_(-0.5)
    return model


# --- the contract, for every registered strategy -------------------------------------------


def test_registry_lists_strategies():
    assert strategy_names() == list(STRATEGIES)
    assert {"magnitude", "global_magnitude", "random", "structured"} <= set(STRATEGIES)
    for name, cls in STRATEGIES.items():
        assert cls.name == name and cls.label
        assert cls.granularity in ("weight", "row")


def test_every_strategy_declares_its_kind():
    for name, cls in STRATEGIES.items():
        assert cls.kind in KINDS, name
        assert get_strategy(name).scheduled == (cls.kind == "scheduled") == is_scheduled(name)
    scheduled, one_shot = scheduled_strategy_names(), one_shot_strategy_names()
    assert sorted(scheduled + one_shot) == sorted(STRATEGIES) and not set(scheduled) & set(one_shot)
    assert scheduled == ["gradual", "iterative", "set", "rigl"]
    for name in scheduled:  # a scheduled strategy brings its own run (the base one prunes once)
        assert STRATEGIES[name].run is not Strategy.run, name
    with pytest.raises(ValueError, match="nope"):
        is_scheduled("nope")


@pytest.mark.parametrize(("name", "scope"), STRATEGY_SCOPES, ids=IDS)
def test_a_ranking_cuts_exactly_what_compute_masks_gives(name, scope, small_model, batch_for):
    strategy = _strategy(name, scope)
    batch = batch_for(small_model) if strategy.needs_data else None
    ranking = strategy.ranking(small_model, batch)
    if ranking is None:  # masks that are not one cut of fixed scores (SynFlow's rounds, structured, ER)
        return
    for sparsity in (0.0, 0.3, 0.9, 1.0):
        expected = strategy.compute_masks(copy.deepcopy(small_model), sparsity, batch=batch)
        got = ranking.masks(sparsity)
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[n], expected[n]) for n in expected), (name, sparsity)


@pytest.mark.parametrize("include_bias", [False, True], ids=["weights", "with-bias"])
@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize(("name", "scope"), STRATEGY_SCOPES, ids=IDS)
def test_achieved_zeros_equal_expected_exactly(name, scope, sparsity, include_bias, small_model, batch_for):
    strategy = _strategy(name, scope, include_bias=include_bias)
    before = _state(small_model)
    pruned, masks = _prune(small_model, strategy, sparsity, batch_for)
    assert all(m.dtype == torch.bool for m in masks.values())
    _assert_zero_counts(strategy, small_model, sparsity, masks)
    # the pruned copy holds zeros exactly where the masks are False, the original values elsewhere
    params = dict(pruned.named_parameters())
    for n, m in masks.items():
        assert not (before[n] == 0).any()  # precondition: no accidental zeros
        assert torch.equal(params[n] == 0, ~m), n
        assert torch.equal(params[n][m], before[n][m]), n
    # everything not masked is untouched (biases unless include_bias)
    for n, p in params.items():
        if n not in masks:
            assert torch.equal(p.detach(), before[n]), n
    if not include_bias:
        assert not any(n.endswith(".bias") for n in masks)


@pytest.mark.parametrize(("s1", "s2"), [(0.1, 0.5), (0.5, 0.9), (0.5, 0.5), (0.9, 0.99), (0.5, 1.0)])
@pytest.mark.parametrize(("name", "scope"), STRATEGY_SCOPES, ids=IDS)
def test_new_mask_never_revives_a_pruned_weight(name, scope, s1, s2, small_model, batch_for):
    strategy = _strategy(name, scope)
    pruned_model, first = _prune(small_model, strategy, s1, batch_for)
    first_before = {n: m.clone() for n, m in first.items()}
    # start from the *pruned* model, as iterative pruning does
    second = _prune(pruned_model, strategy, s2, batch_for, current=first).masks
    assert set(second) >= set(first)
    if not strategy.regrows:
        for n in first:
            revived = second[n] & ~first[n]
            assert not revived.any(), f"{n}: {int(revived.sum())} weights revived"
    _assert_zero_counts(strategy, small_model, s2, second)
    for n in first:  # the masks passed in are not modified
        assert torch.equal(first[n], first_before[n]), n


@pytest.mark.parametrize(("name", "scope"), STRATEGY_SCOPES, ids=IDS)
def test_masks_of_another_strategy_with_biases_are_held(name, scope, small_model, batch_for):
    """Found by an audit: structured pruning with biases over magnitude masks revived 3 pruned biases and dropped
    the classifier's bias mask."""
    strategy = _strategy(name, scope, include_bias=True)
    first = prune(small_model, "magnitude", 0.3, include_bias=True).masks
    assert any(n.endswith(".bias") and not m.all() for n, m in first.items())
    second = _prune(small_model, strategy, 0.6, batch_for, current=first).masks
    assert set(second) >= set(first)
    if not strategy.regrows:
        for n in first:
            assert not (second[n] & ~first[n]).any(), n


@pytest.mark.parametrize(("name", "scope"), STRATEGY_SCOPES, ids=IDS)
def test_current_more_pruned_than_target_raises(name, scope, small_model, batch_for):
    strategy = _strategy(name, scope)
    current = _prune(small_model, strategy, 0.9, batch_for).masks
    with pytest.raises(ValueError, match="already pruned"):
        _prune(small_model, strategy, 0.5, batch_for, current=current)


@pytest.mark.parametrize(("name", "scope"), STRATEGY_SCOPES, ids=IDS)
def test_same_seed_same_mask(name, scope, small_model, batch_for):
    a = _prune(small_model, _strategy(name, scope, seed=7), 0.5, batch_for).masks
    b = _prune(copy.deepcopy(small_model), _strategy(name, scope, seed=7), 0.5, batch_for).masks
    assert list(a) == list(b)
    for n in a:
        assert torch.equal(a[n], b[n]), n


@pytest.mark.parametrize(("name", "scope"), STRATEGY_SCOPES, ids=IDS)
def test_input_model_is_not_mutated(name, scope, small_model, batch_for):
    small_model.train()
    before = _state(small_model)
    grads = {n: p.requires_grad for n, p in small_model.named_parameters()}
    ids = {n: id(p) for n, p in small_model.named_parameters()}
    strategy = _strategy(name, scope, include_bias=True)
    current = _prune(small_model, strategy, 0.1, batch_for).masks
    current_before = {n: m.clone() for n, m in current.items()}
    result = _prune(small_model, strategy, 0.5, batch_for, current=current)
    after = _state(small_model)
    assert list(before) == list(after)
    for k in before:
        assert torch.equal(before[k], after[k]), k  # bit-exact
    assert {n: p.requires_grad for n, p in small_model.named_parameters()} == grads
    assert {n: id(p) for n, p in small_model.named_parameters()} == ids
    assert small_model.training
    assert not any(torch_prune.is_pruned(m) for _, m in prunable_layers(small_model))
    assert result.model is not small_model
    for n in current:
        assert torch.equal(current[n], current_before[n]), n  # nor the masks passed in
    # the copy does not share storage with the input
    for (n, p), (_, q) in zip(small_model.named_parameters(), result.model.named_parameters()):
        assert p.data_ptr() != q.data_ptr(), n


@pytest.mark.parametrize(("name", "scope"), STRATEGY_SCOPES, ids=IDS)
@pytest.mark.parametrize("bad", [-0.1, 1.0001, 2.0, float("nan"), float("inf"), float("-inf")])
def test_sparsity_outside_unit_interval_raises(name, scope, bad, tiny_mlp, batch_for):
    with pytest.raises(ValueError, match="[Ss]parsity"):
        _prune(tiny_mlp, _strategy(name, scope), bad, batch_for)


@pytest.mark.parametrize("name", [n for n, c in STRATEGIES.items() if c.needs_data])
def test_data_strategy_without_batch_raises(name, tiny_mlp):
    with pytest.raises(ValueError):
        prune(tiny_mlp, name, 0.5)


@pytest.mark.parametrize(
    ("name", "scope"), [(n, s) for n, s in STRATEGY_SCOPES if STRATEGIES[n].granularity == "row"]
)
def test_row_granularity_prunes_whole_rows(name, scope, small_model, batch_for):
    strategy = _strategy(name, scope)
    masks = _prune(small_model, strategy, 0.5, batch_for).masks
    for n, m in masks.items():
        rows = m.flatten(1)
        assert torch.equal(rows.all(dim=1), rows.any(dim=1)), n


def test_unknown_strategy_raises_with_the_list(tiny_mlp):
    with pytest.raises(ValueError) as info:
        prune(tiny_mlp, "lottery", 0.5)
    assert "lottery" in str(info.value)
    for name in STRATEGIES:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="magnitude"):
        get_strategy("nope")


@pytest.mark.parametrize("strategy", [None, 3, ["magnitude"]])
def test_a_strategy_of_the_wrong_type_says_what_is_expected(strategy, tiny_mlp):
    with pytest.raises(TypeError, match=rf"strategy must be a registry name .* or a Strategy, got {type(strategy).__name__}"):
        prune(tiny_mlp, strategy, 0.5)  # was AttributeError: 'NoneType' object has no attribute 'compute_masks'


@pytest.mark.parametrize("seed", [-1, 2**70, float("nan"), 1.5, True, "3"])
def test_a_seed_outside_what_generators_take_is_refused(seed, tiny_mlp):
    with pytest.raises(ValueError, match="A seed is a whole number from 0 to 4294967295"):
        prune(tiny_mlp, "random", 0.5, seed=seed)  # 2**70 was "Overflow when unpacking long long", -1 accepted


def test_a_batch_that_does_not_fit_says_so(tiny_mlp, batch_for):
    x, y = batch_for(tiny_mlp)
    with pytest.raises(ValueError, match=r"batch inputs of shape \(\d+, 9\) do not fit the model \(mat1 and mat2"):
        prune(tiny_mlp, "snip", 0.5, batch=(torch.randn(len(y), 9), y))
    with pytest.raises(ValueError, match=r"batch labels must be 0\.\.2 for this model's 3 class scores, found 0\.\.7"):
        prune(tiny_mlp, "snip", 0.5, batch=(x, torch.where(y > 0, 7, 0)))
    with pytest.raises(ValueError, match=r"N whole-number labels, got inputs .* float32"):
        prune(tiny_mlp, "grasp", 0.5, batch=(x, y.float()))
    with pytest.raises(ValueError, match=r"batch must be \(inputs, labels\), two tensors"):
        prune(tiny_mlp, "snip", 0.5, batch=x)
    assert prune(tiny_mlp, "snip", 0.5, batch=(x, y)).masks  # the right batch still prunes


def test_unsupported_scope_raises(tiny_mlp):
    with pytest.raises(ValueError, match="scope"):
        prune(tiny_mlp, "structured", 0.5, scope="global")
    with pytest.raises(ValueError, match="scope"):
        select_lowest({"w": torch.rand(4)}, 0.5, scope="everywhere")


def test_current_that_does_not_fit_raises(tiny_mlp):
    with pytest.raises(ValueError, match="fc1.weight"):
        prune(tiny_mlp, "magnitude", 0.5, current={"fc1.weight": torch.ones(2, 2, dtype=torch.bool)})


def test_prune_by_name_equals_prune_by_instance(tiny_mlp):
    a = prune(tiny_mlp, "random", 0.5, seed=3, scope="global").masks
    b = prune(tiny_mlp, get_strategy("random", seed=3, scope="global"), 0.5).masks
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_zeros_to_prune_rounds_like_torch():
    for s in SPARSITIES + [0.25, 0.3, 0.75]:
        for n in (1, 2, 3, 7, 27, 35, 63, 100, 235_200):
            assert zeros_to_prune(s, n) == torch_prune._compute_nparams_toprune(s, n)


# --- hand-computable cases -----------------------------------------------------------------

W1 = [[1.0, -5.0, 2.0], [-0.5, 4.0, -3.0]]
W2 = [[0.1, -0.2], [0.3, -0.4]]


def test_magnitude_by_hand():
    pruned, masks = prune(_hand_model(W1, W2), "magnitude", 0.5)
    # fc1: 3 of 6 go, the smallest |w|: 0.5, 1, 2
    assert masks["fc1.weight"].tolist() == [[False, True, False], [False, True, True]]
    assert pruned.fc1.weight.tolist() == [[0.0, -5.0, 0.0], [0.0, 4.0, -3.0]]
    # fc2: 2 of 4 go: 0.1, 0.2
    assert masks["fc2.weight"].tolist() == [[False, False], [True, True]]
    assert pruned.fc1.bias.tolist() == [0.25, 0.25]


def test_global_magnitude_by_hand_collapses_a_layer():
    _, masks = prune(_hand_model(W1, W2), "global_magnitude", 0.5)
    # 5 of 10 go: 0.1, 0.2, 0.3, 0.4 (all of fc2) and 0.5
    assert masks["fc1.weight"].tolist() == [[True, True, True], [False, True, True]]
    assert masks["fc2.weight"].tolist() == [[False, False], [False, False]]


def test_structured_by_hand():
    _, masks = prune(_hand_model(W1, W2), "structured", 0.5, include_bias=True)
    # row norms sqrt(30) > sqrt(25.25): the second hidden neuron goes; the classifier stays whole
    assert masks["fc1.weight"].tolist() == [[True, True, True], [False, False, False]]
    assert masks["fc1.bias"].tolist() == [True, False]
    assert masks["fc2.weight"].all()
    assert "fc2.bias" not in masks


def test_magnitude_with_bias_by_hand():
    model = _hand_model(W1, W2)
    with torch.no_grad():
        model.fc1.bias.copy_(torch.tensor([0.01, -7.0]))
    pruned, masks = prune(model, "magnitude", 0.5, include_bias=True)
    assert masks["fc1.bias"].tolist() == [False, True]
    assert pruned.fc1.bias.tolist() == [0.0, -7.0]


def test_ties_are_broken_by_position():
    model = _hand_model([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]], W2)
    _, masks = prune(model, "magnitude", 0.5)
    assert masks["fc1.weight"].tolist() == [[False, False, False], [True, True, True]]


def test_round_half_to_even_like_torch():
    # 0.5 * 6 = 3; 0.25 * 6 = 1.5 -> 2; 0.75 * 4 = 3; 0.125 * 4 = 0.5 -> 0
    _, masks = prune(_hand_model(W1, W2), "magnitude", 0.25)
    assert int((~masks["fc1.weight"]).sum()) == 2
    assert int((~masks["fc2.weight"]).sum()) == 1
    _, masks = prune(_hand_model(W1, W2), "magnitude", 0.125)
    assert int((~masks["fc2.weight"]).sum()) == 0


# --- agreement with torch.nn.utils.prune (distinct weights: no ties) -------------------------


@pytest.fixture
def distinct_lenet300(lenet300):
    _set_distinct_weights(lenet300)
    return lenet300


@pytest.fixture
def distinct_conv(tiny_conv):
    _set_distinct_weights(tiny_conv, seed=1)
    return tiny_conv


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_magnitude_matches_torch_l1_unstructured(sparsity, distinct_lenet300, distinct_conv):
    for model in (distinct_lenet300, distinct_conv):
        masks = prune(model, "magnitude", sparsity).masks
        reference = copy.deepcopy(model)
        for name, module in prunable_layers(reference):
            torch_prune.l1_unstructured(module, "weight", amount=sparsity)
            assert torch.equal(masks[f"{name}.weight"], module.weight_mask.bool()), name


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("name", ["global_magnitude", "magnitude-global"])
def test_global_magnitude_matches_torch_global_unstructured(name, sparsity, distinct_lenet300, distinct_conv):
    for model in (distinct_lenet300, distinct_conv):
        strategy = get_strategy("magnitude", scope="global") if name == "magnitude-global" else name
        masks = prune(model, strategy, sparsity).masks
        reference = copy.deepcopy(model)
        layers = prunable_layers(reference)
        torch_prune.global_unstructured(
            [(m, "weight") for _, m in layers], pruning_method=torch_prune.L1Unstructured, amount=sparsity
        )
        for layer_name, module in layers:
            assert torch.equal(masks[f"{layer_name}.weight"], module.weight_mask.bool()), layer_name


@pytest.mark.parametrize("sparsity", SPARSITIES)
def test_structured_matches_torch_ln_structured_on_hidden_layers(sparsity, distinct_lenet300, distinct_conv):
    for model in (distinct_lenet300, distinct_conv):
        masks = prune(model, "structured", sparsity).masks
        reference = copy.deepcopy(model)
        layers = prunable_layers(reference)
        for layer_name, module in layers[:-1]:
            norms = module.weight.detach().flatten(1).norm(dim=1)
            assert torch.unique(norms).numel() == norms.numel()  # no ties among rows
            torch_prune.ln_structured(module, "weight", amount=sparsity, n=2, dim=0)
            assert torch.equal(masks[f"{layer_name}.weight"], module.weight_mask.bool()), layer_name
        assert masks[f"{layers[-1][0]}.weight"].all()  # the classifier is left whole


# --- random ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_random_exact_count_deterministic_and_seed_sensitive(scope, lenet300):
    a = prune(lenet300, "random", 0.5, seed=1, scope=scope).masks
    b = prune(lenet300, "random", 0.5, seed=1, scope=scope).masks
    c = prune(lenet300, "random", 0.5, seed=2, scope=scope).masks
    total = sum(m.numel() for m in a.values())
    if scope == "layer":
        for n, m in a.items():
            assert _zeros(m) == round(0.5 * m.numel())
    else:
        assert sum(_zeros(m) for m in a.values()) == round(0.5 * total)
    for n in a:
        assert torch.equal(a[n], b[n])
    assert any(not torch.equal(a[n], c[n]) for n in a)
    # seeds 1 and 2 agree on about half of the pruned weights, as independent draws do
    both = sum(int((~a[n] & ~c[n]).sum()) for n in a)
    assert abs(both / (0.5 * total) - 0.5) < 0.02


def test_random_ignores_the_weights(tiny_mlp):
    other = MLP(5, (7, 9), 3)  # same shapes, different weights
    a = prune(tiny_mlp, "random", 0.5, seed=4).masks
    b = prune(other, "random", 0.5, seed=4).masks
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_random_global_spreads_evenly_over_layers(lenet300):
    masks = prune(lenet300, "random", 0.5, seed=0, scope="global").masks
    for n, m in masks.items():
        s = _zeros(m) / m.numel()
        assert abs(s - 0.5) < 4 * math.sqrt(0.25 / m.numel()) + 1e-9, n


def test_select_lowest_keeps_current_pruned_and_counts_them():
    scores = {"w": torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])}
    current = {"w": torch.tensor([False, True, True, True, True, True])}  # the largest is already gone
    keep = select_lowest(scores, 0.5, "layer", current)["w"]
    assert keep.tolist() == [False, True, True, True, False, False]
    full = select_lowest(scores, 0.5, "layer", {"w": torch.ones(6, dtype=torch.bool)})["w"]
    assert full.tolist() == [True, True, True, False, False, False]
    assert full_masks(MLP(2, (2,), 2))["fc1.weight"].all()


def test_odd_inputs_get_clear_answers():
    """True is not 100 %; a model without prunable layers prunes nothing, in either scope."""
    model = MLP(4, (3,), 2)
    for bad in (True, False, "0.5", None, [0.5]):
        with pytest.raises(ValueError, match="Sparsity must be a number in \\[0, 1\\]"):
            prune(model, "magnitude", bad)
    import numpy as np

    assert int(prune(model, "magnitude", np.float64(0.5)).masks["fc1.weight"].sum()) == 6  # numpy floats are numbers
    for strategy in ("magnitude", "global_magnitude"):
        assert prune(torch.nn.Sequential(), strategy, 0.5).masks == {}


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_without_prunable_weights_every_strategy_prunes_nothing_and_width_0_is_refused():
    """SNIP and Taylor raised StopIteration, SynFlow and GraSP a torch error; a layer of width 0 divided by zero
    in N:M, ER and the report (an audit)."""
    from sparsity_viz.pruning import one_shot_strategy_names
    from sparsity_viz.reports import sparsity_report

    batch = (torch.randn(2, 3), torch.tensor([0, 1]))
    for strategy in one_shot_strategy_names():
        assert prune(torch.nn.Sequential(torch.nn.ReLU()), strategy, 0.5, batch=batch).masks == {}, strategy
    with pytest.raises(ValueError, match=r"Sparsity must be a fraction in \[0, 1\], got 1.5"):
        prune(torch.nn.Sequential(), "snip", 1.5)
    hollow = torch.nn.Sequential(torch.nn.Linear(4, 0), torch.nn.ReLU(), torch.nn.Linear(0, 3))
    for strategy in ("magnitude", "n_m_2_4", "erdos_renyi", "global_magnitude"):
        with pytest.raises(ValueError, match=r"Layers of width 0 cannot be pruned: 0.weight \(0, 4\), 2.weight \(3, 0\)"):
            prune(hollow, strategy, 0.5)
    report = sparsity_report(hollow)
    assert report["sparsity"].tolist() == [0.0, 0.0, 0.0] and report["parameters"].tolist() == [0, 0, 0]


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_a_float64_model_is_ranked_in_float64(scope):
    """Found by an audit: scores were ranked in float32, where 1 + 1e-12 and 1 tie and 1e300 overflows to inf, so a
    float64 model lost its largest weights; torch.nn.utils.prune ranks the doubles themselves."""
    if scope == "layer":  # 2 of 4 per layer: the smaller doubles go
        first, second, sparsity = [1 + 3e-12, 1.0, 1 + 2e-12, 1 + 1e-12], [1e300, 1e39, 2e300, 5.0], 0.5
        expected = [[True, False, True, False], [[True], [False], [True], [False]]]
    else:  # 2 of 8 over both layers: in float32 the four near-1 weights tie and the first layer's two went
        first, second, sparsity = [1 + 4e-12, 1 + 1e-12, 3.0, 3.0], [1 + 3e-12, 1 + 2e-12, 3.0, 3.0], 0.25
        expected = [[True, False, True, True], [[True], [False], [True], [True]]]
    model = torch.nn.Sequential(torch.nn.Linear(4, 1, bias=False), torch.nn.Linear(1, 4, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([first], dtype=torch.float64))
        model[1].weight.copy_(torch.tensor(second, dtype=torch.float64)[:, None])
    masks = prune(model, "magnitude" if scope == "layer" else "global_magnitude", sparsity).masks
    reference = copy.deepcopy(model)
    if scope == "layer":
        for module in reference:
            torch_prune.l1_unstructured(module, "weight", amount=sparsity)
    else:
        torch_prune.global_unstructured([(m, "weight") for m in reference], torch_prune.L1Unstructured, amount=sparsity)
    for i, module in enumerate(reference):
        assert torch.equal(masks[f"{i}.weight"], module.weight_mask.bool()), i
    assert [masks["0.weight"][0].tolist(), masks["1.weight"].tolist()] == expected


def test_structured_over_unstructured_masks_removes_the_rows_ln_structured_removes(distinct_lenet300):
    """Found by an audit: a row counted as removed once any of its weights was pruned, so every partly pruned row went
    whatever its norm (and 1 % unstructured made structured 50 % raise). Now a row is gone only when wholly pruned and
    the others rank by the norm of what is left, as torch's ln_structured over the masked weight."""
    for unstructured in (0.0003, 0.01, 0.5):
        current = prune(distinct_lenet300, "magnitude", unstructured).masks
        masks = prune(distinct_lenet300, "structured", 0.5, current=current).masks
        reference = copy.deepcopy(distinct_lenet300)
        for name, module in prunable_layers(reference):
            torch_prune.custom_from_mask(module, "weight", current[f"{name}.weight"])
            if name != "fc3":  # the classifier stays whole
                torch_prune.ln_structured(module, "weight", amount=0.5, n=2, dim=0)
            assert torch.equal(masks[f"{name}.weight"], module.weight_mask.bool()), (unstructured, name)


def test_data_driven_strategies_score_the_masked_network():
    """Found by an audit: with ``current``, RigL regrew by gradients of the model whose pruned weights still held their
    old values; the copy is now scored with ``current`` applied, as if the masked model had been passed."""
    from sparsity_viz.data import data_batch, load_dataset
    from sparsity_viz.masks import masked_copy
    from sparsity_viz.models import build_model

    batch = data_batch(load_dataset("digits"), seed=0)
    model = build_model("digits_mlp", seed=0)
    current = prune(model, "magnitude", 0.7).masks
    for strategy in ("rigl", "snip"):
        given = prune(model, strategy, 0.7, current=current, batch=batch, seed=1).masks
        masked = prune(masked_copy(model, current), strategy, 0.7, current=current, batch=batch, seed=1).masks
        assert all(torch.equal(given[k], masked[k]) for k in given), strategy


@pytest.mark.parametrize(("name", "bad"), [
    ("set", {"drop_fraction": float("nan")}), ("set", {"drop_fraction": 5.0}), ("rigl", {"drop_fraction": -1.0}),
    ("rigl", {"end": float("nan")}), ("set", {"end": 2.0}), ("iterative", {"output_rate": float("nan")}),
    ("iterative", {"output_rate": 2.0}), ("iterative", {"rewind_step": -5}), ("iterative", {"rewind_step": 1.5}),
    ("gradual", {"initial": -1.0}), ("gradual", {"initial": float("nan")}),
])
def test_scheduled_strategy_parameters_are_checked_up_front(name, bad):
    """Found by an audit: NaN failed mid-run inside int(), and out-of-range values (drop_fraction 5, output_rate 2,
    rewind_step -5, initial -1) ran anyway."""
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0] if name != "gradual" else "initial"):
        get_strategy(name, **bad)
