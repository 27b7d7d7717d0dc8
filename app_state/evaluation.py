"""Accuracy of the session's models, through the backend's compiled sparse model where that is faster.

The policy (which model to evaluate, never waiting for the C++ build) is the library's
``sparsity_viz.backend.live``; this module memoises it per model object in this session.
Accuracies of bundled models on bundled datasets are shared by every session, keyed by
the weights' content (``cache.content_key``): thirty students at the same strategy and
level evaluate once.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from torch import nn

from sparsity_viz.backend import kernels
from sparsity_viz.backend.live import evaluation_model
from sparsity_viz.session import Workbench
from sparsity_viz.training import evaluate_dataset

from . import keys
from .cache import ACCURACY, FAST_MODELS, SHARED_ACCURACY, content_key, memo_by_object, recall, remember, \
    session_cache, shared_cache
from .resources import sample_names
from .workbench import bench, dataset, own_bench


def eval_model(model: nn.Module) -> nn.Module:
    """What to evaluate for ``model``: its compiled sparse model when faster, else itself (memoised per object).

    A "dense" answer given while the native kernel is still being built is not kept, so the
    compiled model is used as soon as the build is done.
    """
    cache = session_cache(FAST_MODELS)
    found, compiled = recall(cache, id(model), model)
    if found:
        return compiled if compiled is not None else model
    chosen = evaluation_model(model)
    compiled = None if chosen is model else chosen
    if compiled is not None or kernels.ready():
        remember(cache, id(model), model, compiled)
    return chosen


def shareable(wb: Workbench) -> bool:
    """True when ``wb``'s results may be shared between sessions: a bundled model on a bundled dataset."""
    own = own_bench()
    own_data = st.session_state.get(keys.OWN_DATASETS) or {}
    return wb.name in sample_names() and (own is None or own.name != wb.name) and wb.dataset not in own_data


def accuracy(model: nn.Module, wb: Workbench | None = None) -> float:
    """Test accuracy of ``model`` on the session's dataset (memoised per model object and dataset)."""
    wb = wb or bench()

    def compute() -> float:
        run = lambda: evaluate_dataset(eval_model(model), dataset(wb), device="cpu").accuracy  # noqa: E731
        if not shareable(wb):
            return run()
        return shared_cache(SHARED_ACCURACY).get_or_compute((wb.name, content_key(model), wb.dataset), run)

    return memo_by_object(ACCURACY, model, compute, extra=wb.dataset)


def dense_accuracy(wb: Workbench | None = None) -> float:
    wb = wb or bench()
    return accuracy(wb.dense, wb)


def curves_evaluator() -> Callable[[nn.Module], nn.Module]:
    """For ``experiments.sweep(evaluator=...)``: each pruned point evaluated compiled when faster."""
    return evaluation_model
