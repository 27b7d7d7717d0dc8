"""Sweeps: strategy x sparsity level x seed, optionally fine-tuned, as a tidy DataFrame.

Every point prunes the *dense* model (one-shot), so points are independent; a
cancelled sweep returns the points it finished. The engine lives in
``comparison.compare_sweep``; ``sweep`` is its plain entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from .data import Dataset
from .training import TrainConfig

SWEEP_COLUMNS = [
    "strategy", "sparsity", "seed", "finetune_epochs", "achieved_sparsity", "effective_sparsity",
    "compression", "accuracy", "loss", "dense_accuracy", "collapsed", "seconds",
]


def data_batch(dataset: Dataset, size: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded batch of training data for data-driven strategies (SNIP, Taylor, ...)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset.y_train), generator=g)[:size]
    return dataset.x_train[idx], dataset.y_train[idx]


def sweep(
    model: nn.Module,
    dataset: Dataset,
    strategies: Sequence[str],
    levels: Sequence[float],
    seeds: Sequence[int] = (0,),
    *,
    finetune: TrainConfig | None = None,
    scope: str | None = None,
    progress: Callable[[float, dict], None] | None = None,
    stop: Callable[[], bool] | object | None = None,
    device: str = "auto",
    evaluator: Callable[[nn.Module], nn.Module] | None = None,
    baselines: bool = False,
    workers: int = 1,
) -> pd.DataFrame:
    """Accuracy of ``model`` pruned by each strategy at each level and seed.

    Args:
        model: the dense model (not modified).
        dataset: test split for accuracy, train split for fine-tuning and data batches.
        strategies: registry names.
        levels: target sparsities in [0, 1].
        seeds: seeds of the strategy (and of fine-tuning shuffles).
        finetune: when given, each pruned model is fine-tuned with it (masks kept).
        scope: passed to strategies that support it.
        progress: ``progress(fraction_done, last_row)`` after each point.
        stop: checked before each point; finished rows are returned.
        device: where fine-tuning and evaluation run.
        evaluator: maps each pruned model to the module that is evaluated (e.g. a
            compiled sparse model with the same predictions); identity when None.
        baselines: add the random strategy if it is missing.
        workers: local processes for fine-tuning points.

    Returns:
        One row per point with ``SWEEP_COLUMNS``; ``attrs["dense_accuracy"]`` and
        ``attrs["cancelled"]`` are set. Score-based strategies are scored once per
        seed and every level is cut from that one ranking (see ``comparison``).
    """
    from .comparison import compare_sweep

    return compare_sweep(
        model, dataset, strategies, levels, seeds, finetune=finetune, scope=scope, baselines=baselines,
        workers=workers, progress=progress, stop=stop, device=device, evaluator=evaluator,
    )


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, min and max accuracy per strategy and sparsity level (over seeds)."""
    keys = ["strategy", "sparsity", "finetune_epochs"]
    return (
        frame.groupby(keys, as_index=False)["accuracy"]
        .agg(mean="mean", std="std", min="min", max="max", seeds="count")
        .fillna({"std": 0.0})
    )
