"""train()/evaluate(): masks hold exact zeros, proximal L1 makes zeros, callbacks, stop, hooks, divergence."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from sparsity_viz import divergence
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.divergence import REASONS
from sparsity_viz.masks import full_masks, masks_from_zeros
from sparsity_viz.models import build_model, get_spec, prunable_parameters
from sparsity_viz.pruning import prune
from sparsity_viz.training import (
    DIVERGENCE_FACTOR,
    TrainConfig,
    TrainHook,
    TrainingDiverged,
    evaluate,
    evaluate_dataset,
    is_stopped,
    make_optimizer,
    summed_cross_entropy,
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


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "64"])
def test_a_bad_batch_size_or_unmatched_labels_are_refused(digits, batch_size):
    """-1 read no batch: accuracy 0.0 and loss 0.0 for 359 samples (an audit); 0 raised range()'s own error."""
    import numpy as np

    from sparsity_viz.activations import activation_sparsity

    model = build_model("digits_mlp", seed=0)
    with pytest.raises(ValueError, match="The batch size must be a whole number >= 1"):
        evaluate(model, digits.x_test, digits.y_test, batch_size=batch_size)
    with pytest.raises(ValueError, match="The batch size must be a whole number >= 1"):
        activation_sparsity(model, digits.x_test, batch_size=batch_size)
    with pytest.raises(ValueError, match="one label per sample: 359 inputs, 358 labels"):
        evaluate(model, digits.x_test, digits.y_test[:-1])
    small, large = (evaluate(model, digits.x_test, digits.y_test, batch_size=b) for b in (np.int64(7), 50))
    assert small.accuracy == large.accuracy and small.loss == pytest.approx(large.loss, rel=1e-6)


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e30])
def test_summed_cross_entropy_equals_torch(scale):
    gen = torch.Generator().manual_seed(0)
    logits, y = scale * torch.randn(1000, 10, generator=gen), torch.randint(0, 10, (1000,), generator=gen)
    want = float(F.cross_entropy(logits, y, reduction="sum"))
    assert summed_cross_entropy(logits, y) == pytest.approx(want, rel=1e-6)


def test_evaluate_builds_no_autograd_graph():
    model = build_model("digits_mlp", seed=0)
    seen = []
    model.register_forward_hook(lambda *_: seen.append(torch.is_grad_enabled()))
    digits = load_dataset("digits")
    evaluate(model, digits.x_test, digits.y_test, batch_size=100)
    assert seen and not any(seen)


def test_summed_cross_entropy_keeps_nan_and_rejects_bad_labels():
    logits = torch.zeros(3, 4)
    logits[1, 2] = float("nan")
    assert math.isnan(summed_cross_entropy(logits, torch.tensor([0, 1, 2])))
    assert math.isnan(float(F.cross_entropy(logits, torch.tensor([0, 1, 2]), reduction="sum")))
    with pytest.raises(IndexError):  # as F.cross_entropy
        summed_cross_entropy(logits, torch.tensor([0, 1, 4]))
    with pytest.raises(IndexError):
        summed_cross_entropy(logits, torch.tensor([0, -1, 2]))
    with pytest.raises((IndexError, RuntimeError, ValueError)):
        summed_cross_entropy(logits, torch.tensor([[0], [1], [2]]))


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
    assert str(info.value).endswith("try a smaller learning rate.")  # nothing else scales the loss


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


# --- hooks ---------------------------------------------------------------------------------


class _Recorder(TrainHook):
    def __init__(self):
        self.calls = []

    def on_start(self, state):
        self.calls.append(("start", state.epoch, state.step, state.total_steps))

    def before_step(self, state):
        self.calls.append(("before", state.epoch, state.step, len(state.batch[1])))

    def after_step(self, state):
        self.calls.append(("after", state.epoch, state.step))
        return None

    def on_epoch_end(self, state, stats):
        self.calls.append(("epoch", stats.epoch, state.step))


