"""The live slider path: one sort per model and strategy, every level cut from it, evaluated off the sorted layers.

References: ``prune()`` (masks and weights, exactly), a hand cut of the sort order, ``CSR.from_dense``
of the pruned weight, and the pruned dense model's logits and predictions.
"""

from __future__ import annotations

import gc

import pytest
import torch

from sparsity_viz.backend import kernels, live
from sparsity_viz.backend.formats import CSR
from sparsity_viz.backend.ranked import (
    MIN_SPARSE_ROWS,
    AnchoredMLP,
    LivePruner,
    RankedLayer,
    RankedMLP,
    is_cut_of_scores,
)
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import data_batch, load_dataset
from sparsity_viz.masks import masks_from_zeros
from sparsity_viz.pruning import Ranking, get_strategy, prune
from sparsity_viz.training import evaluate

LEVELS = (0.0, 0.3, 0.7, 0.9, 0.97, 1.0)


@pytest.fixture(scope="module")
def lenet300():
    return load_sample("lenet300")[0]


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist5k")


def _native():
    if not kernels.available():
        pytest.skip("the native kernel cannot be built here: " + (kernels.notice() or "no reason given"))


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_ranking_cut_equals_pruning_the_first_k_of_the_sort(scope):
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.randn(7, 5, generator=g), "b": torch.randn(3, 4, generator=g).round()}  # ties in b
    ranking = Ranking(scores, scope)
    for s in (0.0, 0.2, 0.5, 0.81, 1.0):
        masks = ranking.masks(s)
        if scope == "layer":
            for n, t in scores.items():
                order = torch.argsort(t.flatten(), stable=True)
                want = torch.ones(t.numel(), dtype=torch.bool)
                want[order[: int(round(s * t.numel()))]] = False
                assert torch.equal(masks[n].flatten(), want), (n, s)
        else:
            flat = torch.cat([t.flatten() for t in scores.values()])
            want = torch.ones(flat.numel(), dtype=torch.bool)
            want[torch.argsort(flat, stable=True)[: int(round(s * flat.numel()))]] = False
            assert torch.equal(torch.cat([m.flatten() for m in masks.values()]), want), s


def test_ranking_never_revives_and_says_why():
    scores = {"w": torch.arange(10.0).view(2, 5)}
    current = {"w": torch.tensor([[True] * 5, [False] * 4 + [True]])}  # 4 already pruned
    ranking = Ranking(scores, "layer", current)
    assert not ranking.masks(0.4)["w"][1, :4].any()
    with pytest.raises(ValueError, match="already pruned"):
        ranking.masks(0.3)


@pytest.mark.parametrize("strategy,scope", [("magnitude", "layer"), ("magnitude", "global"),
                                            ("global_magnitude", "global"), ("random", "layer"), ("snip", "global")])
@pytest.mark.parametrize("native", [True, False])
def test_steps_equal_prune(lenet300, mnist, strategy, scope, native, monkeypatch):
    if native:
        _native()
    else:  # numpy's compare and product, as while the kernel is being built
        monkeypatch.setattr(kernels, "available_now", lambda: False)
    batch = data_batch(mnist, seed=3) if get_strategy(strategy, scope=scope).needs_data else None
    pruner = LivePruner(lenet300, get_strategy(strategy, scope=scope, seed=3), batch)
    for s in LEVELS:
        step = pruner.step(s)
        ref = prune(lenet300, strategy, s, scope=scope, seed=3, batch=batch)
        for n in ref.masks:
            assert torch.equal(step.masks[n], ref.masks[n]), (n, s)
        for (n, a), b in zip(ref.model.state_dict().items(), step.model.state_dict().values()):
            assert torch.equal(a.view(torch.int32), b.view(torch.int32)), (n, s)  # bit for bit: -0.0 too
    assert all(torch.equal(a, b) for a, b in zip(lenet300.state_dict().values(), load_sample("lenet300")[0]
                                                 .state_dict().values()))  # the argument is untouched


