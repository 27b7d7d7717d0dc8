"""Dynamic sparse training at a fixed parameter budget: SET (random regrowth) and RigL
(gradient regrowth).

Mocanu et al. 2018, "Scalable training of artificial neural networks with
adaptive sparse connectivity inspired by network science" (SET); Evci et al.
2020, "Rigging the Lottery: Making All Tickets Winners" (RigL). The network is
sparse from the start and stays at exactly the same number of weights per
layer; every ``every`` steps a fraction of the survivors with the smallest |w|
is *dropped* and the same number of dead connections is *regrown* -- at random
(SET) or where the dense gradient |dL/dw| is largest (RigL). The drop fraction
decays with a cosine from ``drop_fraction`` to 0 at ``end`` of training (RigL).
Regrown weights start at 0. These strategies revive weights by design
(``regrows = True``).

One ``compute_masks(model, s, current, batch)`` call is one such update: with
no ``current`` it is magnitude pruning to ``s`` (the starting topology); with
``current`` it first prunes to the budget by magnitude, then drops and regrows
``round(drop_fraction * alive)`` connections per layer (never regrowing the
ones just dropped), so every layer holds exactly ``round(s * numel)`` zeros.
Both are *scheduled* strategies (``kind = "scheduled"``): sweeps and pages run
them with ``run``, which trains through ``training.train`` with a
``DropAndGrowHook`` and records when each connection died and regrew;
``compute_masks`` serves the one-shot contract. Shines: training sparse
networks from scratch at a fixed memory / compute budget; RigL matches
dense-to-sparse pruning at high sparsity.
"""

from __future__ import annotations

import copy
import math

import torch

from ..data import Dataset
from ..masks import Masks, apply_masks
from ..models import prunable_parameters
from ..training import TrainConfig, TrainHook, TrainState, train
from ._gradients import loss_gradients
from .base import check_sparsity, score_dtype, select_lowest
from .erdos_renyi import keep_lowest_count
from .magnitude import MagnitudeStrategy
from .schedule import MaskTimeline, ScheduleResult


def cosine_drop_fraction(step: int, total: int, initial: float, end: float = 0.75) -> float:
    """RigL's cosine decay: ``initial/2 * (1 + cos(pi * step / (end * total)))``, 0 after ``end``."""
    stop_at = end * total
    if stop_at <= 0 or step >= stop_at:
        return 0.0
    return initial / 2 * (1 + math.cos(math.pi * step / stop_at))


def drop_and_grow(weights: torch.Tensor, mask: torch.Tensor, grow_scores: torch.Tensor, k: int) -> torch.Tensor:
    """Drop the ``k`` alive entries with the smallest |w|, regrow the ``k`` best-scoring dead ones.

    Entries dropped in this very update are not candidates for regrowth; ``k``
    is capped so that the number of survivors is unchanged.
    """
    alive = int(mask.sum())
    dead = mask.numel() - alive
    k = max(0, min(k, alive, dead))
    if k == 0:
        return mask.clone()
    weights, grow_scores = weights.to(mask.device), grow_scores.to(mask.device)  # a CUDA model's, CPU masks
    after_drop = keep_lowest_count(weights.abs(), dead + k, mask)  # the k smallest survivors go
    dropped = mask & ~after_drop
    candidates = ~mask  # dead before this update
    s = grow_scores.detach().to(score_dtype([grow_scores])).flatten().clone()
    s[~candidates.flatten()] = float("-inf")
    order = torch.argsort(-s, stable=True)[:k]  # highest score first, earlier on ties
    grown = after_drop.clone().flatten()
    grown[order] = True
    out = grown.view(mask.shape)
    assert int(out.sum()) == alive and not (out & dropped).any()
    return out