def test_hooks_are_called_in_order_around_every_step(moons):
    hook = _Recorder()
    result = train(build_model("moons_mlp", seed=0), moons, TrainConfig(epochs=2, batch_size=400), hooks=(hook,))
    steps = math.ceil(len(moons.y_train) / 400)  # 800 training points: 2 steps per epoch
    assert hook.calls[0] == ("start", 0, 0, 2 * steps)
    kinds = [c[0] for c in hook.calls[1:]]
    assert kinds == (["before", "after"] * steps + ["epoch"]) * 2
    assert [c[2] for c in hook.calls if c[0] == "after"] == list(range(1, 2 * steps + 1))
    assert [c[1] for c in hook.calls if c[0] == "epoch"] == [1, 2] and len(result.history) == 2


def test_hooks_do_not_change_the_numbers(moons):
    model = build_model("moons_mlp", seed=0)
    a = train(model, moons, TrainConfig(epochs=2)).model
    b = train(model, moons, TrainConfig(epochs=2), hooks=(_Recorder(), TrainHook())).model
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_masks_returned_by_a_hook_apply_at_once(digits):
    model = build_model("digits_mlp", seed=0)
    target = prune(model, "magnitude", 0.5).masks

    class PruneAtStep3(TrainHook):
        def after_step(self, state):
            if state.step == 3:
                assert all(torch.equal(m, torch.ones_like(m)) for m in state.masks.values())
                return target
            if state.step > 3:
                assert all(torch.equal(state.masks[n].cpu(), target[n]) for n in target)
                for n, p in prunable_parameters(state.model).items():  # pruned weights are exactly 0 after every step
                    assert torch.all(p[~state.masks[n]] == 0)
            return None

    result = train(model, digits, TrainConfig(epochs=1), masks=full_masks(model), hooks=(PruneAtStep3(),))
    for n, p in prunable_parameters(result.model).items():
        assert torch.all(p[~target[n]] == 0), n
    assert result.history[-1].sparsity == pytest.approx(0.5, abs=1e-3)


def test_public_helpers():
    import threading

    flag = threading.Event()
    assert not is_stopped(None) and not is_stopped(flag) and is_stopped(lambda: True)
    flag.set()
    assert is_stopped(flag)
    model = build_model("moons_mlp", seed=0)
    assert isinstance(make_optimizer(model, TrainConfig(optimizer="sgd")), torch.optim.SGD)
    assert isinstance(make_optimizer(model, TrainConfig()), torch.optim.Adam)


# --- divergence: every rule, the reported case, and runs that must not trip ------------------


def _sample(name):
    model, card = load_sample(name)
    return model, card, load_dataset(get_spec(name).dataset, seed=card.get("dataset", {}).get("seed", 0))


