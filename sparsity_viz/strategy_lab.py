"""The strategy lab's experiments as frozen configs and plain calls: compare, profile, survival, schedule.

Each config is frozen, so a caller (the app's Compare and Survival pages) can keep
results per config. Long calls take ``progress(fraction, text)`` and ``stop`` and
return what they finished.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import nn

from .data import Dataset
from .experiments import sweep
from .pruning import get_strategy
from .training import TrainConfig

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class CompareConfig:
    """The Compare page's sweep: strategies x levels x seeds, optionally also fine-tuned."""

    strategies: tuple[str, ...]
    levels: tuple[float, ...]
    seeds: int = 1
    finetune_epochs: int = 0  # > 0: the one-shot curves AND the fine-tuned ones
    random_baseline: bool = True


@dataclass(frozen=True)
class ProfileConfig:
    """Per-layer sparsity profile of each strategy at one sparsity."""

    strategies: tuple[str, ...]
    sparsity: float


@dataclass(frozen=True)
class SurvivalConfig:
    """Two (strategy, seed) pairs pruned to one sparsity."""

    a: tuple[str, int]
    b: tuple[str, int]
    sparsity: float


@dataclass(frozen=True)
class ScheduleConfig:
    """One schedule-driven run (gradual / iterative / set / rigl) from the dense model."""

    strategy: str
    sparsity: float
    epochs: int
    lr: float


def skipped_strategies(frames: list[pd.DataFrame]) -> dict[str, str]:
    """``{strategy: reason}`` of strategies a set of sweeps left out and none of them ran."""
    ran = {s for f in frames if "strategy" in f for s in f["strategy"]}
    skipped: dict[str, str] = {}
    for frame in frames:
        for name, reason in (frame.attrs.get("skipped") or {}).items():
            if name not in ran:
                skipped.setdefault(name, reason)
    return skipped


def compare_sweep(model: nn.Module, dataset: Dataset, config: CompareConfig, finetune: TrainConfig | None = None, *,
                  progress: Progress | None = None, stop: Callable[[], bool] | None = None,
                  device: str = "cpu", executor: Any = None, store: Any = None) -> pd.DataFrame:
    """The one-shot sweep of ``config`` and, with ``finetune``, the same sweep fine-tuned.

    ``executor`` and ``store`` (a results store: finished points written, stored ones read
    back) go to both ``experiments.sweep`` calls.

    Returns one frame with a ``finetuned`` column; ``attrs``: ``dense_accuracy``,
    ``cancelled`` (a stop kept the finished points) and ``skipped`` (``{strategy: reason}``
    for strategies no pass could run, e.g. scheduled ones without a training config).
    """
    runs = [None, finetune] if finetune is not None else [None]
    parts = []
    for i, ft in enumerate(runs):
        def on_point(fraction: float, row: dict, i: int = i) -> None:
            if progress is not None:
                tag = " fine-tuned" if row.get("finetune_epochs") else ""
                progress((i + fraction) / len(runs), f"{row['strategy']}{tag} at {100 * row['sparsity']:g} %")

        part = sweep(model, dataset, list(config.strategies), list(config.levels), range(config.seeds),
                     finetune=ft, baselines=config.random_baseline, progress=on_point, stop=stop, device=device,
                     executor=executor, store=store)
        part["finetuned"] = ft is not None
        parts.append(part)
        if part.attrs.get("cancelled"):
            break
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs["dense_accuracy"] = parts[0].attrs.get("dense_accuracy")
    frame.attrs["cancelled"] = any(p.attrs.get("cancelled") for p in parts)
    frame.attrs["skipped"] = skipped_strategies(parts)
    return frame


def run_schedule(model: nn.Module, dataset: Dataset, config: ScheduleConfig, *, progress: Progress | None = None,
                 stop: Callable[[], bool] | None = None):
    """Train a copy of ``model`` with a schedule-driven strategy; returns its ``ScheduleResult``."""
    tc = TrainConfig(epochs=config.epochs, lr=config.lr, device="cpu")

    def on_progress(fraction: float) -> None:
        if progress is not None:
            progress(fraction, "training while pruning")

    return get_strategy(config.strategy).run(model, dataset, config.sparsity, tc, progress=on_progress, stop=stop)
