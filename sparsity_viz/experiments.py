"""Sweeps: strategy x sparsity level x seed, optionally fine-tuned, as a tidy DataFrame.

Every point prunes the *dense* model (one-shot), so points are independent and a
cancelled sweep returns the points it finished. Score-based strategies are
scored once per seed and every level is cut from that one ``Ranking`` (the same
masks ``prune`` gives, at a fraction of the cost); other strategies are called
per level. Fine-tuned points can run in local processes (``parallel.py``).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import pandas as pd
import torch
from torch import nn

from .comparison import effective_sparsity, weight_masks
from .data import Dataset
from .devices import resolve_device
from .masks import Masks, apply_masks
from .pruning import get_strategy
from .pruning.base import Ranking, ScoreStrategy
from .training import TrainConfig, _is_stopped, evaluate, train

SWEEP_COLUMNS = [
    "strategy", "sparsity", "seed", "finetune_epochs", "achieved_sparsity", "effective_sparsity",
    "compression", "accuracy", "loss", "dense_accuracy", "collapsed", "seconds",
]


def data_batch(dataset: Dataset, size: int = 256, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded batch of training data for data-driven strategies (SNIP, Taylor, ...)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset.y_train), generator=g)[:size]
    return dataset.x_train[idx], dataset.y_train[idx]


def _plain_scores(strategy) -> bool:
    """True when the strategy's masks are exactly ``select_lowest`` of its scores (so one ranking serves all levels)."""
    return isinstance(strategy, ScoreStrategy) and type(strategy).compute_masks is ScoreStrategy.compute_masks


def sweep(
    model: nn.Module,
    dataset: Dataset,
    strategies: Sequence[str],
    levels: Sequence[float],
    seeds: Sequence[int] = (0,),
    *,
    finetune: TrainConfig | None = None,
    scope: str | None = None,
    baselines: bool = False,
    workers: int = 1,
    progress: Callable[[float, dict], None] | None = None,
    stop: Callable[[], bool] | object | None = None,
    device: str = "auto",
    evaluator: Callable[[nn.Module], nn.Module] | None = None,
) -> pd.DataFrame:
    """Accuracy of ``model`` pruned one-shot by each strategy at each level and seed.

    Args:
        model: the dense model (not modified).
        dataset: test split for accuracy, train split for fine-tuning and data batches.
        strategies: registry names.
        levels: target sparsities in [0, 1].
        seeds: seeds of the strategy (and of fine-tuning shuffles).
        finetune: when given, each pruned model is fine-tuned with it (masks kept).
        scope: passed to strategies that support it.
        baselines: add the random strategy if it is missing.
        workers: local processes for fine-tuning points (``parallel.py``).
        progress: ``progress(fraction_done, last_row)`` after each point.
        stop: checked before each point; finished rows are returned.
        device: where fine-tuning and evaluation run (scores and masks: CPU).
        evaluator: maps each pruned model to the module that is evaluated (e.g. a
            compiled sparse model with the same predictions); identity when None.

    Returns:
        One row per point with ``SWEEP_COLUMNS`` (``compression`` = 1 / (1 - achieved
        sparsity), inf when nothing is left; ``collapsed``: some layer lost every
        weight); ``attrs["dense_accuracy"]`` and ``attrs["cancelled"]`` are set.
    """
    dev = str(resolve_device(device))
    strategies = list(dict.fromkeys(list(strategies) + (["random"] if baselines else [])))
    for name in strategies:  # fail fast on unknown names, before any work
        get_strategy(name)
    for level in levels:
        if not 0.0 <= float(level) <= 1.0:
            raise ValueError(f"Sparsity levels must lie in [0, 1], got {level!r}.")
    base = copy.deepcopy(model).cpu().eval()
    dense = evaluate(copy.deepcopy(base).to(dev), dataset.x_test, dataset.y_test, device=dev)
    jobs = []  # fine-tuning points for the process pool: (strategy, seed, level, masks, prune_seconds)
    rows: list[dict] = []
    total = len(strategies) * len(seeds) * len(levels)
    cancelled = False

    def finish(row):
        rows.append(row)
        if progress is not None:
            progress(len(rows) / total, row)

    for name in strategies:
        for seed in seeds:
            strat = get_strategy(name, seed=seed, scope=scope if scope in get_strategy(name).scopes else None)
            batch = data_batch(dataset, seed=seed) if strat.needs_data else None
            ranking, score_time = None, 0.0
            if _plain_scores(strat):
                t0 = time.perf_counter()
                ranking = Ranking(strat.scores(base, batch), strat.scope)
                score_time = (time.perf_counter() - t0) / len(levels)
            for level in levels:
                if _is_stopped(stop):
                    cancelled = True
                    break
                t0 = time.perf_counter()
                if ranking is not None:
                    masks = ranking.masks(float(level))
                else:
                    masks = strat.compute_masks(copy.deepcopy(base), float(level), batch=batch)
                seconds = time.perf_counter() - t0 + score_time
                point = (base, dataset, name, seed, float(level), masks)
                if finetune is None or finetune.epochs == 0 or level == 0:
                    finish(evaluate_point(*point, None, dense.accuracy, seconds, device=dev, evaluator=evaluator))
                elif workers > 1:
                    jobs.append((name, seed, float(level), masks, seconds))
                else:
                    finish(evaluate_point(*point, finetune, dense.accuracy, seconds, device=dev, evaluator=evaluator))
            if cancelled:
                break
        if cancelled:
            break
    if jobs and not cancelled:
        from .parallel import run_points

        for row in run_points(base, dataset, jobs, finetune, dense.accuracy, workers=workers, stop=stop):
            finish(row)
        cancelled = _is_stopped(stop)
    frame = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    if len(frame):  # the same row order however the points were run
        rank = {n: i for i, n in enumerate(strategies)}
        frame = (frame.assign(_r=frame["strategy"].map(rank))
                 .sort_values(["_r", "seed", "sparsity"], kind="stable").drop(columns="_r").reset_index(drop=True))
    frame.attrs["dense_accuracy"] = dense.accuracy
    frame.attrs["cancelled"] = cancelled
    return frame


