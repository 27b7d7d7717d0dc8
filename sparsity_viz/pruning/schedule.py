"""What ``Strategy.run`` returns: the final model and masks, the history, and the timeline
of when each connection died (and regrew).

Scheduled strategies (gradual/AGP, iterative/IMP, SET, RigL) change their masks
*during* training; one-shot strategies prune once, at step 0, then fine-tune.
Both return a ``ScheduleResult`` whose ``MaskTimeline`` stores only the
*changes* of the masks (which connections died / regrew at which step), so a page
can put a slider over pruning steps and call ``timeline.mask_at(step)`` or
colour connections by ``timeline.death_step()``. The training itself runs in
``training.train``, with the schedules plugged in as hooks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, is_dataclass

import pandas as pd
import torch
from torch import nn

from ..masks import Masks, full_masks
from ..training import EpochStats


@dataclass
class MaskEvent:
    """At ``step``, in parameter ``name``: flat indices that died and that regrew."""

    step: int
    name: str
    died: torch.Tensor  # (k,) int64 flat indices
    regrown: torch.Tensor  # (j,) int64 flat indices


@dataclass
class MaskTimeline:
    """Masks over time, stored as the dense start plus change events."""

    initial: Masks
    events: list[MaskEvent] = field(default_factory=list)

    @classmethod
    def dense(cls, model: nn.Module, include_bias: bool = False) -> MaskTimeline:
        return cls(initial=full_masks(model, include_bias))

    def record(self, step: int, old: Masks, new: Masks) -> None:
        """Store what changed from ``old`` to ``new`` at ``step`` (no-op for unchanged layers)."""
        for name, m in new.items():
            o = old.get(name, torch.ones_like(m))
            died = (o & ~m).flatten().nonzero().flatten().cpu()
            regrown = (~o & m).flatten().nonzero().flatten().cpu()
            if died.numel() or regrown.numel():
                self.events.append(MaskEvent(int(step), name, died, regrown))

    @property
    def steps(self) -> list[int]:
        """Sorted distinct steps at which some mask changed (the slider's stops)."""
        return sorted({e.step for e in self.events})

    def mask_at(self, step: int) -> Masks:
        """The masks in force after all changes at steps ``<= step``."""
        masks = {n: m.clone().cpu() for n, m in self.initial.items()}
        for e in self.events:
            if e.step > step:
                continue
            flat = masks[e.name].view(-1)
            flat[e.died] = False
            flat[e.regrown] = True
        return masks

    def death_step(self) -> dict[str, torch.Tensor]:
        """Per connection: the step it last died, -1 if it never died (int64, shaped like the mask)."""
        return self._last("died")

    def regrow_step(self) -> dict[str, torch.Tensor]:
        """Per connection: the step it last regrew, -1 if it never regrew."""
        return self._last("regrown")

    def _last(self, kind: str) -> dict[str, torch.Tensor]:
        out = {n: torch.full(m.shape, -1, dtype=torch.int64) for n, m in self.initial.items()}
        for e in sorted(self.events, key=lambda e: e.step):
            out[e.name].view(-1)[getattr(e, kind)] = e.step
        return out

    def frame(self) -> pd.DataFrame:
        """One row per (step, layer): how many died, regrew, and are alive after the step."""
        rows = []
        alive = {n: int(m.sum()) for n, m in self.initial.items()}
        for e in sorted(self.events, key=lambda e: e.step):
            alive[e.name] += int(e.regrown.numel()) - int(e.died.numel())
            rows.append({"step": e.step, "layer": e.name, "died": int(e.died.numel()),
                         "regrown": int(e.regrown.numel()), "alive": alive[e.name],
                         "total": self.initial[e.name].numel()})
        return pd.DataFrame(rows, columns=["step", "layer", "died", "regrown", "alive", "total"])


@dataclass
class ScheduleResult:
    """What ``Strategy.run`` returns.

    ``history`` holds the training's ``EpochStats`` (one per epoch, all trainings in
    order); for IMP it holds one experiment row (a dict) per round and control instead.
    """

    model: nn.Module
    masks: Masks
    timeline: MaskTimeline
    history: list[EpochStats | dict] = field(default_factory=list)
    stopped: bool = False
    schedule: list[tuple[int, float]] = field(default_factory=list)  # (step, target sparsity) per pruning event

    def history_frame(self) -> pd.DataFrame:
        """The history as a DataFrame, one row per epoch (or per IMP round)."""
        return pd.DataFrame([asdict(h) if is_dataclass(h) else dict(h) for h in self.history])
