"""The strategy contract and the shared exact-count mask selection.

A strategy turns a model (and optionally a batch of data and the masks already in
force) into new masks at a target sparsity. Most strategies are *score based*:
they give every prunable weight an importance score, and the lowest-scoring
weights are pruned, either per layer or over all layers at once (global scope).
``select_lowest`` does that selection exactly to the element, deterministically,
and never revives a weight that ``current`` already pruned.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import nn

from ..masks import Masks, full_masks

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels)

SCOPES = ("layer", "global")


def zeros_to_prune(sparsity: float, numel: int) -> int:
    """How many of ``numel`` entries to prune for a target ``sparsity``.

    Same rounding as ``torch.nn.utils.prune`` (Python ``round``), so counts agree.
    """
    check_sparsity(sparsity)
    return int(round(sparsity * numel))


def check_sparsity(sparsity: float) -> None:
    if not (0.0 <= float(sparsity) <= 1.0) or sparsity != sparsity:
        raise ValueError(f"Sparsity must be a fraction in [0, 1], got {sparsity!r}.")


class Strategy(ABC):
    """Base class of every pruning strategy.

    Class attributes describe the strategy to the registry, the UI and the
    contract tests:
        name: registry key.
        label: human name for menus.
        needs_data: ``compute_masks`` requires a ``batch``.
        regrows: may revive weights that ``current`` pruned (dynamic sparse training).
        granularity: ``"weight"`` or ``"row"`` (whole output neurons / filters).
    """

    name: ClassVar[str]
    label: ClassVar[str]
    needs_data: ClassVar[bool] = False
    regrows: ClassVar[bool] = False
    granularity: ClassVar[str] = "weight"
    scopes: ClassVar[tuple[str, ...]] = ("layer",)

    def __init__(self, scope: str | None = None, seed: int = 0, include_bias: bool = False):
        scope = scope or self.scopes[0]
        if scope not in self.scopes:
            raise ValueError(f"Strategy {self.name!r} supports scope {' / '.join(self.scopes)}, not {scope!r}.")
        self.scope = scope
        self.seed = seed
        self.include_bias = include_bias

    @abstractmethod
    def compute_masks(
        self,
        model: nn.Module,
        sparsity: float,
        current: Masks | None = None,
        batch: Batch | None = None,
    ) -> Masks:
        """Masks reaching ``sparsity`` on ``model``; must not modify ``model``."""

    def expected_zeros(self, model: nn.Module, sparsity: float) -> dict[str, int] | int:
        """Exact number of pruned entries the result must have.

        Per parameter (a dict) for layer scope, a single total for global scope.
        """
        masks = full_masks(model, self.include_bias)
        if self.scope == "global":
            return zeros_to_prune(sparsity, sum(m.numel() for m in masks.values()))
        return {n: zeros_to_prune(sparsity, m.numel()) for n, m in masks.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scope={self.scope!r}, seed={self.seed})"


class ScoreStrategy(Strategy):
    """A strategy defined by per-weight importance scores (higher = keep)."""

    @abstractmethod
    def scores(self, model: nn.Module, batch: Batch | None) -> dict[str, torch.Tensor]:
        """``{param_name: score tensor}`` shaped like each prunable parameter."""

    def compute_masks(self, model, sparsity, current=None, batch=None):
        check_sparsity(sparsity)
        if self.needs_data and batch is None:
            raise ValueError(f"Strategy {self.name!r} needs a batch of data (inputs, labels).")
        scores = {n: s.detach() for n, s in self.scores(model, batch).items()}
        return select_lowest(scores, sparsity, self.scope, current)


def select_lowest(
    scores: Mapping[str, torch.Tensor],
    sparsity: float,
    scope: str = "layer",
    current: Mapping[str, torch.Tensor] | None = None,
) -> Masks:
    """Prune exactly ``round(sparsity * n)`` lowest-scoring entries per layer or globally.

    Entries already pruned in ``current`` count as pruned first (score -inf), so
    they are never revived. Ties are broken by position (stable sort), which makes
    the result deterministic.

    Raises:
        ValueError: ``current`` already prunes more than the target allows.
    """
    check_sparsity(sparsity)
    if scope not in SCOPES:
        raise ValueError(f"Unknown scope {scope!r}; choose one of {', '.join(SCOPES)}.")
    ranked: dict[str, torch.Tensor] = {}
    for name, s in scores.items():
        s = s.detach().float().flatten().clone()
        s = torch.nan_to_num(s, nan=float("-inf"))
        if current is not None and name in current:
            s[~current[name].flatten().to(s.device)] = float("-inf")
        ranked[name] = s
    dead = {n: _dead_count(current, n) for n in ranked}
    if scope == "layer":
        return {
            name: _mask_lowest(s, zeros_to_prune(sparsity, s.numel()), name, dead[name]).view(scores[name].shape)
            for name, s in ranked.items()
        }
    flat = torch.cat([s.cpu() for s in ranked.values()])
    k = zeros_to_prune(sparsity, flat.numel())
    keep = _mask_lowest(flat, k, "all layers", sum(dead.values()))
    masks: Masks = {}
    offset = 0
    for name, s in ranked.items():
        masks[name] = keep[offset : offset + s.numel()].view(scores[name].shape).to(scores[name].device)
        offset += s.numel()
    return masks


def _dead_count(current: Mapping[str, torch.Tensor] | None, name: str) -> int:
    if current is None or name not in current:
        return 0
    return int((~current[name]).sum())


def _mask_lowest(scores: torch.Tensor, k: int, where: str, already: int) -> torch.Tensor:
    """Bool keep-mask over a flat score vector pruning its ``k`` lowest entries."""
    if already > k:
        raise ValueError(
            f"{where}: {already} weights are already pruned, more than the {k} the target sparsity allows; "
            "masks never revive weights, so prune from the dense model to go lower."
        )
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        order = torch.argsort(scores, stable=True)
        keep[order[:k]] = False
    return keep
