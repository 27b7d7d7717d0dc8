"""Dropout, DropConnect and the activation L1 penalty as training hooks: hand-checked masks and scaling,
off at evaluation, hooks removed (also on exceptions), pruned weights held, wired through TrainConfig."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsity_viz.data import Dataset, load_dataset
from sparsity_viz.masks import masks_from_zeros
from sparsity_viz.models import MLP, build_model, prunable_parameters
from sparsity_viz.pruning import prune
from sparsity_viz.regularization_hooks import ActivationL1Hook, DropConnectHook, DropoutHook, config_hooks
from sparsity_viz.training import TrainConfig, TrainHook, TrainingDiverged, TrainState, train


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")


def _state(model: nn.Module) -> TrainState:
    return TrainState(model, None, optimizer=None, config=TrainConfig())


def _no_forward_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def _binomial_ok(zeros: int, n: int, p: float) -> bool:
    """Zero count within 5 standard deviations of Binomial(n, p)."""
    return abs(zeros - n * p) <= 5 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("bad", [dict(dropout=1.0), dict(dropout=-0.1), dict(dropconnect=1.0), dict(dropconnect=2)])
def test_rates_outside_0_1_are_rejected(bad):
    with pytest.raises(ValueError, match="rate must be in"):
        TrainConfig(**bad)


def test_config_hooks():
    assert config_hooks(TrainConfig()) == []
    hooks = config_hooks(TrainConfig(dropout=0.3, dropconnect=0.2, seed=5))
    assert [type(h) for h in hooks] == [DropoutHook, DropConnectHook]
    assert hooks[0].p == 0.3 and hooks[1].p == 0.2


def test_dropconnect_zero_share_is_p_over_many_batches(tiny_mlp):
    p = 0.3
    hook = DropConnectHook(p, seed=0)
    zeros = total = 0
    for _ in range(200):
        for keep in hook.sample(tiny_mlp).values():
            zeros += int((~keep).sum())
            total += keep.numel()
    assert total == 200 * (35 + 63 + 27)
    assert _binomial_ok(zeros, total, p)


def test_dropconnect_masks_are_exact_on_a_fixed_seed(tiny_mlp):
    hook = DropConnectHook(0.4, seed=7)
    g = torch.Generator().manual_seed(7)
    for _ in range(3):  # a fresh mask per batch, continuing the same generator
        masks = hook.sample(tiny_mlp)
        for name in ("fc1", "fc2", "fc3"):
            expected = torch.rand(getattr(tiny_mlp, name).weight.shape, generator=g) >= 0.4
            assert torch.equal(masks[f"{name}.weight"], expected)


def test_dropconnect_forward_uses_scaled_kept_weights_in_training_and_plain_weights_at_eval(tiny_mlp):
    plain = copy.deepcopy(tiny_mlp)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    hook, state = DropConnectHook(0.5, seed=3), _state(tiny_mlp)
    hook.on_start(state)
    hook.before_step(state)
    tiny_mlp.train()
    out = tiny_mlp(x)
    h = x
    for i, name in enumerate(("fc1", "fc2", "fc3")):
        layer = getattr(plain, name)
        h = F.linear(h, layer.weight * hook.keep[f"{name}.weight"] * 2.0, layer.bias)  # 1 / (1 - 0.5) = 2
        if i < 2:
            h = torch.relu(h)
    torch.testing.assert_close(out, h)
    tiny_mlp.eval()
    assert torch.equal(tiny_mlp(x), plain.eval()(x))  # off at evaluation
    hook.on_end(state)
    assert _no_forward_hooks(tiny_mlp)
    tiny_mlp.train()
    assert torch.equal(tiny_mlp(x), plain.train()(x))


def test_dropout_off_at_eval_and_inverted_scaling_keeps_the_expected_activation(tiny_mlp):
    p = 0.3
    plain = copy.deepcopy(tiny_mlp).eval()
    hook, state = DropoutHook(p, seed=0), _state(tiny_mlp)
    hook.on_start(state)
    x = torch.randn(16, 5, generator=torch.Generator().manual_seed(2))
    tiny_mlp.eval()
    assert torch.equal(tiny_mlp(x), plain(x))  # identity at evaluation
    act = tiny_mlp.act  # the hooked activation module, alone: input all ones
    act.train()
    out = act(torch.ones(200_000))
    dropped = int((out == 0).sum())
    assert _binomial_ok(dropped, out.numel(), p)
    assert torch.equal(out[out != 0], torch.full((out.numel() - dropped,), 1 / (1 - p)))  # kept: scaled by 1/(1-p)
    assert abs(float(out.mean()) - 1.0) <= 5 * math.sqrt(p / (1 - p) / out.numel())  # E[out] = 1
    hook.on_end(state)
    assert _no_forward_hooks(tiny_mlp)


def test_dropout_hits_every_hidden_layer_and_not_the_logits(tiny_mlp):
    seen = []
    hook, state = DropoutHook(0.5, seed=0), _state(tiny_mlp)
    hook.on_start(state)
    tiny_mlp.act.register_forward_hook(lambda m, i, o: seen.append(o.detach()))  # runs after the dropout hook
    tiny_mlp.train()
    tiny_mlp(torch.rand(64, 5) + 10)  # positive inputs: most pre-activations are not clipped by ReLU
    assert [t.shape[1] for t in seen] == [7, 9]
    hook.on_end(state)


def test_activation_l1_loss_term_is_the_hand_computed_penalty(tiny_mlp):
    hook, state = ActivationL1Hook(0.01), _state(tiny_mlp)
    hook.on_start(state)
    hook.before_step(state)
    x = torch.randn(6, 5, generator=torch.Generator().manual_seed(4))
    tiny_mlp.train()
    tiny_mlp(x)
    h1 = torch.relu(tiny_mlp.fc1(x))
    h2 = torch.relu(tiny_mlp.fc2(h1))
    expected = 0.01 * (h1.abs().sum(1).mean() + h2.abs().sum(1).mean())
    torch.testing.assert_close(hook.loss_term(state), expected)
    assert hook.loss_term(state) is None  # consumed once per step
    hook.on_end(state)
    assert _no_forward_hooks(tiny_mlp)


def test_train_with_dropout_and_dropconnect_returns_the_plain_model_with_masks_held(moons):
    model = build_model("moons_mlp", seed=0)
    pruned = prune(model, "magnitude", 0.5)
    config = TrainConfig(epochs=2, dropout=0.2, dropconnect=0.3, seed=1)
    a = train(pruned.model, moons, config, masks=pruned.masks)
    b = train(pruned.model, moons, config, masks=pruned.masks)
    plain = train(pruned.model, moons, TrainConfig(epochs=2, seed=1), masks=pruned.masks)
    assert type(a.model) is MLP and _no_forward_hooks(a.model) and _no_forward_hooks(pruned.model)
    for name, mask in pruned.masks.items():
        assert torch.all(a.model.get_parameter(name)[~mask] == 0), name  # a pruned weight stays exactly 0
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k  # seeded: the same masks are drawn
    assert not torch.equal(a.model.fc1.weight, plain.model.fc1.weight)  # the options act
    kept = masks_from_zeros(a.model)  # True where the weight is non-zero
    assert all(torch.equal(kept[n] & pruned.masks[n], kept[n]) for n in pruned.masks)


class _Boom(TrainHook):
    def __init__(self, where: str):
        self.where, self.model, self.ended = where, None, False

    def on_start(self, state):
        self.model = state.model

    def after_step(self, state):
        if self.where == "step":
            raise RuntimeError("boom")

    def on_end(self, state):
        self.ended = True


def test_hooks_are_removed_when_training_raises(moons):
    boom = _Boom("step")
    with pytest.raises(RuntimeError, match="boom"):
        train(build_model("moons_mlp", seed=0), moons, TrainConfig(epochs=1, dropout=0.5, dropconnect=0.5),
              hooks=(boom, ActivationL1Hook(0.1)))
    assert boom.ended and boom.model is not None and _no_forward_hooks(boom.model)


def test_hooks_are_removed_when_training_is_stopped(moons):
    boom = _Boom("never")
    result = train(build_model("moons_mlp", seed=0), moons, TrainConfig(epochs=3, dropout=0.5), hooks=(boom,),
                   stop=lambda: True)
    assert result.stopped and boom.ended and _no_forward_hooks(result.model)


def test_activation_l1_training_makes_sparser_activations(moons):
    from sparsity_viz.activations import activation_sparsity

    model = build_model("moons_mlp", seed=0)
    base = train(model, moons, TrainConfig(epochs=5, seed=0)).model
    sparse = train(model, moons, TrainConfig(epochs=5, seed=0), hooks=(ActivationL1Hook(0.05),)).model
    z = lambda m: activation_sparsity(m, moons.x_test).layers[0].zero_fraction  # noqa: E731
    assert z(sparse) > z(base)


def test_reproduction_doc_states_what_the_csv_holds():
    """docs/reproductions.md section 4: the table and the paired numbers are the recorded runs'."""
    import re
    from pathlib import Path

    import pandas as pd

    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs/reproductions.md").read_text()
    runs = pd.read_csv(root / "docs/reproductions/dropout_lenet300.csv")
    summary = pd.read_csv(root / "docs/reproductions/dropout_lenet300_summary.csv").set_index("variant")
    assert len(runs) == 9 and set(runs.seed) == {0, 1, 2} and set(runs.train_fraction) == {0.1}
    for variant, r in summary.iterrows():
        row = (f"| {variant} | {100 * r.train_accuracy_mean:.1f} ± {100 * r.train_accuracy_std:.1f} % "
               f"| {100 * r.test_accuracy_mean:.1f} ± {100 * r.test_accuracy_std:.1f} % "
               f"| {100 * r.gap_mean:.1f} ± {100 * r.gap_std:.1f} | {r.test_loss_mean:.3f} ± {r.test_loss_std:.3f} |")
        assert row in doc, row
    wide = runs.pivot(index="seed", columns="variant")
    for variant, verb in (("dropout 0.5", "dropout narrows"), ("DropConnect 0.5", "DropConnect narrows")):
        d_gap = 100 * (wide["gap", "plain"] - wide["gap", variant])
        text = re.sub(r"\s+", " ", doc)
        narrower = (d_gap > 0).sum()
        assert f"{verb} the gap by {d_gap.mean():.1f} ± {d_gap.std():.1f} points ({narrower} of 3 seeds)" in text
        assert (wide["test_loss", variant] < wide["test_loss", "plain"]).all()  # "lower on every seed"
    d = 100 * (wide["test_accuracy", "dropout 0.5"] - wide["test_accuracy", "plain"])
    assert f"raises test accuracy by {d.mean():.1f} ± {d.std():.1f} points ({(d > 0).sum()} of 3 seeds)" in text
    d = 100 * (wide["test_accuracy", "DropConnect 0.5"] - wide["test_accuracy", "plain"])
    higher = (d > 0).sum()
    assert f"*lowers* test accuracy by {-d.mean():.1f} ± {d.std():.1f} points ({higher} of 3 seeds higher)" in text


