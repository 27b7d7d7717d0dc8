"""Incremental live evaluation: the first layer's pre-activations from the nearest anchor plus a small correction.

References: the pruned model ``prune`` gives (its logits, predictions and accuracy through ``evaluate``),
a float64 dense product of the pruned first layer, and a hand mask of the ranking positions.
"""

from __future__ import annotations

import copy
import random
import threading

import pytest
import torch

from sparsity_viz.backend import anchored, kernels, live
from sparsity_viz.backend.anchored import AnchorStore, FirstLayerAnchors, input_key
from sparsity_viz.backend.ranked import AnchoredMLP, LivePruner
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.pruning import get_strategy, prune
from sparsity_viz.training import evaluate

STRATEGIES = ("global_magnitude", "magnitude")


@pytest.fixture(scope="module")
def lenet300():
    return load_sample("lenet300")[0].eval()


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("mnist5k")
    return ds.x_test, ds.y_test  # (1000, 1, 28, 28), (1000,)


@pytest.fixture(scope="module", params=STRATEGIES)
def pruner(request, lenet300):
    return LivePruner(lenet300, get_strategy(request.param))


@pytest.fixture(autouse=True)
def _native():
    if not kernels.available():
        pytest.skip("the native kernel cannot be built here: " + (kernels.notice() or "no reason given"))


def _levels(seed: int) -> list[float]:
    """Slider positions in a random order: moves up and down, across and onto anchors, the ends included."""
    levels = [p / 100 for p in range(0, 101, 3)] + [0.0125, 0.4875, 0.975, 0.5, 0.0, 1.0]
    random.Random(seed).shuffle(levels)
    return levels


def _reference_z1(pruner: LivePruner, k: int, x: torch.Tensor) -> torch.Tensor:
    """Float64 ``W1(k) X + b1`` (hidden, N) from the pruned weight, by hand."""
    name = pruner.linears[0]
    w = pruner.model.get_submodule(name).weight.detach().double()
    b = pruner.model.get_submodule(name).bias.detach().double()
    keep = pruner.ranking.positions()[f"{name}.weight"] >= k
    return (w * keep) @ x.flatten(1).double().t() + b[:, None]


def test_between_is_the_slice_of_the_ranking(pruner):
    name = f"{pruner.linears[0]}.weight"
    layer, pos, w = pruner.layers[name], pruner.ranking.positions()[name], pruner.params[name].detach()
    for lo, hi in ((0, 0), (0, 5000), (12345, 20000), (100000, 100001), (0, pos.numel() + 99)):
        got = layer.between(lo, hi).to_dense()
        assert torch.equal(got, w * ((pos >= lo) & (pos < hi))), (lo, hi)


def test_preact_equals_the_pruned_first_layer_in_float64(pruner, digits):
    x = digits[0]
    anchors = pruner.anchors
    assert anchors is not None
    store_before = {j: anchors.anchor(j, x, input_key(x), anchors.features(x, input_key(x))).clone()
                    for j in (0, anchors.nearest(pruner.ranking.cut(0.9)[f"{pruner.linears[0]}.weight"]))}
    for s in _levels(1):
        k = pruner.ranking.cut(s)[f"{pruner.linears[0]}.weight"]
        got = anchors.preact(k, x)  # (300, 1000)
        torch.testing.assert_close(got.double(), _reference_z1(pruner, k, x), rtol=1e-5, atol=2e-5)
        got.add_(1.0)  # a new tensor each time: the caller may write into it
    for j, z in store_before.items():  # the anchors were never modified in place
        assert torch.equal(anchors.anchor(j, x, input_key(x), anchors.features(x, input_key(x))), z)


def test_anchors_built_from_neighbours_stay_shallow_and_exact(lenet300, digits):
    x = digits[0]
    pruner = LivePruner(lenet300, get_strategy("global_magnitude"))
    pruner.anchors.store = AnchorStore()
    a, key = pruner.anchors, input_key(x)
    xf = a.features(x, key)
    order = list(range(anchored.ANCHORS + 1))  # upwards then back down over the evicted lower half
    for j in order:
        a.anchor(j, x, key, xf)
    depths = [a.depth(j, x) for j in order]
    assert depths[0] == 0 and max(depths) == anchored.MAX_DEPTH  # chains restart from scratch at the bound
    assert all(d <= anchored.MAX_DEPTH for d in depths)
    assert sum(d == 0 for d in depths) <= len(order) // anchored.MAX_DEPTH + 1  # most anchors were derived
    for j in order:  # every anchor, derived or not, is the pruned first layer (float64 reference)
        z = a.anchor(j, x, key, xf)
        torch.testing.assert_close(z.double(), _reference_z1(pruner, a.cuts[j], x), rtol=1e-5, atol=2e-5)
    for s in (0.013, 0.5, 0.987):  # and a level one correction further
        k = pruner.ranking.cut(s)["fc1.weight"]
        torch.testing.assert_close(a.preact(k, x).double(), _reference_z1(pruner, k, x), rtol=1e-5, atol=2e-5)


