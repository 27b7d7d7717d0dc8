"""Pruning: strategies behind a registry, and ``prune()`` which returns a pruned copy.

Strategies are one-shot (``prune`` is the whole story) or scheduled (they prune
while training: ``strategy.run(model, dataset, sparsity, config)``); see
``base.py`` and ``scheduled_strategy_names()``.
"""

from __future__ import annotations

import copy
from typing import NamedTuple

from torch import nn

from ..devices import resolve_device
from ..masks import Masks, apply_masks, require_finite, validate_masks
from ..models import prunable_parameters
from .base import (
    KINDS, Batch, Ranking, ScoreStrategy, Strategy, check_sparsity, select_lowest, wants_batch, zeros_to_prune,
)
from .registry import (
    STRATEGIES,
    get_one_shot_strategy,
    get_strategy,
    is_scheduled,
    one_shot_strategy_names,
    scheduled_strategy_names,
    strategy_names,
)
from .schedule import MaskTimeline, ScheduleResult


class Pruned(NamedTuple):
    """A pruned copy of a model and the masks that made it."""

    model: nn.Module
    masks: Masks


def prune(
    model: nn.Module,
    strategy: str | Strategy,
    sparsity: float,
    *,
    scope: str | None = None,
    seed: int = 0,
    current: Masks | None = None,
    batch: Batch | None = None,
    include_bias: bool = False,
    device: str | None = None,
    **params,
) -> Pruned:
    """Prune a **copy** of ``model`` to ``sparsity``; the input is never modified.

    Args:
        model: the model to prune (left untouched).
        strategy: a registry name (see ``STRATEGIES``) or a ``Strategy`` instance.
        sparsity: target fraction of pruned weights in [0, 1] (per layer, or over
            all prunable weights for global scope).
        scope: ``"layer"`` or ``"global"`` where the strategy supports both.
        seed: seeds random strategies.
        current: masks already in force; pruned weights stay pruned, and the copy is scored with them applied.
        batch: ``(inputs, labels)`` for data-driven strategies.
        include_bias: prune biases too.
        device: ``"cpu" | "cuda" | "auto"``: where the copy is pruned (and returned);
            ``None`` keeps the model's own device.
        params: extra strategy parameters.
    """
    if not isinstance(model, nn.Module):  # a state dict raised "no attribute 'named_parameters'" (an audit)
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}"
                        + ("; load a state dict into its model first (model.load_state_dict)."
                           if isinstance(model, dict) else "."))
    if isinstance(strategy, str):
        strategy = get_strategy(strategy, scope=scope, seed=seed, include_bias=include_bias, **params)
    elif not isinstance(strategy, Strategy):
        raise TypeError(f"strategy must be a registry name ({', '.join(STRATEGIES)}) or a Strategy, "
                        f"got {type(strategy).__name__}.")
    if current is not None:
        validate_masks(model, current)
    if batch is not None:
        check_batch(model, batch)
    require_finite(model, "prune")  # NaN scores have no rank, and a pruned NaN would stay NaN (NaN * 0)
    if not check_prunable(model):  # nothing to prune, by every strategy alike (the data-driven ones raised inside)
        check_sparsity(sparsity)
        return Pruned(copy.deepcopy(model), {})
    work = copy.deepcopy(model)
    if current is not None:  # scored as the sparse network it is: data-driven scores (RigL's gradients) saw the
        apply_masks(work, current)  # pruned weights' old values (an audit)
    if device is not None:
        dev = resolve_device(device)
        work = work.to(dev)
        current = {n: m.to(dev) for n, m in current.items()} if current is not None else None
        batch = tuple(t.to(dev) for t in batch) if batch is not None else None
    masks = strategy.compute_masks(work, sparsity, current=current, batch=batch)
    apply_masks(work, masks)  # validates them
    return Pruned(work, masks)


def check_prunable(model: nn.Module) -> bool:
    """Whether ``model`` has a Linear or Conv2d weight; ``ValueError`` for one of width 0.

    A model without one prunes nothing (empty masks) under every strategy: SNIP and Taylor raised StopIteration and
    SynFlow and GraSP a torch error. A layer of width 0 made N:M, ER and the report divide by zero (an audit).
    """
    weights = prunable_parameters(model)
    empty = [f"{name} {tuple(w.shape)}" for name, w in weights.items() if w.numel() == 0]
    if empty:
        raise ValueError(f"Layers of width 0 cannot be pruned: {', '.join(empty)}.")
    return bool(weights)


def check_batch(model: nn.Module, batch: Batch) -> None:
    """Raise one clear ``ValueError`` unless ``batch`` is ``(inputs, labels)`` that ``model`` can score.

    One sample goes through a copy of the model first, so a batch of the wrong shape says so here
    instead of as a matrix-size error deep inside a data-driven strategy.
    """
    import torch

    if not (isinstance(batch, (tuple, list)) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch)):
        raise ValueError("batch must be (inputs, labels), two tensors.")
    x, y = batch
    if len(x) == 0 or len(x) != len(y) or y.dim() != 1 or y.is_floating_point() or y.is_complex():
        raise ValueError(f"batch must hold N >= 1 inputs and N whole-number labels, got inputs {tuple(x.shape)} and "
                         f"labels {tuple(y.shape)} {str(y.dtype).removeprefix('torch.')}.")
    work = copy.deepcopy(model).eval()
    device = next((q.device for q in work.parameters()), torch.device("cpu"))
    try:
        with torch.no_grad():
            logits = work(x[:1].to(device))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"batch inputs of shape {tuple(x.shape)} do not fit the model ({first}).") from None
    if logits.dim() != 2 or int(y.min()) < 0 or int(y.max()) >= logits.shape[1]:
        raise ValueError(f"batch labels must be 0..{logits.shape[-1] - 1} for this model's {logits.shape[-1]} class "
                         f"scores, found {int(y.min())}..{int(y.max())}.")


__all__ = [
    "KINDS",
    "STRATEGIES",
    "Batch",
    "MaskTimeline",
    "Pruned",
    "Ranking",
    "ScheduleResult",
    "ScoreStrategy",
    "Strategy",
    "get_one_shot_strategy",
    "get_strategy",
    "is_scheduled",
    "one_shot_strategy_names",
    "prune",
    "scheduled_strategy_names",
    "select_lowest",
    "strategy_names",
    "wants_batch",
    "zeros_to_prune",
]
