"""Accuracy of the session's models, through the backend's compiled sparse model where that is faster.

The policy (which model to evaluate, never waiting for the C++ build) is the library's
``sparsity_viz.backend.live``; this module memoises it per model object in this session.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sparsity_viz.backend import kernels
from sparsity_viz.backend.live import evaluation_model
from sparsity_viz.session import Workbench
from sparsity_viz.training import evaluate_dataset

from .cache import ACCURACY, FAST_MODELS, memo_by_object, session_cache
from .workbench import bench, dataset


def eval_model(model: nn.Module) -> nn.Module:
    """What to evaluate for ``model``: its compiled sparse model when faster, else itself (memoised per object).

    A "dense" answer given while the native kernel is still being built is not kept, so the
    compiled model is used as soon as the build is done.
    """
    cache = session_cache(FAST_MODELS)
    hit = cache.get(id(model))
    if hit is not None and hit[0] is model:
        return hit[1] if hit[1] is not None else model
    chosen = evaluation_model(model)
    compiled = None if chosen is model else chosen
    if compiled is not None or kernels.ready():
        cache[id(model)] = (model, compiled)
    return chosen


def accuracy(model: nn.Module, wb: Workbench | None = None) -> float:
    """Test accuracy of ``model`` on the session's dataset (memoised per model object and dataset)."""
    wb = wb or bench()
    return memo_by_object(ACCURACY, model, lambda: evaluate_dataset(eval_model(model), dataset(wb),
                                                                    device="cpu").accuracy, extra=wb.dataset)


def dense_accuracy(wb: Workbench | None = None) -> float:
    wb = wb or bench()
    return accuracy(wb.dense, wb)


def curves_evaluator() -> Callable[[nn.Module], nn.Module]:
    """For ``experiments.sweep(evaluator=...)``: each pruned point evaluated compiled when faster."""
    return evaluation_model
