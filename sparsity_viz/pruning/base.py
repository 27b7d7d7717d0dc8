"""The strategy contract and the shared exact-count mask selection.

A strategy turns a model (and optionally a batch of data and the masks already in
force) into new masks at a target sparsity. Most strategies are *score based*:
they give every prunable weight an importance score, and the lowest-scoring
weights are pruned, either per layer or over all layers at once (global scope).
``select_lowest`` does that selection exactly to the element, deterministically,
and never revives a weight that ``current`` already pruned.

Every strategy declares its ``kind``:

* ``"one_shot"``: ``compute_masks`` is the strategy. ``run`` prunes once (with a
  seeded data batch when ``needs_data``), then fine-tunes ``config.epochs`` epochs
  with the masks held.
* ``"scheduled"`` (gradual/AGP, iterative/IMP, SET, RigL): the strategy prunes
  *while it trains*; its ``run`` overrides the base one and trains through
  ``training.train`` with hooks. Its ``compute_masks`` only serves the one-shot
  contract (masks, counts, no revival); sweeps and pages run it with ``run``.

Both kinds answer ``run(model, dataset, sparsity, config) -> ScheduleResult`` and
``training_epochs(sparsity, config)``, so callers dispatch on ``kind``, never on
names or types.
"""

from __future__ import annotations

import copy
import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import ClassVar

import torch
from torch import nn

from ..data import Dataset, data_batch
from ..masks import Masks, apply_masks, full_masks, validate_masks
from ..training import TrainConfig, train
from .schedule import MaskTimeline, ScheduleResult

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, labels)

SCOPES = ("layer", "global")
KINDS = ("one_shot", "scheduled")


def zeros_to_prune(sparsity: float, numel: int) -> int:
    """How many of ``numel`` entries to prune for a target ``sparsity``.

    Same rounding as ``torch.nn.utils.prune`` (Python ``round``), so counts agree.
    """
    check_sparsity(sparsity)
    return int(round(sparsity * numel))


def check_sparsity(sparsity: float) -> None:
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real):
        raise ValueError(f"Sparsity must be a number in [0, 1], got {sparsity!r}.")  # True is not 100 %
    if not (0.0 <= float(sparsity) <= 1.0) or sparsity != sparsity:
        raise ValueError(f"Sparsity must be a fraction in [0, 1], got {sparsity!r}.")


def wants_batch(strategy) -> bool:
    """Whether a caller that has data should pass a ``batch`` to this strategy (an instance or its class): it
    needs one, or reads the input shape off it (SynFlow guessed 28x28 images for a conv model without one)."""
    return bool(strategy.needs_data or strategy.reads_input_shape)


MAX_SEED = 2**32 - 1  # what numpy and torch generators take


