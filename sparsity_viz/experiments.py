"""Sweeps: strategy x sparsity level x seed, each point what that strategy really does, as a tidy DataFrame.

A sweep *plans* one ``SweepPoint`` per (strategy, seed, level), *maps* them
through an executor (``executors.py``: serial, local processes, ...) with
``run_point``, and *assembles* the rows. Every point starts from the dense
model, so points are independent and a stopped sweep returns the points it
finished.

- **One-shot** strategies prune the dense model at the level, then fine-tune
  with ``finetune`` if given. Score strategies are scored once per seed in
  the planning process and every level is cut from that one ``Ranking``
  (``Strategy.ranking``: the same masks ``prune`` gives, at a fraction of the
  cost); the others compute their masks inside the point.
- **Scheduled** strategies (gradual, iterative, SET, RigL) prune while training,
  so a point runs the strategy *as scheduled*: ``strategy.run(dense, dataset,
  level, config)`` with the ``schedule`` config (or, when it is None, the
  ``finetune`` one). Without a training budget they are left out, and
  ``frame.attrs["skipped"]`` says why. At level 0 a scheduled point is the
  dense model itself (nothing to prune, no training), like a one-shot point.

Each row states its training budget: ``kind`` and ``train_epochs`` (epochs of
training the point cost; for IMP that is every round).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from torch import nn

from .connectivity import effective_sparsity, weight_masks
from .data import Dataset, data_batch
from .devices import resolve_device
from .executors import Executor, get_executor
from .masks import Masks, apply_masks, full_masks
from .pruning import get_strategy
from .pruning.base import Strategy
from .training import TrainConfig, evaluate, is_stopped, train

SWEEP_COLUMNS = [
    "strategy", "kind", "sparsity", "seed", "finetune_epochs", "train_epochs", "achieved_sparsity",
    "effective_sparsity", "compression", "accuracy", "loss", "dense_accuracy", "collapsed", "seconds",
]
# why a sweep without a training budget leaves a scheduled strategy out (frame.attrs["skipped"])
SKIP_REASON = ("it prunes while it trains (a scheduled strategy), so it has no one-shot result; it runs as "
               "scheduled when the sweep has a training budget (schedule or fine-tuning epochs).")


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: what ``run_point`` needs besides the shared model, dataset and device.

    Attributes:
        strategy: registry name.
        seed: the strategy's seed, and the seed of its training shuffles.
        level: target sparsity.
        scope: passed to the strategy (None: its default).
        config: training for the point: fine-tuning after a one-shot prune, or the
            schedule's training; None (or 0 epochs for one-shot) = no training.
        masks: one-shot masks already cut from a shared ranking; None = the point computes them.
        seconds: time already spent on the point while planning (its share of the ranking).
    """

    strategy: str
    seed: int
    level: float
    scope: str | None = None
    config: TrainConfig | None = None
    masks: Masks | None = field(default=None, compare=False, repr=False)
    seconds: float = 0.0


