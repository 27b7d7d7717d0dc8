"""Recipes that train the bundled sample models reproducibly (``train-samples``).

Each recipe is seeded (model init, data split, shuffling), so running it again
on the same torch version gives the same weights. The whole set trains in well
under five minutes on a 2-core CPU with one torch thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
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
    save_model(result.model.cpu(), Path(directory or SAMPLE_DIR) / f"{name}.safetensors", card)
    return card


def train_samples(
    names: list[str] | None = None,
    directory: str | Path | None = None,
    on_model: Callable[[str, dict], None] | None = None,
) -> list[dict]:
    """Train every (or the named) sample model; ``on_model(name, card)`` after each."""
    cards = []
    for name in names or list(RECIPES):
        card = train_sample(name, directory)
        cards.append(card)
        if on_model is not None:
            on_model(name, card)
    return cards