def checked_seed(seed, what: str = "A seed") -> int:
    """``seed`` as an int in 0..MAX_SEED; anything else raises one clear ``ValueError`` (``what`` names it)."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{what} is a whole number from 0 to {MAX_SEED}, got {seed!r} ({type(seed).__name__}).")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"{what} is a whole number from 0 to {MAX_SEED}, got {seed}.")
    return int(seed)


class Strategy(ABC):
    """Base class of every pruning strategy.

    Class attributes describe the strategy to the registry, the UI and the
    contract tests:
        name: registry key.
        label: human name for menus.
        needs_data: ``compute_masks`` requires a ``batch``.
        reads_input_shape: ``compute_masks`` reads the input shape off a ``batch`` when given one (SynFlow's
            all-ones input); callers with data pass one (``wants_batch``).
        regrows: may revive weights that ``current`` pruned (dynamic sparse training).
        granularity: ``"weight"`` or ``"row"`` (whole output neurons / filters).
        kind: ``"one_shot"`` (prunes once) or ``"scheduled"`` (prunes while training;
            see the module docstring).
        seeded: the masks may depend on ``seed`` (random draws, a seeded data batch).
            False promises the same masks for every seed, so a sweep computes an
            untrained point once and copies it to the other seeds. True is the safe default.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    kind: ClassVar[str] = "one_shot"
    needs_data: ClassVar[bool] = False
    reads_input_shape: ClassVar[bool] = False
    seeded: ClassVar[bool] = True
    regrows: ClassVar[bool] = False
    granularity: ClassVar[str] = "weight"
    scopes: ClassVar[tuple[str, ...]] = ("layer",)

    def __init__(self, scope: str | None = None, seed: int = 0, include_bias: bool = False):
        scope = scope or self.scopes[0]
        if scope not in self.scopes:
            raise ValueError(f"Strategy {self.name!r} supports scope {' / '.join(self.scopes)}, not {scope!r}.")
        self.scope = scope
        self.seed = checked_seed(seed)
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

    @property
    def scheduled(self) -> bool:
        """True for strategies that prune while training (``kind == "scheduled"``)."""
        return self.kind == "scheduled"

    def ranking(self, model: nn.Module, batch: Batch | None = None) -> Ranking | None:
        """One sort from which ``ranking.masks(s)`` equals ``compute_masks(model, s)`` for every ``s``.

        None when the strategy's masks are not a cut of fixed scores (the default).
        """
        return None

    def training_epochs(self, sparsity: float, config: TrainConfig) -> int:
        """Epochs of training ``run(model, dataset, sparsity, config)`` spends (one-shot: the fine-tuning)."""
        return config.epochs

    def run(self, model: nn.Module, dataset: Dataset, sparsity: float, config: TrainConfig = TrainConfig(epochs=0),
            *, callback=None, progress=None, stop=None) -> ScheduleResult:
        """Prune a copy of ``model`` to ``sparsity`` once, then fine-tune it ``config.epochs`` epochs.

        Data-driven strategies get ``data_batch(dataset, seed=self.seed)``. With
        ``config.epochs == 0`` the result's model and masks equal ``prune(...)``'s.
        Scheduled strategies override this and prune while they train.

        Args:
            model: the dense model (not modified).
            dataset: train split for the batch and the fine-tuning.
            sparsity: the target sparsity.
            config: the fine-tuning (masks held; its ``seed`` seeds the shuffles).
            callback: called with each epoch's ``EpochStats``.
            progress: called with the finished fraction in [0, 1].
            stop: checked every step; the result says ``stopped``.

        Raises:
            TrainingDiverged: the fine-tuning diverged.
        """
        batch = data_batch(dataset, seed=self.seed) if wants_batch(self) else None
        work = copy.deepcopy(model)
        masks = self.compute_masks(work, sparsity, batch=batch)
        validate_masks(work, masks)
        apply_masks(work, masks)
        timeline = MaskTimeline.dense(model, self.include_bias)
        timeline.record(0, timeline.initial, masks)
        history, stopped = [], False
        if config.epochs > 0:
            trained = train(work, dataset, config, masks=masks, callback=callback, progress=progress, stop=stop)
            work, history, stopped = trained.model, trained.history, trained.stopped
        return ScheduleResult(work.cpu(), {n: m.cpu() for n, m in masks.items()}, timeline, history, stopped,
                              [(0, float(sparsity))])

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

    def ranking(self, model, batch=None):
        """The sort of this strategy's scores (subclasses that override ``compute_masks`` return None)."""
        if self.needs_data and batch is None:
            raise ValueError(f"Strategy {self.name!r} needs a batch of data (inputs, labels).")
        return Ranking(self.scores(model, batch), self.scope)


def score_dtype(scores: Iterable[torch.Tensor]) -> torch.dtype:
    """The dtype scores are ranked in: float64 when any of them is float64 (in float32, distinct doubles such as
    1 + 1e-12 and 1 tie, and 1e300 overflows to inf: a float64 model's smallest weights were misranked), else
    float32."""
    return torch.float64 if any(t.dtype == torch.float64 for t in scores) else torch.float32


