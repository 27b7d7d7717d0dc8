"""Gradual magnitude pruning with the cubic schedule of Zhu & Gupta (AGP).

Zhu & Gupta 2017, "To prune, or not to prune: exploring the efficacy of pruning
for model compression". Instead of pruning once, sparsity rises during training
from ``s_i`` to the target ``s_f`` at pruning steps ``t = t0, t0 + dt, ..., t0 + n * dt``, following

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))**3

Here ``events`` counts those steps including ``t0``: they run from ``t0`` to the end step, so the paper's
``n = events - 1`` and ``dt = (end - t0) / (events - 1)``; the event at ``t0`` prunes to ``s_i``, which changes
nothing when ``s_i = 0`` (the default).

fast at first, when there are many redundant weights, then slowly, so the
network can recover between events. At every event the smallest-|w| survivors
(per layer, or global) are pruned; pruned weights never come back.

A *scheduled* strategy (``kind = "scheduled"``): sweeps and pages run it with
``run(model, dataset, sparsity, config)``, which trains through ``training.train``
with an ``AGPHook`` and returns the final model, masks and a timeline of when
each connection died. ``compute_masks`` serves only the one-shot contract: plain
magnitude at the target, the mask AGP would reach if the weights did not move. Shines: the best
accuracy for a given final sparsity when you can afford a training run;
no hyper-parameter beyond the schedule's start and end.
"""

from __future__ import annotations

import copy

from ..data import Dataset, train_subset_size
from ..masks import Masks, apply_masks, full_masks
from ..training import TrainConfig, TrainHook, TrainState, train
from .base import check_sparsity, select_lowest
from .magnitude import MagnitudeStrategy
from .schedule import MaskTimeline, ScheduleResult


def agp_sparsity(step: int, final: float, initial: float = 0.0, begin: int = 0, end: int = 1000) -> float:
    """Zhu & Gupta's cubic schedule at ``step``: ``initial`` before ``begin``, ``final`` from ``end`` on."""
    if step <= begin:
        return initial
    if step >= end or end <= begin:
        return final
    frac = (step - begin) / (end - begin)
    return final + (initial - final) * (1.0 - frac) ** 3


class GradualStrategy(MagnitudeStrategy):
    name = "gradual"
    label = "Gradual magnitude (AGP, cubic schedule)"
    kind = "scheduled"
    scopes = ("layer", "global")
    events = 10  # pruning steps, t0 included: the paper's n is events - 1 (see the module docstring)
    begin = 0.0  # fraction of training when pruning starts (t0)
    end = 0.7  # fraction of training when the target is reached; the rest recovers

    def __init__(self, scope=None, seed=0, include_bias=False, events: int | None = None,
                 begin: float | None = None, end: float | None = None, initial: float = 0.0):
        super().__init__(scope=scope, seed=seed, include_bias=include_bias)
        self.events = max(1, int(events if events is not None else type(self).events))
        self.begin = float(begin if begin is not None else type(self).begin)
        self.end = float(end if end is not None else type(self).end)
        self.initial = float(initial)
        if not 0.0 <= self.begin <= self.end <= 1.0:
            raise ValueError("AGP needs 0 <= begin <= end <= 1 (fractions of training).")
        if not 0.0 <= self.initial < 1.0:  # -1.0 ran anyway (an audit)
            raise ValueError(f"AGP's initial sparsity must be in [0, 1), got {initial!r}.")

    def event_steps(self, total_steps: int) -> list[int]:
        """The training steps (1-based) at which pruning happens: ``events`` steps from t0 to the end step."""
        b = max(1, round(self.begin * total_steps))
        e = max(b, round(self.end * total_steps))
        if self.events == 1:
            return [e]
        return sorted({round(b + k * (e - b) / (self.events - 1)) for k in range(self.events)})

    def run(self, model, dataset: Dataset, sparsity: float, config: TrainConfig = TrainConfig(epochs=3),
            *, callback=None, progress=None, stop=None) -> ScheduleResult:
        """Train a copy of ``model`` while pruning it to ``sparsity`` on the cubic schedule.

        With ``config.epochs == 0`` there is no schedule: the copy is pruned to the
        target at once (one-shot magnitude).

        Raises:
            ValueError: a target below the strategy's ``initial`` sparsity.
            TrainingDiverged: the training diverged.
        """
        check_sparsity(sparsity)
        if self.initial > sparsity:  # it ended at the initial level while its schedule recorded the target
            raise ValueError(f"AGP's initial sparsity ({self.initial:g}) is above the target ({sparsity:g}); "
                             "the schedule only rises, so set initial <= the target.")
        steps_per_epoch = -(-train_subset_size(dataset, config.train_fraction) // config.batch_size)  # as train() does
        hook = AGPHook(self, sparsity, self.event_steps(steps_per_epoch * max(1, config.epochs)),
                       MaskTimeline.dense(model, self.include_bias), full_masks(model, self.include_bias))
        if config.epochs == 0:
            hook.prune_at(0, model, sparsity)
            work, history, stopped = copy.deepcopy(model), [], False
            apply_masks(work, hook.masks)
        else:
            result = train(model, dataset, config, masks=hook.masks, hooks=(hook,), callback=callback,
                           progress=progress, stop=stop)
            work, history, stopped = result.model, result.history, result.stopped
        return ScheduleResult(work.cpu(), {n: m.cpu() for n, m in hook.masks.items()}, hook.timeline, history,
                              stopped, hook.schedule)


class AGPHook(TrainHook):
    """Prunes by magnitude at the schedule's event steps (a ``TrainHook`` for ``train``).

    Attributes:
        masks: the masks in force; ``timeline`` and ``schedule`` record every event.
    """

    schedules_masks = True  # train() refuses zero_threshold beside it

    def __init__(self, strategy: GradualStrategy, target: float, when: list[int], timeline: MaskTimeline,
                 masks: Masks):
        self.strategy, self.target, self.when = strategy, target, set(when)
        self.begin, self.end = when[0], when[-1]
        self.timeline, self.masks = timeline, masks
        self.schedule: list[tuple[int, float]] = []

    def after_step(self, state: TrainState) -> Masks | None:
        if state.step not in self.when:
            return None
        s = self.strategy
        level = self.target if state.step == self.end else agp_sparsity(state.step, self.target, s.initial,
                                                                         self.begin, self.end)
        return self.prune_at(state.step, state.model, level, state.masks)

    def prune_at(self, step: int, model, level: float, current: Masks | None = None) -> Masks:
        """One pruning event: the smallest-|w| survivors go until ``level`` is reached (never fewer than now)."""
        current = self.masks if current is None else current
        if self.strategy.scope == "global":
            dead = 1.0 - sum(int(m.sum()) for m in current.values()) / sum(m.numel() for m in current.values())
            level = max(level, dead)
        new = _monotone_select(self.strategy.scores(model, None), level, self.strategy.scope, current)
        self.timeline.record(step, current, new)
        self.schedule.append((step, level))
        self.masks = new
        return new


def _monotone_select(scores, level, scope, current):
    """Magnitude selection at ``level`` that never prunes fewer than ``current`` already has."""
    if scope == "global":
        return select_lowest(scores, level, scope, current)
    out = {}
    for n, s in scores.items():
        dead = int((~current[n]).sum()) / s.numel()
        out[n] = select_lowest({n: s}, max(level, dead), "layer", {n: current[n]})[n]
    return out
