"""train()/evaluate(): masks hold exact zeros, proximal L1 makes zeros, callbacks, stop, divergence."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from sparsity_viz.data import load_dataset
from sparsity_viz.masks import full_masks, masks_from_zeros
from sparsity_viz.models import build_model, prunable_parameters
from sparsity_viz.pruning import prune
from sparsity_viz.training import (
    TrainConfig,
    TrainingDiverged,
    evaluate,
    evaluate_dataset,
    threshold_zeros,
    train,
)


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_evaluate_matches_manual_computation(digits):
    model = build_model("digits_mlp", seed=0).eval()
    result = evaluate(model, digits.x_test, digits.y_test, batch_size=50)
    with torch.no_grad():
        logits = model(digits.x_test)
    assert result.accuracy == pytest.approx(float((logits.argmax(1) == digits.y_test).float().mean()))
    assert result.loss == pytest.approx(float(F.cross_entropy(logits, digits.y_test)), rel=1e-5)
    assert result.count == len(digits.y_test)


def test_train_learns_and_leaves_input_untouched(moons):
    model = build_model("moons_mlp", seed=0)
    before = copy.deepcopy(model.state_dict())
    result = train(model, moons, TrainConfig(epochs=15, lr=0.01, batch_size=32))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"train() modified the caller's {k}"
    assert len(result.history) == 15
    assert result.history[-1].test_accuracy > 0.9
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert evaluate_dataset(result.model, moons).accuracy == pytest.approx(result.history[-1].test_accuracy)


def test_masked_weights_stay_exactly_zero_while_fine_tuning(digits):
    model = build_model("digits_mlp", seed=0)
    pruned = prune(model, "magnitude", 0.8)
    result = train(pruned.model, digits, TrainConfig(epochs=3, lr=0.01), masks=pruned.masks)
    for name, p in prunable_parameters(result.model).items():
        assert torch.all(p[~pruned.masks[name]] == 0), name
        # weights that were kept are actually trained
        assert not torch.equal(p[pruned.masks[name]], pruned.model.get_parameter(name)[pruned.masks[name]])
    assert result.history[-1].sparsity == pytest.approx(0.8, abs=1e-3)


def test_proximal_l1_reaches_exact_zeros_plain_l1_gradient_does_not(digits):
    model = build_model("digits_mlp", seed=0)
    prox = train(model, digits, TrainConfig(epochs=5, lr=0.05, optimizer="sgd", regularizer="l1", strength=2e-2))
    zeros_prox = sum(int((p == 0).sum()) for p in prunable_parameters(prox.model).values())
    assert zeros_prox > 0.3 * sum(p.numel() for p in prunable_parameters(model).values())
    assert prox.history[-1].sparsity > 0.3
    assert prox.history[-1].penalty > 0
    # a plain (sub)gradient L1 step with the same lambda leaves essentially no exact zeros
    plain = copy.deepcopy(model)
    opt = torch.optim.SGD(plain.parameters(), lr=0.05)
    for i in range(0, len(digits.y_train), 64):
        xb, yb = digits.x_train[i : i + 64], digits.y_train[i : i + 64]
        loss = F.cross_entropy(plain(xb), yb) + 2e-2 * sum(p.abs().sum() for p in prunable_parameters(plain).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    zeros_plain = sum(int((p == 0).sum()) for p in prunable_parameters(plain).values())
    assert zeros_plain < zeros_prox / 10


def test_zero_threshold_turns_tiny_weights_into_exact_zeros(moons):
    model = build_model("moons_mlp", seed=0)
    result = train(model, moons, TrainConfig(epochs=2, lr=0.01, zero_threshold=0.2))
    for p in prunable_parameters(result.model).values():
        nz = p[p != 0]
        assert torch.all(nz.abs() >= 0.2 - 1e-6) or nz.numel() == 0
    assert result.masks is not None
    assert all(torch.equal(result.masks[n], p != 0) for n, p in prunable_parameters(result.model).items())


def test_threshold_zeros_counts_changes():
    model = build_model("moons_mlp", seed=0)
    expected = sum(int(((w.abs() < 0.3) & (w != 0)).sum()) for w in prunable_parameters(model).values())
    assert threshold_zeros(model, 0.3) == expected
    assert threshold_zeros(model, 0.3) == 0


def test_callback_progress_and_stop_flag(moons):
    model = build_model("moons_mlp", seed=0)
    seen, fractions = [], []

    def callback(stats):
        seen.append(stats.epoch)

    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 30  # stop in the second epoch (25 steps per epoch)

    result = train(model, moons, TrainConfig(epochs=10, batch_size=32), callback=callback, progress=fractions.append, stop=stop)
    assert result.stopped
    assert seen == [1, 2]
    assert len(result.history) == 2
    assert fractions == sorted(fractions) and 0 < fractions[-1] < 1


def test_stop_flag_accepts_event(moons):
    import threading

    flag = threading.Event()
    flag.set()
    result = train(build_model("moons_mlp", seed=0), moons, TrainConfig(epochs=5), stop=flag)
    assert result.stopped and result.history == []


def test_divergence_raises_with_last_good_state(digits):
    model = build_model("digits_mlp", seed=0)
    with pytest.raises(TrainingDiverged, match="diverged") as info:
        train(model, digits, TrainConfig(epochs=20, lr=1e6, optimizer="sgd", momentum=0.0))
    good = info.value.result.model
    assert all(torch.isfinite(p).all() for p in good.parameters())
    # the model is at an epoch boundary: either the start or a finished epoch
    assert len(info.value.result.history) < 20


def test_same_seed_same_result(moons):
    model = build_model("moons_mlp", seed=0)
    a = train(model, moons, TrainConfig(epochs=2, seed=3)).model
    b = train(model, moons, TrainConfig(epochs=2, seed=3)).model
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


@pytest.mark.parametrize("bad", [dict(lr=0.0), dict(lr=float("nan")), dict(epochs=-1), dict(optimizer="lbfgs")])
def test_bad_config_is_rejected(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_full_masks_training_equals_unmasked(moons):
    model = build_model("moons_mlp", seed=0)
    a = train(model, moons, TrainConfig(epochs=1)).model
    b = train(model, moons, TrainConfig(epochs=1), masks=full_masks(model)).model
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert masks_from_zeros(b).keys() == full_masks(model).keys()
