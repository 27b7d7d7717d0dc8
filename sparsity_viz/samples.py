"""Recipes that train the bundled sample models reproducibly (``train-samples``).

Each recipe is seeded (model init, data split, shuffling), so running it again
on the same torch version gives the same weights. The whole set trains in well
under five minutes on a 2-core CPU with one torch thread.

The two mixture-of-experts samples (``MOE_RECIPES``: ``moe_moons``, ``moe_mnist``) train
with ``moe.train_moe`` (the balance loss in every step) and are not in ``models.MODELS``:
their cards say architecture kind ``"moe"``, which ``checkpoints.load_sample`` builds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .checkpoints import SAMPLE_DIR, base_card, save_model
from .data import load_dataset
from .models import MODELS, build_model
from .training import EpochStats, TrainConfig, evaluate_dataset, train

RECIPES: dict[str, TrainConfig] = {
    "moons_mlp": TrainConfig(epochs=60, lr=0.01, batch_size=32, seed=0),
    "circles_mlp": TrainConfig(epochs=60, lr=0.01, batch_size=32, seed=0),
    "xor_mlp": TrainConfig(epochs=60, lr=0.01, batch_size=32, seed=0),
    "spiral_mlp": TrainConfig(epochs=200, lr=0.01, batch_size=32, seed=0),
    "digits_mlp": TrainConfig(epochs=40, lr=0.003, batch_size=32, seed=0),
    "lenet300": TrainConfig(epochs=20, lr=0.001, batch_size=64, seed=0),
    "lenet5": TrainConfig(epochs=15, lr=0.001, batch_size=64, seed=0),
}
INIT_SEED = 0
DATA_SEED = 0


@dataclass(frozen=True)
class MoERecipe:
    """How a bundled MoE is trained: the loop's config and the balance-loss weight."""

    config: TrainConfig
    balance_weight: float


# Why the balance weight is 0.1 (written on the cards): every expert gets inputs whose routing and pruning show.
BALANCE_WHY = ("0.1 rather than the Switch Transformer's 0.01: in these few epochs 0.01 leaves the load skewed "
               "(an unused expert on moons), 0.1 spreads it over every expert (docs/moe.md)")
MOE_RECIPES: dict[str, MoERecipe] = {
    "moe_moons": MoERecipe(TrainConfig(epochs=30, lr=0.01, batch_size=32, seed=0), balance_weight=0.1),
    "moe_mnist": MoERecipe(TrainConfig(epochs=8, lr=0.001, batch_size=64, seed=0), balance_weight=0.1),
}
SAMPLE_NAMES = [*RECIPES, *MOE_RECIPES]  # everything train-samples can train


def train_sample(
    name: str,
    directory: str | Path | None = None,
    callback: Callable[[EpochStats], None] | None = None,
) -> dict:
    """Train one sample model with its recipe, save checkpoint + card, return the card."""
    spec = MODELS[name]
    config = RECIPES[name]
    torch.manual_seed(INIT_SEED)
    dataset = load_dataset(spec.dataset, seed=DATA_SEED)
    model = build_model(name, seed=INIT_SEED)
    start = time.perf_counter()
    result = train(model, dataset, config, callback=callback)
    seconds = time.perf_counter() - start
    test = evaluate_dataset(result.model, dataset)
    train_eval = evaluate_dataset(result.model, dataset, split="train")
    card = base_card(name, result.model) | {
        "dataset": {"name": spec.dataset, "seed": DATA_SEED, "train_size": len(dataset.y_train), "test_size": len(dataset.y_test)},
        "test_accuracy": round(test.accuracy, 4),
        "train_accuracy": round(train_eval.accuracy, 4),
        "test_loss": round(test.loss, 4),
        "recipe": asdict(config) | {"device": "cpu"},
        "seed": INIT_SEED,
        "train_seconds": round(seconds, 1),
    }
    save_model(result.model.cpu(), output_dir(directory) / f"{name}.safetensors", card)
    return card


def train_moe_sample(name: str, directory: str | Path | None = None,
                     callback: Callable[[EpochStats], None] | None = None) -> dict:
    """Train one bundled MoE with its recipe (balance loss included), save checkpoint + card, return the card."""
    from .moe import get_moe_spec, train_moe
    from .moe.report import expert_report

    spec, recipe = get_moe_spec(name), MOE_RECIPES[name]
    torch.manual_seed(INIT_SEED)
    dataset = load_dataset(spec.dataset, seed=DATA_SEED)
    model = spec.build(seed=INIT_SEED)
    start = time.perf_counter()
    result, hook = train_moe(model, dataset, recipe.config, balance_weight=recipe.balance_weight, callback=callback)
    seconds = time.perf_counter() - start
    trained = result.model.cpu().eval()
    test = evaluate_dataset(trained, dataset)
    train_eval = evaluate_dataset(trained, dataset, split="train")
    report = expert_report(trained, dataset)
    card = {
        "name": name,
        "description": spec.description,
        "architecture": {"kind": "moe", "kwargs": spec.kwargs},
        "dataset": {"name": spec.dataset, "seed": DATA_SEED, "train_size": len(dataset.y_train),
                    "test_size": len(dataset.y_test)},
        "parameters": report["total_parameters"],
        "active_parameters": report["active_parameters"],
        "test_accuracy": round(test.accuracy, 4),
        "train_accuracy": round(train_eval.accuracy, 4),
        "test_loss": round(test.loss, 4),
        "load": report["load"],  # assignments per expert on the test split (sums to inputs x top_k)
        "balance_loss": round(report["balance_loss"], 4),  # on the test split: 1.0 uniform, N one expert
        "balance_loss_per_epoch": [round(v, 4) for v in hook.history],  # training batches' mean
        "recipe": asdict(recipe.config) | {"device": "cpu", "balance_weight": recipe.balance_weight},
        "balance_weight_reason": BALANCE_WHY,
        "seed": INIT_SEED,
        "torch_version": torch.__version__,
        "train_seconds": round(seconds, 1),
    }
    save_model(trained, output_dir(directory) / f"{name}.safetensors", card)
    return card


def output_dir(directory: str | Path | None) -> Path:
    """Where trained samples go: ``SAMPLE_DIR`` for None only (an empty name must not mean the bundled folder)."""
    if directory is None:
        return Path(SAMPLE_DIR)
    if not str(directory).strip():
        raise ValueError("The output directory is an empty name; give a folder (None means sample_models/).")
    return Path(directory)


def train_samples(
    names: list[str] | None = None,
    directory: str | Path | None = None,
    on_model: Callable[[str, dict], None] | None = None,
) -> list[dict]:
    """Train every (``names=None``) or the named sample models, the MoE ones included; ``on_model(name, card)`` after
    each. An empty list is refused: it must never mean "all" (that retrains and overwrites every bundled model)."""
    if names is not None and not list(names):
        raise ValueError("No sample model named: give at least one name (None trains them all).")
    output_dir(directory)  # an empty name fails here, before any training
    cards = []
    for name in SAMPLE_NAMES if names is None else names:
        card = train_moe_sample(name, directory) if name in MOE_RECIPES else train_sample(name, directory)
        cards.append(card)
        if on_model is not None:
            on_model(name, card)
    return cards
