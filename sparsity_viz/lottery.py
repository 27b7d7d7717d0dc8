"""The lottery-ticket lab: IMP with rewinding against its two controls.

Frankle & Carbin 2019: train, prune the smallest surviving weights (20 % per
hidden layer, 10 % of the output layer per round), *rewind* the survivors to
their initial values (or to an early iterate, ``rewind_step`` > 0) and train
again. The ticket is compared with

* ``reinit`` -- the same mask, freshly drawn random weights;
* ``random_mask`` -- the rewound weights under a random mask with the same
  per-layer counts.

Every training goes through ``training.train`` by way of
``pruning.iterative.imp_trainings``, the loop ``IterativeStrategy.run`` uses too.
``lottery_experiment`` returns one row per (method, round) with the remaining
fraction of prunable weights and the test accuracy at the end of the round's
training (and the best over its epochs), ready for an "accuracy vs remaining
weights" plot. The default ``LotteryConfig`` runs LeNet-300-100 on MNIST-5k in
well under a minute on 2 cores with one torch thread.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from torch import nn

from .data import Dataset
from .masks import full_masks
from .models import prunable_parameters
from .pruning.base import MAX_SEED
from .pruning.iterative import ImpTraining, imp_round_masks, imp_trainings, round_rates
from .pruning.schedule import MaskTimeline
from .training import TrainConfig
from .whole_numbers import is_whole

METHODS = ("imp_rewind", "reinit", "random_mask")
METHOD_LABELS = {"imp_rewind": "IMP + rewinding (ticket)", "reinit": "same mask, random re-init",
                 "random_mask": "random mask, same init"}
LOTTERY_COLUMNS = ["method", "round", "remaining", "sparsity", "test_accuracy", "best_accuracy",
                   "best_epoch", "seed", "seconds"]


@dataclass(frozen=True)
class LotteryConfig:
    """How to run the lottery lab. Frozen: a cache key for the app."""

    rounds: int = 10  # 0.8^10 = 10.7 % of hidden weights left; 13 rounds reach ~5 %
    rate: float = 0.2  # fraction of surviving hidden-layer weights pruned per round (Frankle & Carbin)
    output_rate: float = 0.1  # the output layer is pruned at half the rate
    epochs: int = 3  # training epochs per round (4,000 samples: ~0.2 s an epoch)
    lr: float = 1.2e-3  # Frankle & Carbin's Adam rate for LeNet-300-100
    batch_size: int = 60  # theirs too
    rewind_step: int = 0  # 0 = rewind to initialisation; k = to the weights after k steps
    controls: tuple[str, ...] = ("reinit", "random_mask")
    seed: int = 0  # seeds shuffling, re-initialisation and random masks

    def __post_init__(self):  # every setting checked (IterativeStrategy's rules): rate 1.5 pruned every hidden
        # weight, -0.2 only the output layer, rounds -1 returned one row, seed 0.5 failed inside torch (an audit)
        for name, low in (("rounds", 0), ("epochs", 1), ("batch_size", 1), ("rewind_step", 0), ("seed", 0)):
            value = getattr(self, name)
            if not is_whole(value) or value < low:
                raise ValueError(f"LotteryConfig.{name} must be a whole number >= {low}, got {value!r}.")
        if self.seed > MAX_SEED:
            raise ValueError(f"LotteryConfig.seed must be at most {MAX_SEED}, got {self.seed}.")
        if not (isinstance(self.rate, numbers.Real) and 0.0 < self.rate < 1.0):
            raise ValueError(f"LotteryConfig.rate (per round) must be in (0, 1), got {self.rate!r}.")
        if not (isinstance(self.output_rate, numbers.Real) and 0.0 <= self.output_rate < 1.0):
            raise ValueError(f"LotteryConfig.output_rate must be in [0, 1), got {self.output_rate!r}.")
        self.train_config()  # the learning rate and batch size, by TrainConfig's own rules

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, lr=self.lr, batch_size=self.batch_size, seed=self.seed, device="cpu")


def lottery_experiment(
    model: nn.Module,
    dataset: Dataset,
    config: LotteryConfig = LotteryConfig(),
    *,
    callback: Callable[[dict], None] | None = None,
    progress: Callable[[float], None] | None = None,
    stop=None,
    return_timeline: bool = False,
):
    """Run IMP with rewinding from ``model`` (theta_0, not modified) and the controls.

    Returns a DataFrame with ``LOTTERY_COLUMNS`` (``attrs["cancelled"]`` set);
    with ``return_timeline`` also the ``MaskTimeline`` of the ticket (one step
    per round), for a "when did each connection die" slider.
    A cancelled run keeps every finished round.
    """
    for c in config.controls:
        if c not in METHODS[1:]:
            raise ValueError(f"Unknown control {c!r}; choose from {', '.join(METHODS[1:])}.")
    init = copy.deepcopy(model).cpu()
    masks = full_masks(init)
    rates = round_rates(init, config.rate, config.output_rate)
    timeline = MaskTimeline.dense(init)
    rows: list[dict] = []
    cancelled = False

    def emit(method: str, t: ImpTraining) -> None:
        accs = [h.test_accuracy for h in t.result.history]
        alive = sum(int(x.sum()) for x in t.masks.values())
        total = sum(x.numel() for x in t.masks.values())
        row = {"method": method, "round": t.round, "remaining": alive / total, "sparsity": 1 - alive / total,
               "test_accuracy": accs[-1] if accs else float("nan"),
               "best_accuracy": max(accs) if accs else float("nan"),
               "best_epoch": int(accs.index(max(accs))) + 1 if accs else 0,
               "seed": config.seed, "seconds": t.seconds}
        rows.append(row)
        if callback is not None:
            callback(row)

    def prune_round(r, trained, current):
        return imp_round_masks({n: p.detach() for n, p in prunable_parameters(trained).items()}, current, rates)

    for t in imp_trainings(init, dataset, config.train_config(), config.rounds, prune_round, masks=masks,
                           timeline=timeline, controls=config.controls, rewind_step=config.rewind_step,
                           seed=config.seed, stop=stop, progress=progress):
        if t.result.stopped:
            cancelled = True
            break
        emit("imp_rewind" if t.method == "rewind" else t.method, t)
        if t.round == 0:  # round 0 is the dense network for every method
            for c in config.controls:
                emit(c, t)
    expected = (1 + config.rounds) * (1 + len(config.controls))
    frame = pd.DataFrame(rows, columns=LOTTERY_COLUMNS)
    frame.attrs["cancelled"] = cancelled or len(rows) < expected
    return (frame, timeline) if return_timeline else frame


def ticket_advantage(frame: pd.DataFrame, low: float = 0.80, high: float = 0.95, metric: str = "best_accuracy") -> pd.DataFrame:
    """Per round with sparsity in [low, high]: ticket accuracy minus each control's (positive = ticket wins)."""
    wide = frame.pivot_table(index=["round"], columns="method", values=metric, aggfunc="mean")
    spars = frame[frame.method == "imp_rewind"].groupby("round").sparsity.mean()
    wide = wide.join(spars)
    wide = wide[(wide.sparsity >= low) & (wide.sparsity <= high)]
    for c in METHODS[1:]:
        if c in wide:
            wide[f"ticket_minus_{c}"] = wide["imp_rewind"] - wide[c]
    return wide.reset_index()
