"""Proximal operators checked against their closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from sparsity_viz.models import MLP
from sparsity_viz.regularizers import L1, L2, GroupLasso, get_regularizer


def _model():
    torch.manual_seed(0)
    return MLP(4, (3,), 2)


def test_l1_prox_is_soft_threshold():
    model = _model()
    w_before = model.fc1.weight.detach().clone()
    b_before = model.fc1.bias.detach().clone()
    L1(0.5).prox(model, lr=0.2)  # threshold 0.1
    expected = torch.sign(w_before) * torch.clamp(w_before.abs() - 0.1, min=0)
    torch.testing.assert_close(model.fc1.weight.detach(), expected)
    assert torch.equal(model.fc1.bias.detach(), b_before), "biases are not regularised"
    assert int((model.fc1.weight == 0).sum()) == int((w_before.abs() <= 0.1).sum())


def test_l1_penalty_value():
    model = _model()
    expected = 0.3 * (model.fc1.weight.abs().sum() + model.fc2.weight.abs().sum())
    torch.testing.assert_close(L1(0.3).penalty(model), expected)


def test_group_lasso_prox_shrinks_rows_and_zeroes_small_ones():
    model = _model()
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.1, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]))
    fc2_before = model.fc2.weight.detach().clone()
    GroupLasso(0.5).prox(model, lr=0.2)  # t = 0.1 * sqrt(4) = 0.2
    w = model.fc1.weight.detach()
    torch.testing.assert_close(w[0], torch.tensor([3.0, 4.0, 0, 0]) * (1 - 0.2 / 5.0))
    assert torch.all(w[1] == 0), "a row whose norm is below the threshold becomes exactly zero"
    torch.testing.assert_close(w[2], torch.tensor([0, 0, 0.8, 0]))
    assert torch.equal(model.fc2.weight.detach(), fc2_before), "the classifier layer is not grouped"


def test_group_lasso_penalty():
    model = _model()
    expected = 0.7 * math.sqrt(4) * model.fc1.weight.norm(dim=1).sum()
    torch.testing.assert_close(GroupLasso(0.7).penalty(model), expected)


def test_l2_prox_shrinks_without_zeros():
    model = _model()
    before = model.fc1.weight.detach().clone()
    L2(1.0).prox(model, lr=0.1)
    torch.testing.assert_close(model.fc1.weight.detach(), before / 1.1)
    assert int((model.fc1.weight == 0).sum()) == int((before == 0).sum())


@pytest.mark.parametrize("strength", [-1.0, float("nan"), float("inf")])
def test_bad_strength(strength):
    with pytest.raises(ValueError, match="strength"):
        L1(strength)


def test_registry_lookup():
    assert isinstance(get_regularizer("group_lasso", 0.1), GroupLasso)
    with pytest.raises(ValueError, match="l1"):
        get_regularizer("l0", 0.1)


@pytest.mark.parametrize("name", ["l1", "group_lasso", "l2"])
def test_each_step_text_says_what_its_prox_does(name):
    """The Regularize page's λ help read "shrinks every |w| by learning rate × λ" for all three (an audit): only
    L1 does that. Each regulariser's ``step`` text is checked against its prox on one layer."""
    torch.manual_seed(0)
    model = MLP(4, (3,), 2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr, lam = 0.1, 0.5
    get_regularizer(name, lam).prox(model, lr)
    w0, w1 = before["fc1.weight"], model.fc1.weight.detach()
    reg = get_regularizer(name, lam)
    if name == "l1":
        assert "shrinks every |w| by learning rate × λ" in reg.step
        torch.testing.assert_close(w1.abs(), (w0.abs() - lr * lam).clamp_min(0))
    elif name == "group_lasso":
        assert "by learning rate × λ × √fan-in" in reg.step and "output layer is left alone" in reg.step
        torch.testing.assert_close(w1.norm(dim=1), (w0.norm(dim=1) - lr * lam * math.sqrt(4)).clamp_min(0))
        assert torch.equal(model.fc2.weight.detach(), before["fc2.weight"])
    else:
        assert "multiplies every weight by 1 / (1 + learning rate × λ)" in reg.step
        torch.testing.assert_close(w1, w0 / (1 + lr * lam))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_the_proximal_step_solves_a_lasso_with_either_optimizer(optimizer):
    """The prox shrank by lr * lambda after every step: right for SGD, whose step is lr * g, but Adam steps about lr
    whatever g, so with Adam the penalty did nothing: min 0.5 (w - 0.05)^2 + 0.1 |w| ended at 0.0495, not 0 (an
    audit). The prox now takes Adam's per-element step lr / (sqrt(v_hat) + eps)."""
    from torch import nn

    from sparsity_viz.training import prox_step_sizes

    for target, optimum in ((0.05, 0.0), (0.3, 0.2)):  # soft-threshold of the target by lambda = 0.1
        layer = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            layer.weight.fill_(0.5)
        opt = torch.optim.SGD(layer.parameters(), lr=0.01) if optimizer == "sgd" else \
            torch.optim.Adam(layer.parameters(), lr=0.01)
        for _ in range(3000):
            opt.zero_grad()
            (0.5 * (layer.weight - target) ** 2).sum().backward()
            opt.step()
            L1(0.1).prox(nn.Sequential(layer), prox_step_sizes(opt))
        assert layer.weight.item() == pytest.approx(optimum, abs=1e-4)


def test_adam_step_sizes_are_its_own_per_element_steps():
    from torch import nn

    from sparsity_viz.training import prox_step_sizes

    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    opt = torch.optim.Adam(layer.parameters(), lr=0.01, betas=(0.9, 0.99), eps=1e-6)
    for _ in range(3):
        opt.zero_grad()
        layer(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    v = opt.state[layer.weight]["exp_avg_sq"] / (1 - 0.99**3)
    torch.testing.assert_close(prox_step_sizes(opt)(layer.weight), 0.01 / (v.sqrt() + 1e-6))
    assert prox_step_sizes(torch.optim.SGD(layer.parameters(), lr=0.2))(layer.weight) == 0.2