def _same_weights(a, b):
    return all(torch.equal(x.cpu(), y.cpu()) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("name", ["moons_mlp", "digits_mlp"])
def test_reported_case_sgd_lr_1e4_with_l1_raises(name):
    """SGD at lr 1e4 with L1: the loss explodes (then comes back to finite values) and accuracy
    ends at chance; train() used to return normally."""
    model, _, data = _sample(name)
    config = TrainConfig(epochs=2, lr=1e4, optimizer="sgd", regularizer="l1", strength=3e-2, zero_threshold=0.01)
    with pytest.raises(TrainingDiverged, match="diverged in epoch 1: loss exploded") as info:
        train(model, data, config)
    err = info.value
    assert err.epoch == 1 and err.reason == "loss exploded" and err.reason in REASONS
    assert err.result.history == [] and _same_weights(err.result.model, model)  # restored to the start
    assert "\n" not in str(err)
    assert "learning rate 10000, l1 strength 0.03)" in str(err)
    assert str(err).endswith("try a smaller learning rate or penalty strength.")


def test_a_confident_model_losing_hundreds_on_a_wrong_sample_has_not_diverged():
    """moons_mlp with its weights x 10 (logits ~1e4 apart, 100 % accurate): one wrong sample in a batch costs
    hundreds, over the bound of 69 for two classes, so pruning it while training (gradual) was stopped as
    diverged in epoch 2 (an audit). The bound now allows twice the first batch's logit range."""
    from sparsity_viz.divergence import SPREAD_FACTOR, DivergenceMonitor
    from sparsity_viz.pruning import get_strategy

    model, _, data = _sample("moons_mlp")
    model.load_state_dict({k: v * 10 for k, v in model.state_dict().items()})
    run = get_strategy("gradual").run(model, data, 0.8, TrainConfig(epochs=8, lr=1e-4))
    assert len(run.history) == 8 and not run.stopped
    monitor = DivergenceMonitor(1.0, 0.5)
    assert monitor.check_loss(0.01, torch.tensor([[0.0, 1e4], [5e3, 0.0]])) is None  # the first batch: range 1e4
    assert monitor.check_loss(SPREAD_FACTOR * 1e4 - 1, torch.zeros(2, 2)) is None
    assert monitor.check_loss(SPREAD_FACTOR * 1e4 + 1, torch.zeros(2, 2))[0] == "loss exploded"


def test_non_finite_loss(moons):
    bad = dataclasses.replace(moons, x_train=torch.full_like(moons.x_train, float("nan")))
    with pytest.raises(TrainingDiverged) as info:
        train(build_model("moons_mlp", seed=0), bad, TrainConfig(epochs=2))
    assert info.value.reason == "non-finite loss" and info.value.epoch == 1


def test_accuracy_collapsing_to_chance_raises():
    """L1 strong enough to zero every weight: the loss stays small (about ln 10), the accuracy falls to chance."""
    model, _, data = _sample("digits_mlp")
    config = TrainConfig(epochs=2, lr=0.05, optimizer="sgd", regularizer="l1", strength=1.0)
    with pytest.raises(TrainingDiverged, match="accuracy collapsed to chance") as info:
        train(model, data, config)
    assert info.value.reason == "accuracy collapsed to chance" and info.value.epoch == 1
    assert _same_weights(info.value.result.model, model)
    assert evaluate_dataset(info.value.result.model, data).accuracy > 0.9


class _Poison(TrainHook):
    """Sets one weight to +inf right after step ``at`` (the loss of that batch was finite)."""

    def __init__(self, at):
        self.at = at
        self.states = []

    def after_step(self, state):
        if state.step == self.at:
            with torch.no_grad():
                state.model.fc1.weight[0, 0] = float("inf")
        return None

    def on_epoch_end(self, state, stats):
        self.states.append(copy.deepcopy(state.model.state_dict()))


def test_non_finite_weights_restore_the_end_of_the_last_finished_epoch(moons):
    model = build_model("moons_mlp", seed=0)
    config = TrainConfig(epochs=3, batch_size=100)  # 8 steps per epoch: the last step of epoch 2 is 16
    hook = _Poison(at=16)
    with pytest.raises(TrainingDiverged, match="non-finite weights") as info:
        train(model, moons, config, hooks=(hook,))
    err = info.value
    assert err.reason == "non-finite weights" and err.epoch == 2 and len(err.result.history) == 1
    assert "end of epoch 1" in str(err)
    restored = err.result.model.state_dict()
    assert all(torch.equal(restored[k], v) for k, v in hook.states[0].items())


def test_training_from_scratch_never_trips_the_accuracy_rule(digits):
    """A fresh model starts at chance; even an L1 that zeroes every weight leaves it there without an error."""
    config = TrainConfig(epochs=2, lr=0.05, optimizer="sgd", regularizer="l1", strength=1.0)
    result = train(build_model("digits_mlp", seed=0), digits, config)
    assert result.history[-1].test_accuracy <= 0.15 and result.history[-1].sparsity == 1.0


def test_pruning_to_nothing_by_a_hook_is_not_divergence(moons):
    model, _, data = _sample("moons_mlp")
    nothing = {n: torch.zeros_like(m) for n, m in full_masks(model).items()}

    class KillAll(TrainHook):
        def after_step(self, state):
            return nothing if state.step == 1 else None

    result = train(model, data, TrainConfig(epochs=3), masks=full_masks(model), hooks=(KillAll(),))
    assert len(result.history) == 3 and result.history[-1].test_accuracy <= 0.55


@pytest.mark.parametrize("name", ["moons_mlp", "circles_mlp", "spiral_mlp", "digits_mlp"])
def test_healthy_fine_tuning_of_bundled_models_trips_no_rule(name):
    model, card, data = _sample(name)
    recipe = card["recipe"]
    for lr in (recipe["lr"] / 10, recipe["lr"]):  # the CLI's fine-tuning rate, and the training rate itself
        result = train(model, data, TrainConfig(epochs=1, lr=lr, batch_size=recipe["batch_size"]))
        assert len(result.history) == 1
    pruned = prune(model, "magnitude", 0.9)
    result = train(pruned.model, data, TrainConfig(epochs=1, lr=recipe["lr"] / 10, batch_size=recipe["batch_size"]),
                   masks=pruned.masks)
    assert len(result.history) == 1


def test_divergence_constants_are_stated():
    assert DIVERGENCE_FACTOR == 100.0
    assert "DIVERGENCE_FACTOR" in divergence.__doc__ and "ln C" in divergence.__doc__


# ---------------------------------------------------------------------------
# A small training split and the train accuracy in eval mode (the overfitting gap)


class _SeenSamples(TrainHook):
    """Records every training batch's labels and inputs."""

    def __init__(self):
        self.inputs, self.steps = [], 0

    def before_step(self, state):
        self.inputs.append(state.batch[0].cpu())
        self.steps += 1


def test_train_fraction_trains_on_exactly_the_subset(digits):
    from sparsity_viz.data import train_subset

    hook = _SeenSamples()
    config = TrainConfig(epochs=2, batch_size=50, train_fraction=0.1, seed=4)
    train(build_model("digits_mlp", seed=0), digits, config, hooks=(hook,))
    subset = train_subset(digits, 0.1, seed=4)
    assert len(subset.y_train) == 144  # round(0.1 * 1,438)
    assert hook.steps == 2 * math.ceil(144 / 50)  # 3 steps an epoch, not 29
    seen = torch.cat(hook.inputs)  # (2 * 144, 1, 8, 8): every subset sample once per epoch
    assert len(seen) == 2 * 144
    key = lambda x: sorted(map(tuple, x.flatten(1).tolist()))  # noqa: E731
    assert key(seen[:144]) == key(seen[144:]) == key(subset.x_train)


def test_eval_train_measures_the_used_split_in_eval_mode(digits):
    from sparsity_viz.data import train_subset

    config = TrainConfig(epochs=3, train_fraction=0.25, dropout=0.5, eval_train=True, seed=1)
    result = train(build_model("digits_mlp", seed=0), digits, config)
    last = result.history[-1]
    fit = evaluate_dataset(result.model, train_subset(digits, 0.25, seed=1), split="train")
    assert fit.count == 360
    assert last.train_eval_accuracy == fit.accuracy and last.train_eval_loss == pytest.approx(fit.loss, rel=1e-6)
    assert all(h.train_eval_accuracy is not None and h.train_eval_loss is not None for h in result.history)
    # the running accuracy has dropout on and weights still moving: not the same number
    assert [h.train_eval_accuracy for h in result.history] != [h.train_accuracy for h in result.history]
    assert last.train_eval_accuracy > last.train_accuracy  # half the hidden units dropped makes the running one lower
    frame = result.history_frame()
    assert list(frame.columns[-2:]) == ["train_eval_accuracy", "train_eval_loss"]


def test_without_eval_train_the_fields_are_none(moons):
    history = train(build_model("moons_mlp", seed=0), moons, TrainConfig(epochs=1)).history
    assert history[0].train_eval_accuracy is None and history[0].train_eval_loss is None


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.01, float("nan")])
def test_bad_train_fraction_is_rejected(bad):
    with pytest.raises(ValueError, match=r"train fraction must be a number in \(0, 1\]"):
        TrainConfig(train_fraction=bad)