def test_activation_l1_strength_is_finite_and_named_when_a_run_diverges(moons):
    """inf passed the check (and a run with it was then blamed on the learning rate); a run that diverges with the
    penalty on names its strength beside the learning rate."""
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="activation L1 strength"):
            ActivationL1Hook(bad)
    assert ActivationL1Hook(0.0).loss_setting() is None
    with pytest.raises(TrainingDiverged) as info:
        train(MLP(2, (16, 16), 2), moons, TrainConfig(epochs=2, seed=0, lr=1e6), hooks=(ActivationL1Hook(0.5),))
    assert "learning rate 1e+06, activation L1 strength 0.5)" in str(info.value)
    assert "try a smaller learning rate or activation L1 strength." in str(info.value)


class _Conv1dNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 3, 3)
        self.act = nn.ReLU()
        self.fc = nn.Linear(3 * 4, 2)

    def forward(self, x):  # (B, 6) -> (B, 2)
        return self.fc(self.act(self.conv(x[:, None])).flatten(1))


class _NoBias(nn.Module):
    sparsity_viz_prunable = ("weight",)

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(2, 6))

    def forward(self, x):
        return x @ self.weight.t()


class _CustomNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.act = nn.ReLU()
        self.layer = _NoBias()

    def forward(self, x):
        return self.layer(self.act(x))


