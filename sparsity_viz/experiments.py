"""Sweeps: strategy x sparsity level x seed, optionally fine-tuned, as a tidy DataFrame.

Every point prunes the *dense* model afresh (one-shot), so points are
independent; a cancelled sweep returns the points it finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import pandas as pd
import torch
from torch import nn

from .data import Dataset
from .devices import resolve_device
from .masks import sparsity as mask_sparsity
from .pruning import get_strategy, prune
from .training import TrainConfig, _is_stopped, evaluate, train

SWEEP_COLUMNS = [
    "strategy", "sparsity", "seed", "finetune_epochs", "achieved_sparsity",
    "accuracy", "loss", "dense_accuracy", "seconds",
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
        evaluator: maps each pruned model to the module that is evaluated (e.g. a
            compiled sparse model with the same predictions); identity when None.

    Returns:
        One row per point with ``SWEEP_COLUMNS``; ``attrs["dense_accuracy"]`` and
        ``attrs["cancelled"]`` are set.
    """
    dev = resolve_device(device)
    for name in strategies:  # fail fast on unknown names, before any work
        get_strategy(name)
    for level in levels:
        if not 0.0 <= float(level) <= 1.0:
            raise ValueError(f"Sparsity levels must lie in [0, 1], got {level!r}.")
    base = model.to(dev) if next(model.parameters()).device == dev else _copy_to(model, dev)
    dense = evaluate(base, dataset.x_test, dataset.y_test, device=str(dev))
    rows: list[dict] = []
    total = len(strategies) * len(levels) * len(seeds)
    cancelled = False
    for strategy_name in strategies:
        for seed in seeds:
            batch = data_batch(dataset, seed=seed)
            for level in levels:
                if _is_stopped(stop):
                    cancelled = True
                    break
                start = time.perf_counter()
                strat_scope = scope if scope in get_strategy(strategy_name).scopes else None
                pruned = prune(base, strategy_name, float(level), scope=strat_scope, seed=seed, batch=batch)
                net = pruned.model
                epochs = 0
                if finetune is not None and finetune.epochs > 0 and level > 0:
                    cfg = replace(finetune, seed=seed, device=str(dev))
                    net = train(net, dataset, cfg, masks=pruned.masks).model
                    epochs = cfg.epochs
                result = evaluate(evaluator(net) if evaluator else net, dataset.x_test, dataset.y_test, device=str(dev))
                row = {
                    "strategy": strategy_name,
                    "sparsity": float(level),
                    "seed": int(seed),
                    "finetune_epochs": epochs,
                    "achieved_sparsity": mask_sparsity(pruned.masks),
                    "accuracy": result.accuracy,
                    "loss": result.loss,
                    "dense_accuracy": dense.accuracy,
                    "seconds": time.perf_counter() - start,
                }
                rows.append(row)
                if progress is not None:
                    progress(len(rows) / total, row)
            if cancelled:
                break
        if cancelled:
            break
    frame = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    frame.attrs["dense_accuracy"] = dense.accuracy
    frame.attrs["cancelled"] = cancelled
    return frame


def _copy_to(model: nn.Module, device: torch.device) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(device)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, min and max accuracy per strategy and sparsity level (over seeds)."""
    keys = ["strategy", "sparsity", "finetune_epochs"]
    return (
        frame.groupby(keys, as_index=False)["accuracy"]
        .agg(mean="mean", std="std", min="min", max="max", seeds="count")
        .fillna({"std": 0.0})
    )