def test_gradual_pruning_schedules_over_the_steps_of_the_subset(moons):
    from sparsity_viz.pruning import get_strategy

    config = TrainConfig(epochs=2, train_fraction=0.1)  # 80 samples: 2 steps an epoch, not 13
    run = get_strategy("gradual").run(build_model("moons_mlp", seed=0), moons, 0.5, config)
    assert run.history[-1].sparsity == pytest.approx(0.5, abs=0.02)  # the last pruning event still fired


@pytest.mark.parametrize("strategy", ["gradual", "set", "rigl"])
def test_a_diverging_scheduled_run_raises_instead_of_returning(moons, strategy):
    """Found by an audit: each mask change restarted the loss reference at the next (already exploded) batch, so AGP,
    SET and RigL at lr 1e4 returned runs with batch losses of 1e11-1e12 and chance accuracy as ordinary results."""
    from sparsity_viz.pruning import get_strategy

    model = build_model("moons_mlp", seed=0)
    params = {"every": 1} if strategy != "gradual" else {}
    with pytest.raises(TrainingDiverged) as info:
        get_strategy(strategy, **params).run(model, moons, 0.5, TrainConfig(epochs=2, lr=1e4, optimizer="sgd"))
    assert all(bool(torch.isfinite(p).all()) for p in info.value.result.model.parameters())