class _AttentionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(6, 2, batch_first=True)
        self.act = nn.ReLU()
        self.fc = nn.Linear(6, 2)

    def forward(self, x):  # (B, 6): one token per sample
        t = x[:, None]
        return self.fc(self.act(self.attn(t, t, t, need_weights=False)[0][:, 0]))


@pytest.mark.parametrize("net", [_Conv1dNet, _CustomNet, _AttentionNet])
def test_dropconnect_runs_on_every_layer_with_a_prunable_weight(net):
    """Found by an audit: a Conv1d raised "t() expects a tensor with <= 2 dimensions" and a declared custom layer
    without a bias raised AttributeError; MultiheadAttention's in_proj_weight was never dropped."""
    torch.manual_seed(0)
    model = net()
    plain = copy.deepcopy(model)
    x = torch.randn(5, 6)
    hook, state = DropConnectHook(0.5, seed=3), _state(model)
    hook.on_start(state)
    hook.before_step(state)
    assert set(hook.keep) == set(prunable_parameters(model))
    model.train()
    out = model(x)
    dropped = {k: v * hook.keep[k] * 2.0 if k in hook.keep else v for k, v in plain.state_dict().items()}
    torch.testing.assert_close(out, torch.func.functional_call(plain.train(), dropped, (x,)))
    assert not torch.allclose(out, plain(x))
    hook.on_end(state)
    assert _no_forward_hooks(model)
    data = Dataset("toy", x, torch.tensor([0, 1, 0, 1, 0]), x, torch.tensor([0, 1, 0, 1, 0]), (6,), ("a", "b"),
                   "points")
    assert len(train(net(), data, TrainConfig(epochs=2, dropconnect=0.3)).history) == 2


class _FunctionalRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(2, 8), nn.Linear(8, 2)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


@pytest.mark.parametrize("config", [TrainConfig(epochs=1, dropout=0.9)])
def test_dropout_on_a_model_without_activation_modules_is_refused(moons, config):
    """Found by an audit: torch.relu in forward() cannot be hooked, and dropout 0.9 trained bit-identically to none."""
    with pytest.raises(ValueError, match="dropout acts on the outputs of activation modules .* _FunctionalRelu has "
                                         "none"):
        train(_FunctionalRelu(), moons, config)
    hook = ActivationL1Hook(0.1)
    with pytest.raises(ValueError, match="an activation L1 penalty acts on"):
        hook.on_start(_state(_FunctionalRelu()))
    ActivationL1Hook(0.0).on_start(_state(_FunctionalRelu()))  # strength 0: nothing to hook, nothing to say
