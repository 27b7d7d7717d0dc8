"""The measurements lessons (and the Home page's first steps) share: a pruned copy's test accuracy, per-layer zeros.

The same calls the app makes: ``pruning.prune`` of the dense model (a data batch for
data-driven strategies) and ``training.evaluate_dataset`` on the test split.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ..data import data_batch
from ..masks import Masks, layer_sparsity
from ..pruning import STRATEGIES, prune, wants_batch
from ..session import PruneConfig
from ..training import evaluate_dataset
from .base import LessonContext


def pruned(ctx: LessonContext, cfg: PruneConfig):
    """``prune`` of the dense model as the Prune page does it (``Pruned``: a copy and its masks)."""
    batch = data_batch(ctx.dataset, seed=cfg.seed) if wants_batch(STRATEGIES[cfg.strategy]) else None
    return prune(ctx.model, cfg.strategy, cfg.sparsity, scope=cfg.scope, seed=cfg.seed, batch=batch)


def accuracy(model, ctx: LessonContext) -> float:
    """Test accuracy of ``model`` on the lesson's dataset."""
    return float(evaluate_dataset(model, ctx.dataset, device="cpu").accuracy)


def dense_accuracy(ctx: LessonContext) -> float:
    return accuracy(ctx.model, ctx)


def pruned_accuracy(ctx: LessonContext, cfg: PruneConfig) -> float:
    return accuracy(pruned(ctx, cfg).model, ctx)


def accuracy_table(ctx: LessonContext, configs: Iterable[PruneConfig]) -> pd.DataFrame:
    """One row per configuration: strategy, scope, sparsity (%), test accuracy (%)."""
    rows = [{"strategy": c.strategy, "scope": c.scope, "sparsity (%)": round(100 * c.sparsity, 1),
             "test accuracy (%)": 100 * pruned_accuracy(ctx, c)} for c in configs]
    return pd.DataFrame(rows)


def layer_table(masks: Masks) -> pd.DataFrame:
    """Per prunable weight: its size and the share pruned (%)."""
    share = layer_sparsity(masks)
    return pd.DataFrame([{"layer": n.removesuffix(".weight"), "weights": int(m.numel()),
                          "pruned (%)": 100 * share[n]} for n, m in masks.items()])


def chance(ctx: LessonContext) -> float:
    """The accuracy of guessing one class: 1 / number of classes."""
    return 1.0 / ctx.dataset.num_classes
