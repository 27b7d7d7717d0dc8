"""Changing a trained MoE without touching it: top-k at inference, pruning experts, a short fine-tune.

Every function returns a new model (a deep copy); the input model is never modified, so a
shared, read-only checkpoint can be passed in directly.

* ``with_top_k``: the same weights, a different number of experts per input.
* ``prune_moe``: prune the experts' weights with any registered strategy (the router is not
  an ``nn.Linear`` and is never pruned) and, on top, whole experts (``expert_masks``).
* ``finetune_moe``: ``train_moe`` with the masks held, so the router and the surviving
  experts adapt to what was pruned (inputs move away from a pruned expert only then).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import replace

from ..data import Dataset
from ..masks import Masks, apply_masks
from ..training import TrainConfig, TrainResult
from ..whole_numbers import is_whole
from .model import MoEMLP, expert_masks
from .training import DEFAULT_BALANCE_WEIGHT, train_moe


def with_top_k(model: MoEMLP, k: int) -> MoEMLP:
    """A copy of ``model`` that routes each input to ``k`` experts (``1 <= k <= N``)."""
    if not is_whole(k) or not 1 <= k <= model.num_experts:  # True ran as k=1
        raise ValueError(f"top_k must be between 1 and {model.num_experts}, got {k!r}.")
    out = copy.deepcopy(model)
    out.top_k = int(k)
    for p in out.parameters():
        p.requires_grad_(True)  # a copy of a frozen shared model becomes an ordinary, trainable one
    return out


# SynFlow's all-ones forward gives the router's parameters no gradient (its score is undefined here). Structured
# pruning keeps the model's last layer whole as its classifier, but an MoE has one output layer per expert: every
# other expert lost whole classes (moe_mnist 93.2 % -> 63.0 % at 50 %, an audit).
NOT_FOR_MOE = ("synflow", "structured")


def moe_strategy_names() -> list[str]:
    """The one-shot pruning strategies that prune an MoE's experts (registry order)."""
    from ..pruning import one_shot_strategy_names

    return [n for n in one_shot_strategy_names() if n not in NOT_FOR_MOE]


def check_experts(model: MoEMLP, experts: Iterable[int]) -> tuple[int, ...]:
    """Sorted, unique expert indices; ``ValueError`` naming the valid range for a bad one."""
    given = list(experts)
    odd = [e for e in given if isinstance(e, bool) or int(e) != e]  # 1.7 was truncated to expert 1 (an audit)
    if odd:
        raise ValueError(f"expert indices are whole numbers, got {odd[0]!r}.")
    out = sorted({int(e) for e in given})
    bad = [e for e in out if not 0 <= e < model.num_experts]
    if bad:
        raise ValueError(f"expert {bad[0]} does not exist; this MoE has experts 0..{model.num_experts - 1}.")
    return tuple(out)


def prune_moe(model: MoEMLP, *, experts: Iterable[int] = (), sparsity: float = 0.0,
              strategy: str = "global_magnitude", data: Dataset | None = None, seed: int = 0) -> tuple[MoEMLP, Masks]:
    """A pruned copy of ``model`` and its masks.

    ``sparsity`` of the experts' weights is pruned by ``strategy`` (a one-shot
    ``pruning.STRATEGIES`` name over every expert layer; data-driven ones need ``data`` for
    a seeded training batch), then every weight of the experts in ``experts`` is pruned too.
    The router stays dense.
    """
    from ..data import data_batch
    from ..pruning import get_strategy, prune  # heavy: only when pruning

    chosen = check_experts(model, experts)
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}.")
    work = with_top_k(model, model.top_k)
    masks = expert_masks(work, ())  # all ones
    if sparsity > 0:
        if strategy not in moe_strategy_names():
            raise ValueError(f"strategy must be one of {', '.join(moe_strategy_names())} for an MoE, got {strategy!r}.")
        chosen_strategy = get_strategy(strategy, seed=seed)
        if chosen_strategy.needs_data and data is None:
            raise ValueError(f"{strategy} scores weights on data: pass the dataset.")
        batch = data_batch(data, seed=seed) if chosen_strategy.needs_data else None
        work, masks = prune(work, chosen_strategy, sparsity, batch=batch)
    for name, mask in expert_masks(work, chosen).items():
        masks[name] = masks[name] & mask
    apply_masks(work, masks)
    return work, masks


def finetune_moe(model: MoEMLP, dataset: Dataset, masks: Masks | None, config: TrainConfig, *,
                 balance_weight: float = DEFAULT_BALANCE_WEIGHT, **kwargs) -> MoEMLP:
    """``model`` trained further with the balance loss, pruned weights held at zero; a new model (eval mode).

    Keyword arguments (``callback``, ``progress``, ``stop``) go to ``training.train``; ``finetune_moe_run`` also
    says whether a ``stop`` ended it early.
    """
    return finetune_moe_run(model, dataset, masks, config, balance_weight=balance_weight, **kwargs).model


def finetune_moe_run(model: MoEMLP, dataset: Dataset, masks: Masks | None, config: TrainConfig, *,
                     balance_weight: float = DEFAULT_BALANCE_WEIGHT, **kwargs) -> TrainResult:
    """``finetune_moe``'s ``TrainResult``: the model (eval mode, CPU), its epochs (``history``) and ``stopped``."""
    result, _ = train_moe(with_top_k(model, model.top_k), dataset, config, balance_weight=balance_weight,
                          masks=masks, **kwargs)
    return replace(result, model=result.model.cpu().eval())
