"""The balance loss trains inside the one training loop."""

import pytest
import torch

from sparsity_viz.data import load_dataset
from sparsity_viz.models import MLP
from sparsity_viz.moe import MoEAuxLossHook, get_moe_spec, train_moe
from sparsity_viz.training import TrainConfig, train


def test_train_moe_learns_moons_and_records_balance():
    data = load_dataset("moons")
    model = get_moe_spec("moe_moons").build(0)
    result, hook = train_moe(model, data, TrainConfig(epochs=3, lr=1e-2, device="cpu"), balance_weight=0.01)
    assert len(hook.history) == 3 and all(1.0 <= v <= 4.0 for v in hook.history)
    assert result.history[-1].test_accuracy > 0.75  # well above chance (0.5)
    fresh = get_moe_spec("moe_moons").build(0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))  # input not mutated


def test_the_hook_adds_weight_times_the_balance_loss_to_the_step():
    from sparsity_viz.training import TrainState, make_optimizer

    model = get_moe_spec("moe_moons").build(0).train()
    model(torch.randn(16, 2, generator=torch.Generator().manual_seed(1)))
    state = TrainState(model, None, make_optimizer(model, TrainConfig()), TrainConfig())
    torch.testing.assert_close(MoEAuxLossHook(0.5).loss_term(state), 0.5 * model.aux_loss)
    assert MoEAuxLossHook(0.0).loss_term(state) is None


def test_balance_weight_changes_the_trajectory():
    data = load_dataset("moons")
    config = TrainConfig(epochs=1, lr=1e-2, device="cpu")
    model = get_moe_spec("moe_moons").build(0)
    a = train_moe(model, data, config, balance_weight=0.0)[0].model
    b = train_moe(model, data, config, balance_weight=1.0)[0].model
    assert not torch.equal(a.router.weight, b.router.weight)
    c = train(model, data, config).model  # no hook = weight 0
    torch.testing.assert_close(a.router.weight, c.router.weight)


def test_hook_rejects_other_models_and_negative_weights():
    with pytest.raises(ValueError, match="MoEMLP"):
        train(MLP(2, (4,), 2), load_dataset("moons"), TrainConfig(epochs=1, device="cpu"), hooks=[MoEAuxLossHook()])
    for bad in (-1.0, float("nan"), float("inf")):  # inf used to pass, then diverge blamed on the lr (an audit)
        with pytest.raises(ValueError, match="balance_weight"):
            MoEAuxLossHook(bad)


def test_a_run_diverged_by_its_balance_weight_names_it():
    """Too large a balance weight diverges as too large a learning rate does: the message names both (it had named
    only the learning rate, which was the recipe's own)."""
    from sparsity_viz.training import TrainingDiverged

    data = load_dataset("moons")
    with pytest.raises(TrainingDiverged) as info:
        train_moe(get_moe_spec("moe_moons").build(0), data, TrainConfig(epochs=2, lr=1e-2, device="cpu"),
                  balance_weight=1e300)
    message = str(info.value)
    assert "learning rate 0.01, balance weight 1e+300)" in message
    assert message.endswith("try a smaller learning rate or balance weight.")