def test_steps_keep_an_uploads_zeros(lenet300):
    base = prune(lenet300, "random", 0.4, seed=7).model  # "uploaded" with 40 % zeros
    current = masks_from_zeros(base)
    pruner = LivePruner(base, get_strategy("magnitude"), current=current)
    for s in (0.5, 0.9):
        ref = prune(base, "magnitude", s, current=current)
        step = pruner.step(s)
        assert all(torch.equal(step.masks[n], ref.masks[n]) for n in ref.masks)
    with pytest.raises(ValueError, match="already pruned"):
        pruner.step(0.2)


def test_ranked_layer_cut_is_the_csr_of_the_pruned_weight(lenet300):
    pruner = LivePruner(lenet300, get_strategy("global_magnitude"))
    for s in (0.5, 0.9, 0.99):
        step = pruner.step(s)
        w = step.model.fc1.weight.detach()
        counts = pruner.layers["fc1.weight"].counts(step.cut["fc1.weight"])
        assert (counts == step.masks["fc1.weight"].sum(1).numpy()).all()
        got = pruner.layers["fc1.weight"].csr(counts)
        assert torch.equal(got.rowptr, CSR.from_dense(w).rowptr)
        assert torch.equal(got.to_dense(), w)


@pytest.mark.parametrize("strategy", ["global_magnitude", "magnitude"])
def test_evaluation_model_gives_the_dense_predictions(lenet300, mnist, strategy):
    _native()
    for s in (0.5, 0.8, 0.9, 0.95, 0.99):
        step = live.live_step(lenet300, strategy, s)
        fast = live.evaluation_model(step.model)
        assert isinstance(fast, AnchoredMLP)  # every level: the first layer from anchors (test_anchored.py)
        chain = RankedMLP(fast.ops)  # the whole chain, as run for an input seen for the first time
        with torch.no_grad():
            want = step.model(mnist.x_test)
            got = chain(mnist.x_test)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
        assert torch.equal(got.argmax(1), want.argmax(1))
        assert evaluate(fast, mnist.x_test, mnist.y_test, device="cpu").accuracy == \
            evaluate(step.model, mnist.x_test, mnist.y_test, device="cpu").accuracy
        for op, (name, mod) in zip(chain.ops, [(n, step.model.get_submodule(n)) for n in ("fc1", "fc2", "fc3")]):
            sparse = (mod.weight != 0).float().mean() <= 0.3 and mod.out_features >= MIN_SPARSE_ROWS  # fc3: 10 rows
            assert op.format == ("csr-native" if sparse else "dense"), (s, name)
        assert fast.formats() == ["anchored", *(op.format for op in chain.ops[1:])]


def test_pruners_are_sorted_once_per_model_strategy_and_scope(lenet300):
    model = load_sample("lenet300")[0]
    a = live.live_pruner(model, "magnitude")
    assert live.live_pruner(model, "magnitude") is a
    assert live.live_pruner(model, "magnitude", scope="global") is not a
    assert live.live_pruner(model, "global_magnitude") is not a
    assert live.live_pruner(model, "random", seed=1) is not live.live_pruner(model, "random", seed=2)
    assert live.live_pruner(model, "magnitude", seed=5) is a  # magnitude ignores the seed
    with torch.no_grad():
        model.fc1.weight.mul_(2)  # edited in place: a new version of the weights
    b = live.live_pruner(model, "magnitude")
    assert b is not a
    assert torch.equal(b.step(0.5).model.fc1.weight, prune(model, "magnitude", 0.5).model.fc1.weight)
    assert live.live_pruner(lenet300, "magnitude", key="shared") is live.live_pruner(model, "magnitude", key="shared")


@pytest.mark.parametrize("strategy", ["structured", "synflow", "erdos_renyi", "n_m_2_4"])
def test_strategies_that_are_not_one_cut_are_left_to_prune(lenet300, strategy):
    strat = get_strategy(strategy)  # a renamed strategy fails here instead of skipping
    if is_cut_of_scores(strat):  # e.g. N:M, if it is a plain score cut: then it must agree with prune
        step = live.live_step(lenet300, strat, 0.5)
        assert all(torch.equal(step.masks[n], m) for n, m in prune(lenet300, strat, 0.5).masks.items())
    else:
        assert live.live_step(lenet300, strategy, 0.5) is None
        with pytest.raises(ValueError, match="not a cut of one ranking"):
            LivePruner(lenet300, strat)


