"""What the command line's subcommands share when they run: a bundled model with its dataset, the fine-tuning
configuration its card implies, and a one-line progress bar."""

from __future__ import annotations

import sys


class ProgressLine:
    """A one-line text progress bar on stderr."""

    def __init__(self, label: str, enabled: bool = True):
        self.label, self.enabled = label, enabled and sys.stderr.isatty()

    def __call__(self, fraction: float, *_):
        if self.enabled:
            filled = int(30 * fraction)
            sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%}")
            sys.stderr.flush()
            if fraction >= 1.0:
                sys.stderr.write("\n")


def load_bundled(model_name: str):
    from .checkpoints import load_sample
    from .data import load_dataset
    from .models import get_spec

    spec = get_spec(model_name)
    model, card = load_sample(model_name)
    return model, card, load_dataset(spec.dataset, seed=card.get("dataset", {}).get("seed", 0))


def bundled_finetune_config(card: dict, epochs: int, lr: float | None, device: str, dropout: float = 0.0,
                            dropconnect: float = 0.0, train_fraction: float = 1.0):
    """``recipes.finetune_config`` (1/10 of the card's learning rate) at the card's batch size; ``lr`` overrides."""
    from .recipes import finetune_config

    recipe = card.get("recipe", {})
    overrides = {"lr": lr} if lr is not None else {}
    return finetune_config(card, epochs, batch_size=recipe.get("batch_size", 64), device=device, dropout=dropout,
                           dropconnect=dropconnect, train_fraction=train_fraction, **overrides)