def test_anchored_steps_give_the_pruned_models_logits_and_accuracy(lenet300, digits):
    x, y = digits
    for strategy in STRATEGIES:
        used = 0
        for s in _levels(2):
            step = live.live_step(lenet300, strategy, s)
            fast = live.evaluation_model(step.model)
            assert isinstance(fast, AnchoredMLP)
            first = fast(x)  # the first look at this input on a new pruner builds nothing; later ones use anchors
            got = fast(x)
            # read off an anchor of the shared store (the nearest one to this level)
            used += anchored.STORE.get((fast.anchors.token, input_key(x), fast.anchors.nearest(fast.cut))) is not None
            with torch.no_grad():
                want = step.model(x)
                want64 = copy.deepcopy(step.model).double()(x.double())
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(first, want, rtol=1e-4, atol=1e-4)
            # no near-tie flips on these levels: the same predictions as float32 dense and float64
            assert torch.equal(got.argmax(1), want.argmax(1)), (strategy, s)
            assert torch.equal(got.argmax(1), want64.argmax(1)), (strategy, s)
            a, b = evaluate(fast, x, y, device="cpu"), evaluate(step.model, x, y, device="cpu")
            assert a.accuracy == b.accuracy and a.loss == pytest.approx(b.loss, rel=1e-5), (strategy, s)
            if s not in (0.0, 0.3, 0.5, 0.9, 0.975, 1.0):
                continue
            ref = prune(lenet300, strategy, s)  # the kept copy and masks stay exactly prune's
            assert all(torch.equal(step.masks[n], m) for n, m in ref.masks.items()), (strategy, s)
            assert all(torch.equal(a, b) for a, b in zip(step.model.state_dict().values(),
                                                         ref.model.state_dict().values())), (strategy, s)
        assert used == len(_levels(2))


def test_the_first_look_at_an_input_builds_no_anchors_the_second_builds_them_all(lenet300):
    pruner = LivePruner(lenet300, get_strategy("magnitude"))
    store = AnchorStore()
    pruner.anchors.store = store
    x = torch.randn(64, 784, generator=torch.Generator().manual_seed(0))
    fast = pruner.compiled(pruner.step(0.8).cut, pruner.step(0.8).model)
    one = fast(x)
    assert len(store) == 0  # a one-off input: evaluated the plain way, nothing kept
    two = fast(x)
    assert len(store) == anchored.ANCHORS + 2  # its transpose and every anchor, in one step
    depths = [pruner.anchors.depth(j, x) for j in range(anchored.ANCHORS + 1)]
    assert min(depths) == 0 and max(depths) == anchored.MAX_DEPTH
    torch.testing.assert_close(one, two, rtol=1e-5, atol=1e-5)
    for s in (0.1, 0.55, 0.93):  # later steps at any level build nothing more
        pruner.compiled(pruner.step(s).cut, pruner.step(s).model)(x)
    assert len(store) == anchored.ANCHORS + 2
    x.mul_(2.0)  # edited in place: a new input (its version changed), seen for the first time
    fast(x)
    assert len(store) == anchored.ANCHORS + 2


def test_a_store_too_small_for_every_anchor_builds_only_what_a_step_needs(lenet300, digits):
    x = digits[0]
    pruner = LivePruner(lenet300, get_strategy("magnitude"))
    every = (anchored.ANCHORS + 1) * 300 * x.shape[0] * 4
    pruner.anchors.store = store = AnchorStore(budget=2 * every - 4)  # all of them would take over half of it
    k = pruner.ranking.cut(0.6)["fc1.weight"]
    torch.testing.assert_close(pruner.anchors.preact(k, x).double(), _reference_z1(pruner, k, x), rtol=1e-5,
                               atol=2e-5)
    assert len(store) == 2  # the input's transpose and the one anchor


