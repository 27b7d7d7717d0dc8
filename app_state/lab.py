"""Results kept per configuration: the strategy lab (Compare, Survival maps, Lottery) and the Curves sweeps.

Lab results live in this session, keyed by (dense fingerprint, dataset, frozen config):
moving a widget back to an earlier setting shows the earlier result at once. Curves are
shared between sessions (same dense weights, same config, same frame) and handed out
as copies. The experiments themselves are library calls (``sparsity_viz.strategy_lab``,
``sparsity_viz.lottery``, ``sparsity_viz.experiments``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

import pandas as pd
import streamlit as st

from sparsity_viz.data import data_batch
from sparsity_viz.lottery import LotteryConfig, lottery_experiment
from sparsity_viz.models import build_model
from sparsity_viz.pruning import scheduled_strategy_names as _scheduled_names
from sparsity_viz.recipes import finetune_config
from sparsity_viz.strategy_lab import CompareConfig, ScheduleConfig, compare_sweep, run_schedule

from .cache import CURVES, LAB, session_cache, shared_cache
from .runs import Progress, StopFlag, run_with_stop
from .workbench import bench, dataset


def scheduled_strategy_names() -> list[str]:
    """Strategies that prune while training (gradual, iterative, SET, RigL), from the library's registry."""
    return _scheduled_names()


# ---------------------------------------------------------------------------
# The strategy lab (this session)


def _lab_key(config: Any) -> tuple:
    wb = bench()
    return (wb.fingerprint, wb.dataset, config)


def lab_result(config: Any) -> Any | None:
    """The kept result of ``config`` for the current dense model (``None`` when not run yet)."""
    return session_cache(LAB).get(_lab_key(config))


def _lab_keep(config: Any, result: Any) -> None:
    session_cache(LAB)[_lab_key(config)] = result


def lab_quick(config: Any, work: Callable[[], Any], text: str = "Computing...") -> Any:
    """A short computation (under a spinner), kept per configuration in this session."""
    hit = lab_result(config)
    if hit is None:
        with st.spinner(text):
            hit = work()
        _lab_keep(config, hit)
    return hit


def lab_batch(seed: int = 0):
    """The data batch that data-driven strategies (SNIP, GraSP, ...) score on."""
    return data_batch(dataset(), seed=seed)


def run_lab(config: Any, work: Callable[[Progress, StopFlag], Any], *, key: str, text: str = "Working...") -> NoReturn:
    """``work(progress, stop)`` under a progress bar and a Stop button; its (partial) result is kept for ``config``.

    Never returns: the page is rerun and finds the result with ``lab_result``.
    """
    run_with_stop(work, lambda result: _lab_keep(config, result), key=key, text=text)


def compare_sweep_run(config: CompareConfig) -> NoReturn:
    """The Compare page's sweep (one-shot, and fine-tuned when asked) with progress and Stop."""
    wb = bench()
    ds = dataset(wb)
    finetune = finetune_config(wb.card, config.finetune_epochs) if config.finetune_epochs else None
    run_lab(config, lambda progress, stop: compare_sweep(wb.dense, ds, config, finetune, progress=progress, stop=stop),
            key="compare", text="Pruning and measuring...")


def schedule_run(config: ScheduleConfig) -> NoReturn:
    """Train with a schedule-driven strategy from the dense model; the page then finds its ``ScheduleResult``."""
    wb = bench()
    ds = dataset(wb)
    run_lab(config, lambda progress, stop: run_schedule(wb.dense, ds, config, progress=progress, stop=stop),
            key="survival_schedule", text="Training while pruning...")


def lottery_key(model_name: str, init_seed: int, config: LotteryConfig) -> tuple:
    """The configuration a lottery result is kept under."""
    return (model_name, int(init_seed), config)


def lottery_run(model_name: str, init_seed: int, config: LotteryConfig) -> NoReturn:
    """IMP with rewinding from a fresh initialisation of ``model_name`` against its controls."""
    ds = dataset()

    def work(progress: Progress, stop: StopFlag) -> pd.DataFrame:
        return lottery_experiment(build_model(model_name, init_seed), ds, config,
                                  progress=lambda f: progress(f, "train, prune 20 %, rewind, retrain"), stop=stop)

    run_lab(lottery_key(model_name, init_seed, config), work, key="lottery", text="Running the lottery experiment...")


# ---------------------------------------------------------------------------
# Curves (shared between sessions)


def curves_key(config: Any) -> tuple:
    wb = bench()
    return (wb.fingerprint, wb.dataset, config)


def cached_curves(config: Any) -> pd.DataFrame | None:
    """The sweep of ``config`` on the current dense model if any session computed it (a copy)."""
    hit = shared_cache(CURVES).get(curves_key(config))
    return None if hit is None else _copy_frame(hit)


def compute_curves(config: Any, run: Callable[[Callable[[float, dict], None]], pd.DataFrame]) -> pd.DataFrame:
    """Run a sweep with a progress bar (``run(progress)``), share it unless it was stopped, return a copy."""
    bar = st.progress(0.0, text="Computing the curves...")

    def progress(fraction: float, row: dict) -> None:
        bar.progress(fraction, text=f"{100 * fraction:.0f} % · {row['strategy']} at {100 * row['sparsity']:.0f} %")

    frame = run(progress)
    bar.empty()
    if not frame.attrs.get("cancelled"):
        shared_cache(CURVES)[curves_key(config)] = frame
    return _copy_frame(frame)


def _copy_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.attrs = {k: (dict(v) if isinstance(v, dict) else v) for k, v in frame.attrs.items()}
    return out
