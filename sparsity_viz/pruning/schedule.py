"""What schedule-driven strategies share: a masked training loop with a per-step hook, and
the timeline of when each connection died (and regrew).

Gradual (AGP), iterative (IMP) and dynamic (SET / RigL) strategies change their
masks *during* training. Their ``run(...)`` returns a ``ScheduleResult``: the
final model and masks, a per-epoch / per-round history, and a ``MaskTimeline``
that stores only the *changes* of the masks (which connections died / regrew at
which step), so a page can put a slider over pruning steps and call
``timeline.mask_at(step)`` or colour connections by ``timeline.death_step()``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Dataset
from ..devices import resolve_device
from ..masks import Masks, apply_masks, full_masks
from ..training import TrainConfig, _is_stopped, _optimizer, evaluate


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
    """What a schedule-driven ``run`` returns."""

    model: nn.Module
    masks: Masks
    timeline: MaskTimeline
    history: list[dict] = field(default_factory=list)  # one dict per epoch (or per IMP round)
    stopped: bool = False
    schedule: list[tuple[int, float]] = field(default_factory=list)  # (step, target sparsity) per pruning event

    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.history)


StepHook = Callable[[int, nn.Module, Masks, tuple[torch.Tensor, torch.Tensor]], "Masks | None"]


def masked_training(
    model: nn.Module,
    dataset: Dataset,
    config: TrainConfig,
    masks: Masks,
    *,
    on_step: StepHook | None = None,
    callback: Callable[[dict], None] | None = None,
    progress: Callable[[float], None] | None = None,
    stop=None,
    history: list[dict] | None = None,
    extra: dict | None = None,
) -> tuple[nn.Module, Masks, bool]:
    """Train a copy of ``model`` with ``masks``; ``on_step(step, model, masks, batch)`` may return new masks.

    The hook runs after each optimizer step (step numbers start at 1); new masks
    are applied at once, so pruned weights become exactly 0. Regrown weights
    start from 0. Appends one row per epoch to ``history`` and passes it to
    ``callback``. Returns ``(model, masks, stopped)``.
    """
    dev = resolve_device(config.device)
    work = copy.deepcopy(model).to(dev)
    masks = {n: m.to(dev) for n, m in masks.items()}
    apply_masks(work, masks)
    x, y = dataset.x_train.to(dev), dataset.y_train.to(dev)
    optimizer = _optimizer(work, config)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = max(1, math.ceil(len(y) / config.batch_size))
    total = steps_per_epoch * max(1, config.epochs)
    step, stopped = 0, False
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        work.train()
        order = torch.randperm(len(y), generator=generator).to(dev)
        loss_sum, seen = 0.0, 0
        for i in range(0, len(y), config.batch_size):
            if _is_stopped(stop):
                stopped = True
                break
            idx = order[i : i + config.batch_size]
            xb, yb = x[idx], y[idx]
            loss = F.cross_entropy(work(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            apply_masks(work, masks)
            step += 1
            if on_step is not None:
                new = on_step(step, work, masks, (xb, yb))
                if new is not None:
                    masks = {n: m.to(dev) for n, m in new.items()}
                    apply_masks(work, masks)
            loss_sum += float(loss.detach()) * len(yb)
            seen += len(yb)
            if progress is not None:
                progress(min(1.0, step / total))
        if seen == 0:
            break
        test = evaluate(work, dataset.x_test, dataset.y_test, device=str(dev))
        alive = sum(int(m.sum()) for m in masks.values())
        size = sum(m.numel() for m in masks.values())
        row = (extra or {}) | {
            "epoch": epoch, "step": step, "train_loss": loss_sum / seen, "test_accuracy": test.accuracy,
            "test_loss": test.loss, "sparsity": 1.0 - alive / size if size else 0.0,
            "seconds": time.perf_counter() - start,
        }
        if history is not None:
            history.append(row)
        if callback is not None:
            callback(row)
        if stopped:
            break
    work.eval()
    return work, masks, stopped