def test_the_store_is_bounded_and_a_small_one_still_gives_exact_results(lenet300, digits):
    x = digits[0]
    pruner = LivePruner(lenet300, get_strategy("global_magnitude"))
    anchor_bytes = 300 * x.shape[0] * 4
    small = AnchorStore(budget=3 * anchor_bytes + 784 * x.shape[0] * 4)  # the input and three anchors
    pruner.anchors.store = small
    for s in _levels(3):
        k = pruner.ranking.cut(s)["fc1.weight"]
        torch.testing.assert_close(pruner.anchors.preact(k, x).double(), _reference_z1(pruner, k, x),
                                   rtol=1e-5, atol=2e-5)
        assert small.nbytes <= small.budget and len(small) <= 4
    tiny = AnchorStore(budget=1000)  # smaller than one entry: nothing kept, every level computed afresh
    pruner.anchors.store = tiny
    k = pruner.ranking.cut(0.73)["fc1.weight"]
    torch.testing.assert_close(pruner.anchors.preact(k, x).double(), _reference_z1(pruner, k, x), rtol=1e-5,
                               atol=2e-5)
    assert len(tiny) == 0 and tiny.nbytes == 0
    one = (anchored.ANCHORS + 1) * 300 * 1000 * 4 + 784 * 1000 * 4  # LeNet-300-100 x 1,000 digits, one strategy
    assert anchored.ANCHOR_BYTES >= 2 * one  # two strategies side by side (magnitude vs global magnitude)


def test_store_drops_the_least_recently_used():
    store = AnchorStore(budget=3 * 400)
    for i in range(3):
        store.put(("k", i), torch.zeros(100), None)
    assert store.get(("k", 0)) is not None  # 0 is now the most recent
    store.put(("k", 3), torch.zeros(100), None)
    assert store.get(("k", 1)) is None and store.get(("k", 0)) is not None and len(store) == 3
    assert store.nbytes == 1200


def test_concurrent_steps_on_one_pruner_agree(lenet300, digits):
    x = digits[0]
    pruner = LivePruner(lenet300, get_strategy("magnitude"))
    pruner.anchors.store = AnchorStore()
    levels = [0.11, 0.52, 0.87, 0.93, 0.33, 0.975, 0.66, 0.05]
    want = {}
    for s in levels:
        step = pruner.step(s)
        with torch.no_grad():
            want[s] = step.model(x)
    got, errors = {}, []

    def work(order):
        try:
            for s in order:
                step = pruner.step(s)
                fast = pruner.compiled(step.cut, step.model)
                fast(x)
                got.setdefault(s, []).append(fast(x))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(random.Random(i).sample(levels, len(levels)),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for s in levels:
        assert len(got[s]) == 4
        for logits in got[s]:
            torch.testing.assert_close(logits, want[s], rtol=1e-4, atol=1e-4)


def test_no_anchors_when_the_first_bias_is_ranked_or_the_model_is_not_a_relu_mlp(lenet300):
    strat = get_strategy("magnitude")
    strat.include_bias = True
    pruner = LivePruner(lenet300, strat)
    assert pruner.anchors is None
    step = pruner.step(0.9)
    fast = pruner.compiled(step.cut, step.model)
    assert not isinstance(fast, AnchoredMLP)
    lenet5 = load_sample("lenet5")[0]
    assert LivePruner(lenet5, get_strategy("magnitude")).anchors is None


def test_anchor_grid_covers_the_first_layer(pruner):
    a: FirstLayerAnchors = pruner.anchors
    n = pruner.layers[f"{pruner.linears[0]}.weight"].shape
    total = n[0] * n[1]
    pos = pruner.ranking.positions()[f"{pruner.linears[0]}.weight"]
    for j, (k, m) in enumerate(zip(a.cuts, a.pruned)):
        assert int((pos < k).sum()) == m == round(j * total / anchored.ANCHORS)  # anchor j prunes j/ANCHORS of it
        assert a.nearest(k) == j
    most = 0
    for s in [p / 200 for p in range(201)]:  # every half percent: each level is a small correction from its anchor
        k = pruner.ranking.cut(s)[f"{pruner.linears[0]}.weight"]
        anchor = a.cuts[a.nearest(k)]
        most = max(most, pruner.layers[f"{pruner.linears[0]}.weight"].between(min(k, anchor), max(k, anchor)).nnz)
    assert most <= total / (2 * anchored.ANCHORS) + 1  # LeNet-300-100: <= 2,940 of 235,200 entries