class Ranking:
    """Prunable entries sorted lowest score first, once; ``masks(s)`` cuts any sparsity from it.

    NaN scores rank lowest; entries already pruned in ``current`` rank before
    everything (score -inf), so they are never revived. Ties are broken by
    position (stable sort), which makes every cut deterministic. A sweep over
    many levels sorts once and cuts many times.
    """

    def __init__(
        self,
        scores: Mapping[str, torch.Tensor],
        scope: str = "layer",
        current: Mapping[str, torch.Tensor] | None = None,
    ):
        if scope not in SCOPES:
            raise ValueError(f"Unknown scope {scope!r}; choose one of {', '.join(SCOPES)}.")
        self.scope = scope
        self.shapes = {n: s.shape for n, s in scores.items()}
        self.devices = {n: s.device for n, s in scores.items()}
        ranked: dict[str, torch.Tensor] = {}
        dtype = score_dtype(scores.values())
        for name, t in scores.items():
            t = torch.nan_to_num(t.detach().to(dtype).flatten().clone(), nan=float("-inf"))
            if current is not None and name in current:
                t[~current[name].flatten().to(t.device)] = float("-inf")
            ranked[name] = t
        self.dead = {n: _dead_count(current, n) for n in ranked}
        if scope == "layer":
            self.orders = {n: torch.argsort(t, stable=True) for n, t in ranked.items()}
        elif ranked:
            self.order = torch.argsort(torch.cat([t.cpu() for t in ranked.values()]), stable=True)
        else:  # nothing to prune (a model without prunable layers): every cut is empty, as with layer scope
            self.order = torch.empty(0, dtype=torch.long)
        self._positions: dict[str, torch.Tensor] | None = None

    def positions(self) -> dict[str, torch.Tensor]:
        """Each entry's place in the ascending sort (within its layer, or over all layers), shaped like it.

        Computed once (the inverse of the sort); entry ``i`` is pruned at a cut of ``k`` iff
        ``positions[i] < k``, so any level is cut by one comparison.
        """
        if self._positions is None:
            if self.scope == "layer":
                self._positions = {n: _inverse(o).view(self.shapes[n]) for n, o in self.orders.items()}
            else:
                flat, self._positions, offset = _inverse(self.order), {}, 0
                for n, shape in self.shapes.items():
                    size = math.prod(shape)
                    self._positions[n] = flat[offset : offset + size].view(shape)
                    offset += size
        return self._positions

    def cut(self, sparsity: float) -> dict[str, int]:
        """Per parameter, the position below which entries are pruned at ``sparsity`` (checked against ``current``).

        Raises:
            ValueError: ``current`` already prunes more than the target allows.
        """
        check_sparsity(sparsity)
        if self.scope == "layer":
            ks = {n: zeros_to_prune(sparsity, math.prod(shape)) for n, shape in self.shapes.items()}
            for n, k in ks.items():
                _check_dead(n, self.dead[n], k)
            return ks
        k = zeros_to_prune(sparsity, sum(math.prod(shape) for shape in self.shapes.values()))
        _check_dead("all layers", sum(self.dead.values()), k)
        return dict.fromkeys(self.shapes, k)

    def masks(self, sparsity: float) -> Masks:
        """Keep-masks pruning exactly ``round(sparsity * n)`` entries per layer (or over all layers)."""
        ks, pos = self.cut(sparsity), self.positions()
        return {n: (pos[n] >= ks[n]).to(self.devices[n]) for n in self.shapes}


def select_lowest(
    scores: Mapping[str, torch.Tensor],
    sparsity: float,
    scope: str = "layer",
    current: Mapping[str, torch.Tensor] | None = None,
) -> Masks:
    """Prune exactly ``round(sparsity * n)`` lowest-scoring entries per layer or globally (see ``Ranking``).

    Raises:
        ValueError: ``current`` already prunes more than the target allows.
    """
    check_sparsity(sparsity)
    return Ranking(scores, scope, current).masks(sparsity)


def _dead_count(current: Mapping[str, torch.Tensor] | None, name: str) -> int:
    if current is None or name not in current:
        return 0
    return int((~current[name]).sum())


def _check_dead(where: str, already: int, k: int) -> None:
    if already > k:
        raise ValueError(
            f"{where}: {already} weights are already pruned, more than the {k} the target sparsity allows; "
            "masks never revive weights, so prune from the dense model to go lower."
        )


def _inverse(order: torch.Tensor) -> torch.Tensor:
    """The inverse permutation of ``order``: ``inv[order[i]] = i`` (int32 where it fits: half the bytes to compare)."""
    dtype = torch.int32 if order.numel() < 2**31 else torch.int64
    inv = torch.empty(order.shape, dtype=dtype, device=order.device)
    inv[order] = torch.arange(order.numel(), dtype=dtype, device=order.device)
    return inv