@pytest.mark.parametrize("strategy", ["gradual", "set", "rigl", "iterative"])
def test_healthy_scheduled_runs_on_a_trained_model_trip_no_rule(strategy):
    """The loss reference now survives mask changes: pruning a trained model on a schedule must still pass."""
    from sparsity_viz.pruning import get_strategy

    model, card, data = _sample("moons_mlp")
    recipe = card["recipe"]
    for sparsity in (0.5, 0.9):
        result = get_strategy(strategy).run(model, data, sparsity,
                                            TrainConfig(epochs=2, lr=recipe["lr"] / 10, batch_size=recipe["batch_size"]))
        assert result.history, (strategy, sparsity)


@pytest.mark.parametrize("bad", [
    {"strength": -1.0}, {"strength": float("nan")}, {"weight_decay": -1.0}, {"weight_decay": float("inf")},
    {"zero_threshold": float("nan")}, {"zero_threshold": -5.0}, {"momentum": -0.5}, {"momentum": float("nan")},
    {"regularizer": "no_such_reg"}, {"epochs": 2.5}, {"epochs": True}, {"batch_size": 1.5},
])
def test_train_config_refuses_what_training_would_ignore_or_fail_on_deep_inside(bad):
    """Found by an audit: a negative or NaN strength trained with no penalty, weight decay -1 failed inside torch,
    NaN momentum was blamed on the learning rate, 2.5 epochs failed inside range()."""
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        TrainConfig(**bad)


def test_training_refuses_a_model_with_nan_weights(moons):
    """Found by an audit: at 0 epochs the NaN model came back as a result; at 1 the error blamed the learning rate."""
    model = build_model("moons_mlp", seed=0)
    with torch.no_grad():
        model.fc1.weight[0, 0] = float("nan")
    for epochs in (0, 1):
        with pytest.raises(ValueError, match="training needs finite weights: fc1.weight"):
            train(model, moons, TrainConfig(epochs=epochs))


@pytest.mark.parametrize("strategy", ["gradual", "set", "rigl"])
def test_zero_threshold_beside_a_mask_schedule_is_refused(strategy):
    """SET at 80 % with zero_threshold 0.05 ended at 88 % zeros while its history said 80 %: the threshold's zeros
    joined the masks the schedule counts as its budget (an audit)."""
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.data import load_dataset
    from sparsity_viz.pruning import get_strategy

    model, _ = load_sample("moons_mlp")
    config = TrainConfig(epochs=1, zero_threshold=0.05)
    with pytest.raises(ValueError, match="zero_threshold prunes weights the mask schedule does not count"):
        get_strategy(strategy).run(model, load_dataset("moons"), 0.8, config)