def evaluate_point(base: nn.Module, dataset: Dataset, name: str, seed: int, level: float, masks: Masks,
                   finetune: TrainConfig | None, dense_accuracy: float, seconds: float,
                   device: str = "cpu", evaluator=None) -> dict:
    """One sweep row: apply ``masks`` to a copy of ``base``, fine-tune if asked, evaluate."""
    t0 = time.perf_counter()
    net = apply_masks(copy.deepcopy(base), masks).to(device)
    epochs = 0
    if finetune is not None and finetune.epochs > 0 and level > 0:
        cfg = replace(finetune, seed=seed, device=device)
        net = train(net, dataset, cfg, masks=masks).model
        epochs = cfg.epochs
    result = evaluate(evaluator(net) if evaluator is not None else net, dataset.x_test, dataset.y_test, device=device)
    weights = weight_masks(masks)
    alive = sum(int(m.sum()) for _, m in weights)
    size = sum(m.numel() for _, m in weights)
    return {
        "strategy": name, "sparsity": level, "seed": int(seed), "finetune_epochs": epochs,
        "achieved_sparsity": 1.0 - alive / size if size else 0.0, "effective_sparsity": effective_sparsity(masks),
        "compression": size / alive if alive else float("inf"),
        "accuracy": result.accuracy, "loss": result.loss, "dense_accuracy": dense_accuracy,
        "collapsed": any(not m.any() for _, m in weights), "seconds": seconds + time.perf_counter() - t0,
    }


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, level and fine-tuning: accuracy mean, std, min, max over seeds, and the mean
    compression / effective sparsity (any collapse flagged). Keeps the frame's ``attrs``."""
    keys = ["strategy", "sparsity", "finetune_epochs"]
    out = (frame.groupby(keys, as_index=False)
           .agg(mean=("accuracy", "mean"), std=("accuracy", "std"), min=("accuracy", "min"),
                max=("accuracy", "max"), seeds=("accuracy", "count"), compression=("compression", "mean"),
                effective_sparsity=("effective_sparsity", "mean"), collapsed=("collapsed", "any"))
           .fillna({"std": 0.0}))
    out.attrs.update(frame.attrs)
    return out