def sweep(
    model: nn.Module,
    dataset: Dataset,
    strategies: Sequence[str],
    levels: Sequence[float],
    seeds: Sequence[int] = (0,),
    *,
    finetune: TrainConfig | None = None,
    schedule: TrainConfig | None = None,
    scope: str | None = None,
    baselines: bool = False,
    executor: str | Executor | None = None,
    workers: int = 1,
    progress: Callable[[float, dict], None] | None = None,
    stop: Callable[[], bool] | object | None = None,
    device: str = "auto",
    evaluator: Callable[[nn.Module], nn.Module] | None = None,
) -> pd.DataFrame:
    """Accuracy of ``model`` pruned by each strategy at each level and seed, as each strategy prunes.

    Args:
        model: the dense model (not modified).
        dataset: test split for accuracy, train split for training and data batches.
        strategies: registry names.
        levels: target sparsities in [0, 1].
        seeds: seeds of the strategy (and of its training shuffles).
        finetune: one-shot points are fine-tuned with it (masks kept; not at level 0).
        schedule: the training budget of scheduled strategies (gradual, iterative, SET, RigL);
            None uses ``finetune``; with neither (or 0 epochs) they are skipped.
        scope: passed to strategies that support it.
        baselines: add the random strategy if it is missing.
        executor: ``"serial"``, ``"process"`` (see ``executors.EXECUTORS``) or an ``Executor``.
            None (as before executors existed): ``"process"`` when ``workers > 1`` and points
            train, else ``"serial"`` (an untrained point takes ~10 ms: process start-up would dominate).
        workers: worker processes of the process executor.
        progress: ``progress(fraction_done, last_row)`` after each finished point.
        stop: checked before each point and by running training; finished rows are returned.
        device: where training and evaluation run (ranking and one-shot masks: CPU).
        evaluator: maps each pruned model to the module that is evaluated (e.g. a compiled sparse
            model with the same predictions); identity when None. Must be picklable (a module-level
            function) for the process executor.

    Returns:
        One row per finished point with ``SWEEP_COLUMNS`` (``kind``: ``"one_shot"`` or
        ``"scheduled"``; ``train_epochs``: epochs of training the point cost; ``compression`` =
        1 / (1 - achieved sparsity), inf when nothing is left; ``collapsed``: some layer lost
        every weight), in strategy, seed, level order. ``attrs``: ``dense_accuracy``,
        ``cancelled`` (some planned point did not finish), ``skipped`` (``{name: reason}``).
    """
    dev = str(resolve_device(device))
    names = list(dict.fromkeys(list(strategies) + (["random"] if baselines else [])))
    instances = {name: get_strategy(name) for name in names}  # fail fast on unknown names, before any work
    for level in levels:
        if not 0.0 <= float(level) <= 1.0:
            raise ValueError(f"Sparsity levels must lie in [0, 1], got {level!r}.")
    training = schedule if schedule is not None else finetune
    trains = any(c is not None and c.epochs > 0 for c in (finetune, schedule))
    runner = get_executor(executor if executor is not None else ("process" if workers > 1 and trains else "serial"),
                          workers)
    skipped = {name: SKIP_REASON for name, s in instances.items()
               if s.scheduled and (training is None or training.epochs == 0)}
    names = [n for n in names if n not in skipped]
    base = copy.deepcopy(model).cpu().eval()
    dense = evaluate(copy.deepcopy(base).to(dev), dataset.x_test, dataset.y_test, device=dev)
    shared = {"model": base, "dataset": dataset, "device": dev, "evaluator": evaluator,
              "dense_accuracy": dense.accuracy}
    points = _plan(base, dataset, names, [float(v) for v in levels], seeds, scope, finetune, training)
    rows: list[dict] = []
    total = len(names) * len(seeds) * len(levels)
    for row in runner.map(run_point, points, shared=shared, stop=stop):
        if row is None:  # stopped while running: not a finished point
            continue
        rows.append(row)
        if progress is not None:
            progress(len(rows) / total, row)
    frame = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    if len(frame):  # the same row order however the points were run
        rank = {n: i for i, n in enumerate(names)}
        frame = (frame.assign(_r=frame["strategy"].map(rank))
                 .sort_values(["_r", "seed", "sparsity"], kind="stable").drop(columns="_r").reset_index(drop=True))
    frame.attrs["dense_accuracy"] = dense.accuracy
    frame.attrs["cancelled"] = len(rows) < total
    frame.attrs["skipped"] = skipped
    return frame


def _plan(base: nn.Module, dataset: Dataset, names: Sequence[str], levels: Sequence[float], seeds: Sequence[int],
          scope: str | None, finetune: TrainConfig | None, schedule: TrainConfig | None) -> Iterator[SweepPoint]:
    """The sweep's points, lazily: a strategy with a ``ranking`` is sorted once per seed, when first needed."""
    for name in names:
        own_scope = scope if scope in get_strategy(name).scopes else None
        for seed in seeds:
            strat = get_strategy(name, seed=seed, scope=own_scope)
            if strat.scheduled:
                for level in levels:
                    yield SweepPoint(name, int(seed), level, own_scope, schedule)
                continue
            t0 = time.perf_counter()
            batch = data_batch(dataset, seed=seed) if strat.needs_data else None
            ranking = strat.ranking(base, batch)
            if ranking is None:  # masks that are not a cut of fixed scores: each point computes its own
                for level in levels:
                    yield SweepPoint(name, int(seed), level, own_scope, finetune)
                continue
            share = (time.perf_counter() - t0) / len(levels)
            for level in levels:
                t0 = time.perf_counter()
                masks = ranking.masks(level)
                yield SweepPoint(name, int(seed), level, own_scope, finetune, masks,
                                 share + time.perf_counter() - t0)


