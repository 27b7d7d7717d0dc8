"""The Layer sensitivity page's state: the per-layer scan of the session's dense model and the guided targets.

The scan (``sparsity_viz.sensitivity.sensitivity_scan`` on the session's *dense* model, which is
never changed) runs under a progress bar and a Stop button (``runs.run_with_stop``) and is kept
per (dense fingerprint, dataset, ``ScanConfig``) in this session's ``SENSITIVITY`` cache. The
per-layer targets are ``pruning.sensitivity_guided.suggest_targets`` on the kept scan; the
sentence under the figure is ``sensitivity.describe_scan``. The workbench is left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from sparsity_viz.pruning import STRATEGIES
from sparsity_viz.pruning.sensitivity_guided import suggest_targets
from sparsity_viz.sensitivity import describe_scan, scan_strategy_names, sensitivity_scan

from . import keys
from .cache import SENSITIVITY, session_cache
from .runs import run_with_stop
from .settings import store, stored
from .workbench import bench, dataset

LEVEL_OPTIONS = (30, 50, 70, 80, 90, 95, 98, 99)  # % (the page's level choices)
SENS_DEFAULTS = {"strategy": "magnitude", "levels": [50, 70, 90, 95, 99], "seeds": 1, "target": 90}


@dataclass(frozen=True)
class ScanConfig:
    """What the page's widgets say: one scan (a cache key)."""

    strategy: str
    levels: tuple[float, ...]  # fractions, sorted
    seeds: tuple[int, ...] = (0,)

    def describe(self) -> str:
        label = STRATEGIES[self.strategy].label if self.strategy in STRATEGIES else self.strategy
        return (f"{label}, levels {', '.join(f'{100 * v:g} %' for v in self.levels)}, "
                f"{len(self.seeds)} seed{'s' if len(self.seeds) != 1 else ''}")


def stored_sensitivity() -> dict:
    return stored(keys.STORED_SENSITIVITY, SENS_DEFAULTS, {"seeds": (1, 5), "target": (10, 99)},  # the widgets' ranges
                  {"strategy": scan_strategies(), "levels": LEVEL_OPTIONS})  # and choices: others are said, not dropped


def store_sensitivity(**settings: Any) -> None:
    store(keys.STORED_SENSITIVITY, SENS_DEFAULTS, **settings)


def scan_strategies() -> dict[str, str]:
    """Strategies a scan can prune one layer with, name -> label (one-shot, per-layer scope)."""
    return {n: STRATEGIES[n].label for n in scan_strategy_names()}


def _key(cfg: ScanConfig) -> tuple:
    wb = bench()
    return (wb.fingerprint, wb.dataset, cfg)


def scan_result(cfg: ScanConfig) -> pd.DataFrame | None:
    """The kept scan of ``cfg`` for the session's dense model (None when not run yet)."""
    return session_cache(SENSITIVITY).get(_key(cfg))


def scan_run(cfg: ScanConfig) -> None:  # returns only when training diverged (run_with_stop)
    """Run the scan under a progress bar and a Stop button; the page reruns and finds it with ``scan_result``."""
    wb = bench()
    ds = dataset(wb)
    key = _key(cfg)

    def keep(frame: pd.DataFrame) -> None:
        session_cache(SENSITIVITY)[key] = frame

    run_with_stop(lambda progress, stop: sensitivity_scan(wb.dense, ds, cfg.levels, strategy=cfg.strategy,
                                                          seeds=cfg.seeds, progress=progress, stop=stop),
                  keep, key="sens_scan", text="Pruning one layer at a time...")


def guided_targets(scan: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    """Per-layer levels the sensitivity-guided strategy picks for ``sparsity`` overall (``suggest_targets``)."""
    return suggest_targets(scan, sparsity)


def scan_reading(scan: pd.DataFrame, max_drop: float = 0.01) -> str:
    """The sentence the page prints under the figure (``sensitivity.describe_scan``)."""
    return describe_scan(scan, max_drop)