class DynamicSparseStrategy(MagnitudeStrategy):
    """Shared machinery of SET and RigL; subclasses choose the regrowth scores."""

    regrows = True
    kind = "scheduled"
    seeded = True  # unlike plain magnitude: regrowth and random init draw from the seed
    scopes = ("layer",)
    drop_fraction = 0.3
    every = 50  # steps between topology updates (RigL uses 100 on ImageNet; small data, small dT)
    end = 0.75  # fraction of training after which the topology is frozen

    def __init__(self, scope=None, seed=0, include_bias=False, drop_fraction: float | None = None,
                 every: int | None = None, end: float | None = None, init: str = "magnitude"):
        super().__init__(scope=scope, seed=seed, include_bias=include_bias)
        self.drop_fraction = float(drop_fraction if drop_fraction is not None else type(self).drop_fraction)
        self.every = max(1, int(every if every is not None else type(self).every))
        self.end = float(end if end is not None else type(self).end)
        # NaN failed mid-run inside int(), 5.0 or -1.0 ran anyway (an audit)
        if not 0.0 <= self.drop_fraction <= 1.0:
            raise ValueError(f"drop_fraction must be in [0, 1], got {drop_fraction!r}.")
        if not 0.0 <= self.end <= 1.0:
            raise ValueError(f"end must be a fraction of training in [0, 1], got {end!r}.")
        if init not in ("magnitude", "random", "erdos_renyi"):
            raise ValueError("init must be 'magnitude', 'random' or 'erdos_renyi'.")
        self.init = init
        self._updates = 0

    def grow_scores(self, model, masks: Masks, batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def compute_masks(self, model, sparsity, current=None, batch=None):
        check_sparsity(sparsity)
        if self.needs_data and batch is None:
            raise ValueError(f"Strategy {self.name!r} needs a batch of data (inputs, labels).")
        budget = select_lowest(self.scores(model, batch), sparsity, "layer", current)
        if current is None:
            return budget
        generator = torch.Generator().manual_seed(self.seed)
        return self.update(model, budget, self.drop_fraction, batch, generator)

    def update(self, model, masks: Masks, fraction: float, batch, generator) -> Masks:
        """One drop-and-grow step at fixed per-layer budget."""
        weights = {n: p.detach() for n, p in prunable_parameters(model, self.include_bias).items()}
        scores = self.grow_scores(model, masks, batch, generator)
        return {n: drop_and_grow(weights[n], masks[n], scores[n], int(round(fraction * int(masks[n].sum()))))
                for n in masks}

    def initial_masks(self, model, sparsity) -> Masks:
        if self.init == "magnitude":
            return select_lowest(MagnitudeStrategy.scores(self, model, None), sparsity, "layer")
        if self.init == "erdos_renyi":
            from .erdos_renyi import ErdosRenyiStrategy

            return ErdosRenyiStrategy(seed=self.seed, include_bias=self.include_bias).compute_masks(model, sparsity)
        g = torch.Generator().manual_seed(self.seed)
        params = prunable_parameters(model, self.include_bias)
        return select_lowest({n: torch.rand(p.shape, generator=g) for n, p in params.items()}, sparsity, "layer")

    def run(self, model, dataset: Dataset, sparsity: float, config: TrainConfig = TrainConfig(epochs=3),
            *, callback=None, progress=None, stop=None) -> ScheduleResult:
        """Sparse training of a copy of ``model`` at ``sparsity`` with periodic drop-and-grow.

        Raises:
            TrainingDiverged: the training diverged.
        """
        check_sparsity(sparsity)
        timeline = MaskTimeline.dense(model, self.include_bias)
        hook = DropAndGrowHook(self, self.initial_masks(model, sparsity), timeline, seed=self.seed)
        timeline.record(0, timeline.initial, hook.masks)
        if config.epochs == 0:
            work, history, stopped = apply_masks(copy.deepcopy(model), hook.masks), [], False
        else:
            result = train(model, dataset, config, masks=hook.masks, hooks=(hook,), callback=callback,
                           progress=progress, stop=stop)
            work, history, stopped = result.model, result.history, result.stopped
        return ScheduleResult(work.cpu(), {n: m.cpu() for n, m in hook.masks.items()}, timeline, history, stopped)


class DropAndGrowHook(TrainHook):
    """Every ``strategy.every`` steps until ``strategy.end`` of training: one drop-and-grow update.

    Attributes:
        masks: the masks in force; ``timeline`` records every update.
    """

    schedules_masks = True  # train() refuses zero_threshold beside it

    def __init__(self, strategy: DynamicSparseStrategy, masks: Masks, timeline: MaskTimeline, seed: int = 0):
        self.strategy, self.masks, self.timeline = strategy, masks, timeline
        self.generator = torch.Generator().manual_seed(seed)

    def after_step(self, state: TrainState) -> Masks | None:
        s = self.strategy
        if state.step % s.every or state.step >= s.end * state.total_steps:
            return None
        fraction = cosine_drop_fraction(state.step, state.total_steps, s.drop_fraction, s.end)
        current = state.masks
        new = s.update(state.model, {n: m.cpu() for n, m in current.items()}, fraction, state.batch, self.generator)
        self.timeline.record(state.step, current, new)
        _reset_optimizer_state(state, current, new)
        self.masks = new
        return new


@torch.no_grad()
def _reset_optimizer_state(state: TrainState, current: Masks, new: Masks) -> None:
    """A regrown weight starts from zero with no history: zero its momentum / Adam moments, as RigL's reference
    code (``reset_momentum``) does. They had built up from the gradients it kept getting while pruned (an audit)."""
    params = dict(state.model.named_parameters())
    for name, mask in new.items():
        p = params.get(name)
        if p is None:
            continue
        grown = (mask & ~current[name].cpu()).to(p.device)
        if grown.any():
            for value in state.optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:  # per-weight state, not Adam's step count
                    value[grown] = 0


class SETStrategy(DynamicSparseStrategy):
    name = "set"
    label = "SET (dynamic sparse, random regrowth)"

    def grow_scores(self, model, masks, batch, generator):
        return {n: torch.rand(m.shape, generator=generator) for n, m in masks.items()}


class RigLStrategy(DynamicSparseStrategy):
    name = "rigl"
    label = "RigL (dynamic sparse, gradient regrowth)"
    needs_data = True

    def grow_scores(self, model, masks, batch, generator):
        if batch is None:
            raise ValueError("RigL needs a batch of data to regrow by gradient.")
        _, (grads,) = loss_gradients(model, batch, self.include_bias)
        return {n: grads[n].abs() for n in masks}
