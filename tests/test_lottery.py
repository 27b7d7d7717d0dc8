"""The lottery-ticket lab on a tiny configuration (digits MLP, 2 rounds, 1 epoch)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
import torch

from sparsity_viz.data import load_dataset
from sparsity_viz.lottery import LOTTERY_COLUMNS, LotteryConfig, lottery_experiment, ticket_advantage
from sparsity_viz.models import MLP


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture
def init():
    torch.manual_seed(0)
    return MLP(64, (32,), 10)


def test_lottery_rows_and_remaining_weights(digits, init):
    before = {k: v.clone() for k, v in init.state_dict().items()}
    frame, timeline = lottery_experiment(init, digits, LotteryConfig(rounds=2, epochs=1, lr=3e-3),
                                         return_timeline=True)
    assert list(frame.columns) == LOTTERY_COLUMNS
    assert sorted(frame.method.unique()) == ["imp_rewind", "random_mask", "reinit"]
    assert len(frame) == 3 * 3
    total = 64 * 32 + 32 * 10
    alive1 = (2048 - round(0.2 * 2048)) + (320 - round(0.1 * 320))
    r1 = frame[frame["round"] == 1]
    assert (r1.remaining * total).round().astype(int).tolist() == [alive1] * 3  # controls match the ticket's counts
    assert (frame[frame["round"] == 0].remaining == 1.0).all()
    assert frame.test_accuracy.between(0, 1).all() and not frame.attrs["cancelled"]
    assert timeline.steps == [1, 2]
    assert all(torch.equal(before[k], v) for k, v in init.state_dict().items())  # theta_0 untouched


def test_lottery_rewinds_to_an_early_iterate_and_is_seeded(digits, init):
    cfg = LotteryConfig(rounds=1, epochs=1, lr=3e-3, rewind_step=3, controls=("reinit",))
    a = lottery_experiment(init, digits, cfg)
    b = lottery_experiment(init, digits, cfg)
    assert a.test_accuracy.tolist() == b.test_accuracy.tolist()
    assert set(a.method) == {"imp_rewind", "reinit"}
    with pytest.raises(ValueError, match="control"):
        lottery_experiment(init, digits, LotteryConfig(controls=("nope",)))


def test_lottery_stop_keeps_finished_rounds(digits, init):
    stop = threading.Event()

    def callback(row):
        if row["round"] == 1 and row["method"] == "imp_rewind":
            stop.set()

    frame = lottery_experiment(init, digits, LotteryConfig(rounds=3, epochs=1), callback=callback, stop=stop)
    assert frame.attrs["cancelled"]
    assert frame["round"].max() == 1 and len(frame) == 4


def test_ticket_advantage_table():
    import pandas as pd

    frame = pd.DataFrame({
        "method": ["imp_rewind", "reinit", "imp_rewind", "reinit"], "round": [8, 8, 20, 20],
        "sparsity": [0.83, 0.83, 0.99, 0.99], "best_accuracy": [0.95, 0.90, 0.9, 0.5],
    })
    adv = ticket_advantage(frame)
    assert adv["round"].tolist() == [8] and adv.ticket_minus_reinit.iloc[0] == pytest.approx(0.05)


@pytest.mark.parametrize("kwargs,match", [
    ({"rate": 1.5}, r"rate \(per round\) must be in \(0, 1\)"), ({"rate": -0.2}, r"rate \(per round\)"),
    ({"rate": float("nan")}, r"rate \(per round\)"), ({"output_rate": 1.0}, "output_rate must be in"),
    ({"rounds": -1}, "rounds must be a whole number >= 0"), ({"rewind_step": -5}, "rewind_step must be"),
    ({"seed": -1}, "seed must be a whole number"), ({"seed": 0.5}, "seed must be a whole number"),
    ({"epochs": 0}, "epochs must be a whole number >= 1"), ({"lr": float("nan")}, "Learning rate"),
])
def test_a_lottery_config_checks_every_setting(kwargs, match):
    """rate 1.5 pruned every hidden weight, -0.2 only the output layer, rounds -1 returned a row (an audit)."""
    with pytest.raises(ValueError, match=match):
        LotteryConfig(**kwargs)


def test_a_rewind_step_past_the_first_training_is_refused_before_any_training(digits, init):
    """It fell back to theta_0 silently: rewind_step 500 gave the results of rewind_step 0 (an audit)."""
    from sparsity_viz.pruning.iterative import first_training_steps

    config = LotteryConfig(rounds=1, epochs=1, lr=3e-3, controls=())
    steps = first_training_steps(digits, config.train_config())
    assert steps == -(-len(digits.y_train) // config.batch_size)
    calls = []
    with pytest.raises(ValueError, match=f"rewind_step {steps + 1} is past the first training, which takes {steps}"):
        lottery_experiment(init, digits, replace(config, rewind_step=steps + 1), progress=calls.append)
    assert not calls
    frame = lottery_experiment(init, digits, replace(config, rewind_step=steps))  # the last step: reachable
    assert len(frame) == 2