@pytest.mark.parametrize("strategy", ["gradual", "iterative", "set", "rigl"])
def test_scheduled_strategies_are_refused_by_name(lenet300, strategy):
    """They prune while they train: by name, the slider gave magnitude's masks under theirs (an audit)."""
    with pytest.raises(ValueError, match=f"{strategy} prunes while it trains"):
        live.live_step(lenet300, strategy, 0.5)


def test_while_the_kernel_builds_a_step_is_evaluated_as_is(monkeypatch, lenet300):
    monkeypatch.setattr(live, "kernel_pending", lambda: True)
    step = live.live_step(lenet300, "magnitude", 0.9)
    assert live.evaluation_model(step.model) is step.model


def test_the_registry_does_not_keep_pruned_copies_alive(lenet300):
    step = live.live_step(lenet300, "magnitude", 0.9)
    live.evaluation_model(step.model)
    gc.collect()  # earlier tests' copies (held in cycles) leave the registry first
    before = len(live._STEPS)
    del step
    gc.collect()
    assert len(live._STEPS) == before - 1


def test_ranked_layer_rejects_nothing_and_keeps_int16_columns(lenet300):
    layer = RankedLayer(lenet300.fc2.weight.detach(), torch.arange(30000).view(100, 300))
    assert layer.cols.dtype.name == "int16"
    assert (layer.counts(0) == 300).all() and (layer.counts(30000) == 0).all()
    assert (layer.counts(15000) == [0] * 50 + [300] * 50).all()
    empty = layer.csr(layer.counts(30000))
    assert empty.nnz == 0 and torch.equal(empty.to_dense(), torch.zeros(100, 300))


def test_step_copies_are_independent_and_hooked_models_are_deep_copied(lenet300):
    pruner = LivePruner(lenet300, get_strategy("magnitude"))
    assert pruner.lean
    a, b = pruner.step(0.5).model, pruner.step(0.5).model
    with torch.no_grad():
        a.fc1.weight.add_(1.0)
        a.fc1.bias.add_(1.0)
    assert torch.equal(b.fc1.weight, prune(lenet300, "magnitude", 0.5).model.fc1.weight)
    assert torch.equal(b.fc1.bias, lenet300.fc1.bias) and torch.equal(pruner.model.fc1.bias, lenet300.fc1.bias)
    assert a.fc1.weight.requires_grad == lenet300.fc1.weight.requires_grad and a.act is not b.act

    hooked = load_sample("lenet300")[0]
    calls = []
    hooked.fc2.register_forward_hook(lambda *args: calls.append(1))
    pruner = LivePruner(hooked, get_strategy("magnitude"))
    assert not pruner.lean  # a hook: copied by deepcopy, hook included (what prune() gives)
    pruner.step(0.5).model(torch.zeros(1, 784))
    assert calls == [1]


def test_feature_major_input_is_kept_only_while_it_is_the_same_tensor():
    from sparsity_viz.backend.ranked import feature_major

    x = torch.randn(5, 1, 2, 2)
    first = feature_major(x[0:5])  # a new view of the same memory: the same transpose
    assert feature_major(x[0:5]) is first and torch.equal(first, x.flatten(1).t())
    x.add_(1.0)  # edited in place: a new version
    assert torch.equal(feature_major(x), x.flatten(1).t())
    y = torch.randn(5, 4)
    assert torch.equal(feature_major(y), y.t())


def test_a_step_copy_edited_in_place_is_no_longer_read_off_the_sorted_layers(lenet300):
    _native()
    step = live.live_step(lenet300, "magnitude", 0.9)
    assert isinstance(live.evaluation_model(step.model), RankedMLP)
    with torch.no_grad():
        step.model.fc1.weight.mul_(2.0)
    fast = live.evaluation_model(step.model)  # compiled from its weights now (fast_plan), not the stale sort
    x = torch.randn(16, 784, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(fast(x), step.model(x), rtol=1e-4, atol=1e-4)
