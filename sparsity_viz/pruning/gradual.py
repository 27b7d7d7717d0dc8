"""Gradual magnitude pruning with the cubic schedule of Zhu & Gupta (AGP).

Zhu & Gupta 2017, "To prune, or not to prune: exploring the efficacy of pruning
for model compression". Instead of pruning once, sparsity rises during training
from ``s_i`` to the target ``s_f`` over ``n`` pruning events spaced ``dt``
steps apart, following

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))**3

fast at first, when there are many redundant weights, then slowly, so the
network can recover between events. At every event the smallest-|w| survivors
(per layer, or global) are pruned; pruned weights never come back.

``compute_masks`` (the one-shot contract) is plain magnitude at the target, the
mask AGP would reach if the weights did not move; the schedule itself runs in
``run(model, dataset, sparsity, config)``, which trains and returns the final
model, masks and a timeline of when each connection died. Shines: the best
accuracy for a given final sparsity when you can afford a training run;
no hyper-parameter beyond the schedule's start and end.
"""

from __future__ import annotations

from ..data import Dataset
from ..masks import full_masks
from ..training import TrainConfig
from .base import check_sparsity, select_lowest
from .magnitude import MagnitudeStrategy
from .schedule import MaskTimeline, ScheduleResult, masked_training


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
    scopes = ("layer", "global")
    events = 10  # number of pruning events n
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

    def event_steps(self, total_steps: int) -> list[int]:
        """The training steps (1-based) at which pruning happens: ``n`` events from t0 to the end step."""
        b = max(1, round(self.begin * total_steps))
        e = max(b, round(self.end * total_steps))
        if self.events == 1:
            return [e]
        return sorted({round(b + k * (e - b) / (self.events - 1)) for k in range(self.events)})

    def run(self, model, dataset: Dataset, sparsity: float, config: TrainConfig = TrainConfig(epochs=3),
            *, callback=None, progress=None, stop=None) -> ScheduleResult:
        """Train a copy of ``model`` while pruning it to ``sparsity`` on the cubic schedule."""
        check_sparsity(sparsity)
        steps_per_epoch = -(-len(dataset.y_train) // config.batch_size)
        total = steps_per_epoch * max(1, config.epochs)
        when = self.event_steps(total)
        begin, end = when[0], when[-1]
        timeline = MaskTimeline.dense(model, self.include_bias)
        masks = full_masks(model, self.include_bias)
        history: list[dict] = []
        schedule: list[tuple[int, float]] = []

        def on_step(step, work, current, batch):
            if step not in when:
                return None
            level = sparsity if step == end else agp_sparsity(step, sparsity, self.initial, begin, end)
            level = max(level, 1.0 - sum(int(m.sum()) for m in current.values()) / sum(m.numel() for m in current.values())) \
                if self.scope == "global" else level
            new = _monotone_select(self.scores(work, None), level, self.scope, current)
            timeline.record(step, current, new)
            schedule.append((step, level))
            return new

        work, masks, stopped = masked_training(model, dataset, config, masks, on_step=on_step,
                                               callback=callback, progress=progress, stop=stop, history=history)
        return ScheduleResult(work.cpu(), {n: m.cpu() for n, m in masks.items()}, timeline, history, stopped,
                              schedule)


def _monotone_select(scores, level, scope, current):
    """Magnitude selection at ``level`` that never prunes fewer than ``current`` already has."""
    if scope == "global":
        return select_lowest(scores, level, scope, current)
    out = {}
    for n, s in scores.items():
        dead = int((~current[n]).sum()) / s.numel()
        out[n] = select_lowest({n: s}, max(level, dead), "layer", {n: current[n]})[n]
    return out
