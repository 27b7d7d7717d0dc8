"""Short training recipes per sample model, tuned to finish in seconds in a classroom and still show the effect.

One place for the numbers the app's pages (and any script) start from: the fine-tuning
config after pruning, the L1 settings that actually make zeros, the lottery lab's
rounds and the epochs a schedule-driven strategy trains for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .data import TOY_DATASETS
from .training import TrainConfig

FINETUNE_LR_DIVISOR = 10  # Han et al. 2015 fine-tune at 1/10 of the original learning rate
DEFAULT_LR = 1e-3  # when a card states no recipe


def card_lr(card: Mapping[str, Any] | None) -> float:
    """The learning rate a sample model was trained with (its card's recipe), or ``DEFAULT_LR``."""
    recipe = card.get("recipe", {}) if isinstance(card, Mapping) else {}
    return float(recipe.get("lr", DEFAULT_LR)) if isinstance(recipe, Mapping) else DEFAULT_LR


def finetune_lr(card: Mapping[str, Any] | None) -> float:
    """The fine-tuning learning rate: 1/10 of the model's own."""
    return card_lr(card) / FINETUNE_LR_DIVISOR


def finetune_config(card: Mapping[str, Any] | None, epochs: int, **overrides: Any) -> TrainConfig:
    """Fine-tuning after pruning: ``epochs`` at 1/10 of the card's learning rate (Adam, batch 64).

    ``overrides`` are any other ``TrainConfig`` fields, e.g. ``dropout``, ``dropconnect``, ``train_fraction``.
    """
    return TrainConfig(**{"epochs": int(epochs), "lr": finetune_lr(card), **overrides})


@dataclass(frozen=True)
class L1Recipe:
    """L1 settings that make exact zeros within a short run (SGD with momentum 0.9)."""

    strength: float
    epochs: int
    lr: float
    zero_threshold: float


# lenet300: SGD lr 0.05, lambda 3e-3, threshold 0.01, 5 epochs (what it gives: docs/app.md, Regularize);
# the 2-D toys need a larger lambda because they have so few weights.
L1_RECIPES: dict[str, L1Recipe] = {
    "lenet300": L1Recipe(strength=3e-3, epochs=5, lr=0.05, zero_threshold=0.01),
    "lenet5": L1Recipe(strength=3e-3, epochs=2, lr=0.05, zero_threshold=0.01),
    "digits_mlp": L1Recipe(strength=3e-2, epochs=10, lr=0.05, zero_threshold=0.01),
}
L1_TOY_RECIPE = L1Recipe(strength=3e-2, epochs=20, lr=0.05, zero_threshold=0.01)


def l1_recipe(model_name: str) -> L1Recipe:
    """The L1 recipe of a sample model (the toys share one)."""
    return L1_RECIPES.get(model_name, L1_TOY_RECIPE)


@dataclass(frozen=True)
class LotteryRecipe:
    """Lottery-lab defaults that finish in seconds and still train."""

    rounds: int
    epochs: int
    lr: float
    max_rounds: int = 14
    max_epochs: int = 30


LOTTERY_RECIPES: dict[str, LotteryRecipe] = {
    "lenet300": LotteryRecipe(rounds=8, epochs=3, lr=1.2e-3),
    "digits_mlp": LotteryRecipe(rounds=8, epochs=8, lr=3e-3),
    "lenet5": LotteryRecipe(rounds=2, epochs=1, lr=1.2e-3, max_rounds=3, max_epochs=2),  # a conv net: slow rounds
}
LOTTERY_TOY_RECIPE = LotteryRecipe(rounds=6, epochs=12, lr=1e-2)


def lottery_recipe(model_name: str) -> LotteryRecipe:
    """The lottery-lab defaults of a sample model (the toys share one)."""
    return LOTTERY_RECIPES.get(model_name, LOTTERY_TOY_RECIPE)


def schedule_epochs(dataset: str) -> int:
    """Epochs a schedule-driven strategy (gradual, iterative, SET, RigL) trains for by default.

    SET / RigL update the mask every 50 steps: the small toy datasets need more epochs.
    """
    if dataset in TOY_DATASETS:
        return 16
    return 5 if dataset == "digits" else 3