def run_point(point: SweepPoint, shared: Mapping[str, Any], stop: Any = None) -> dict | None:
    """One sweep row: the strategy at ``point.level`` from the shared dense model, trained as the point says.

    ``shared`` holds ``model`` (dense, CPU), ``dataset``, ``device``, ``evaluator`` and
    ``dense_accuracy``. Returns None when ``stop`` ends the point before it finished.
    """
    if is_stopped(stop):
        return None
    t0 = time.perf_counter()
    base, dataset, dev = shared["model"], shared["dataset"], shared["device"]
    strat = get_strategy(point.strategy, seed=point.seed, scope=point.scope)
    config = replace(point.config, seed=point.seed, device=dev) if point.config is not None else None
    epochs = 0
    if strat.scheduled:
        if point.level == 0 or config is None:  # nothing to prune: the dense model
            net, masks = copy.deepcopy(base).to(dev), full_masks(base, strat.include_bias)
        else:
            result = strat.run(copy.deepcopy(base), dataset, point.level, config, stop=stop)
            if result.stopped:
                return None
            net, masks, epochs = result.model.to(dev), result.masks, strat.training_epochs(point.level, config)
    else:
        masks = point.masks
        if masks is None:
            batch = data_batch(dataset, seed=point.seed) if strat.needs_data else None
            masks = strat.compute_masks(copy.deepcopy(base), point.level, batch=batch)
        net = apply_masks(copy.deepcopy(base), masks).to(dev)
        if config is not None and config.epochs > 0 and point.level > 0:
            result = train(net, dataset, config, masks=masks, stop=stop)
            if result.stopped:
                return None
            net, epochs = result.model, config.epochs
    evaluator = shared.get("evaluator")
    ev = evaluate(evaluator(net) if evaluator is not None else net, dataset.x_test, dataset.y_test, device=dev)
    return _row(point, strat, masks, ev, epochs, shared["dense_accuracy"], point.seconds + time.perf_counter() - t0)


def _row(point: SweepPoint, strat: Strategy, masks: Masks, ev, epochs: int, dense_accuracy: float,
         seconds: float) -> dict:
    weights = weight_masks(masks)
    alive = sum(int(m.sum()) for _, m in weights)
    size = sum(m.numel() for _, m in weights)
    return {
        "strategy": point.strategy, "kind": strat.kind, "sparsity": point.level,
        "seed": point.seed, "finetune_epochs": 0 if strat.scheduled else epochs, "train_epochs": epochs,
        "achieved_sparsity": 1.0 - alive / size if size else 0.0, "effective_sparsity": effective_sparsity(masks),
        "compression": size / alive if alive else float("inf"),
        "accuracy": ev.accuracy, "loss": ev.loss, "dense_accuracy": dense_accuracy,
        "collapsed": any(not m.any() for _, m in weights), "seconds": seconds,
    }


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, level and fine-tuning: accuracy mean, std, min, max over seeds, the mean
    compression / effective sparsity (any collapse flagged), and the point's kind and training
    epochs. Keeps the frame's ``attrs``."""
    keys = ["strategy", "sparsity", "finetune_epochs"]
    out = (frame.groupby(keys, as_index=False)
           .agg(mean=("accuracy", "mean"), std=("accuracy", "std"), min=("accuracy", "min"),
                max=("accuracy", "max"), seeds=("accuracy", "count"), compression=("compression", "mean"),
                effective_sparsity=("effective_sparsity", "mean"), collapsed=("collapsed", "any"),
                kind=("kind", "first"), train_epochs=("train_epochs", "max"))
           .fillna({"std": 0.0}))
    out.attrs.update(frame.attrs)
    return out
