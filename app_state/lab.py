"""Results kept per configuration: the strategy lab (Compare, Survival maps, Lottery) and the Curves sweeps.

Lab results live in this session, keyed by (dense fingerprint, dataset, frozen config):
moving a widget back to an earlier setting shows the earlier result at once. Curves are
shared between sessions (same dense weights, same config, same frame) and handed out
as copies. The experiments themselves are library calls (``sparsity_viz.strategy_lab``,
``sparsity_viz.lottery``, ``sparsity_viz.experiments``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from sparsity_viz.data import data_batch
from sparsity_viz.experiments import read_back, sweep, sweep_csv
from sparsity_viz.lottery import LotteryConfig, lottery_experiment
from sparsity_viz.pruning import scheduled_strategy_names as _scheduled_names
from sparsity_viz.pruning.iterative import first_training_steps
from sparsity_viz.recipes import finetune_config
from sparsity_viz.run_config import run_id, sweep_config
from sparsity_viz.strategy_lab import CompareConfig, ScheduleConfig, compare_sweep, run_schedule

from .cache import CURVES, LAB, session_cache, shared_cache
from .evaluation import curves_evaluator
from .runs import Progress, StopFlag, run_with_stop
from .sweep_runs import place_executor, runs_dir
from .widgets import show_table
from .workbench import bench, dataset, device, fresh_model


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


def run_lab(config: Any, work: Callable[[Progress, StopFlag], Any], *, key: str, text: str = "Working...") -> None:
    """``work(progress, stop)`` under a progress bar and a Stop button; its (partial) result is kept for ``config``.

    The page is rerun and finds the result with ``lab_result``. Returns only when training diverged: the message
    is shown, and kept for ``lab_failure`` (a page that runs on its own then waits for a click).
    """
    def failed(message: str) -> None:
        session_cache(LAB)[("failed", _lab_key(config))] = message

    session_cache(LAB).pop(("failed", _lab_key(config)), None)
    run_with_stop(work, lambda result: _lab_keep(config, result), key=key, text=text, on_diverged=failed)


def lab_failure(config: Any) -> str | None:
    """Why the last run of ``config`` on the current dense model diverged (``None``: it did not, or never ran)."""
    return session_cache(LAB).get(("failed", _lab_key(config)))


def compare_sweep_run(config: CompareConfig, place: str = "local") -> None:
    """The Compare page's sweep (one-shot, and fine-tuned when asked) with progress and Stop, on ``place``
    (``sweep_runs.sweep_place``); points already in the results store are read back, new ones written there."""
    wb = bench()
    ds = dataset(wb)
    finetune = finetune_config(wb.card, config.finetune_epochs) if config.finetune_epochs else None
    run_config = compare_run_config(config)
    executor = place_executor(place)

    def work(progress: Progress, stop: StopFlag) -> pd.DataFrame:
        frame = compare_sweep(wb.dense, ds, config, finetune, progress=progress, stop=stop, executor=executor,
                              store=runs_dir())
        frame.attrs.update(config=run_config, run_id=run_id(run_config))
        return frame

    run_lab(config, work, key="compare", text="Pruning and measuring...")


def compare_result(config: CompareConfig) -> pd.DataFrame | None:
    """The Compare sweep of ``config``: kept in this session, else read back from the results store (nothing
    computed; ``cancelled`` when points are missing, so Compute the rest resumes), else None."""
    hit = lab_result(config)
    if hit is not None:
        return hit
    wb = bench()
    finetune = finetune_config(wb.card, config.finetune_epochs) if config.finetune_epochs else None
    frame = compare_sweep(wb.dense, dataset(wb), config, finetune, stop=lambda: True, store=runs_dir())
    if not len(frame):
        return None
    run_config = compare_run_config(config)
    frame.attrs.update(config=run_config, run_id=run_id(run_config))
    _lab_keep(config, frame)
    return frame


def compare_run_config(config: CompareConfig) -> dict:
    """The full configuration (``run_config.sweep_config``) of the Compare sweep ``config`` on the current model.

    Without fine-tuning it is the plain sweep's; with it, ``passes`` says the one-shot and the
    fine-tuned sweeps both ran (the frame's ``finetuned`` column).
    """
    wb = bench()
    names = list(dict.fromkeys([*config.strategies, *(["random"] if config.random_baseline else [])]))
    finetune = finetune_config(wb.card, config.finetune_epochs) if config.finetune_epochs else None
    return sweep_config(wb.dense, dataset(wb), names, config.levels, range(config.seeds), finetune=finetune,
                        schedule=None, scope=None, model_name=wb.name,
                        extra={"passes": ["one_shot", "finetuned"]} if finetune is not None else None)


def schedule_run(config: ScheduleConfig) -> None:
    """Train with a schedule-driven strategy from the dense model; the page then finds its ``ScheduleResult``."""
    wb = bench()
    ds = dataset(wb)
    run_lab(config, lambda progress, stop: run_schedule(wb.dense, ds, config, progress=progress, stop=stop),
            key="survival_schedule", text="Training while pruning...")


def lottery_problem(config: LotteryConfig) -> str | None:
    """Why ``config`` cannot run on this session's dataset (None: it can): a rewind step past the first training."""
    steps = first_training_steps(dataset(), config.train_config())
    if config.rewind_step <= steps:
        return None
    return (f"Rewinding to step {config.rewind_step} needs a first training of at least that many steps; "
            f"{config.epochs} epoch{'s' if config.epochs != 1 else ''} here take {steps}. Choose an earlier step "
            "or more epochs per round.")


def lottery_key(model_name: str, init_seed: int, config: LotteryConfig) -> tuple:
    """The configuration a lottery result is kept under."""
    return (model_name, int(init_seed), config)


def lottery_run(model_name: str, init_seed: int, config: LotteryConfig) -> None:
    """IMP with rewinding from a fresh initialisation of ``model_name`` against its controls."""
    ds = dataset()
    init = fresh_model(model_name, init_seed)  # read here: the session (an own model's spec) is not visible in work

    def work(progress: Progress, stop: StopFlag) -> pd.DataFrame:
        return lottery_experiment(init, ds, config,
                                  progress=lambda f: progress(f, "train, prune 20 %, rewind, retrain"), stop=stop)

    run_lab(lottery_key(model_name, init_seed, config), work, key="lottery", text="Running the lottery experiment...")


# ---------------------------------------------------------------------------
# Curves (shared between sessions)


def curves_key(config: Any) -> tuple:
    wb = bench()
    return (wb.fingerprint, wb.dataset, config)


def curves_result(config: Any) -> pd.DataFrame | None:
    """The Curves sweep of ``config`` on the current dense model (a copy): shared by every session once complete,
    from memory or, after a restart or reload, from the results store; the points the store has when some are
    missing (``attrs["cancelled"]``: a run was stopped, or is still running; Compute the rest resumes it); None
    when no point ran."""
    hit = shared_cache(CURVES).get(curves_key(config))
    if hit is None:
        args, kwargs = _curves_sweep(config)
        hit = read_back(*args, **kwargs)
        if hit is None:
            return None
        if not hit.attrs.get("cancelled"):
            shared_cache(CURVES)[curves_key(config)] = hit
    return _copy_frame(hit)


def curves_run(config: Any, place: str = "local") -> None:
    """The Curves sweep of ``config`` on ``place`` under a progress bar and a Stop button, through the results
    store (a stopped run's points stay there for ``curves_result``); reruns the page, or returns after showing why
    it failed (a diverging fine-tune, a lost Ray worker)."""
    args, kwargs = _curves_sweep(config)
    executor = place_executor(place)
    if executor is not None:  # cluster workers run the library only (no app_state): plain evaluation
        kwargs.update(executor=executor, evaluator=None)

    def work(progress: Progress, stop: StopFlag) -> pd.DataFrame:
        return sweep(*args, progress=lambda f, row: progress(f, f"{row['strategy']} at {100 * row['sparsity']:g} %"),
                     stop=stop, **kwargs)

    def keep(frame: pd.DataFrame) -> None:
        if not frame.attrs.get("cancelled"):
            shared_cache(CURVES)[curves_key(config)] = frame

    run_with_stop(work, keep, key="curves", text="Computing the curves...")


def _curves_sweep(config: Any) -> tuple[tuple, dict]:
    """``sweep``'s arguments for the Curves ``config`` on the current model (one place: run and read-back)."""
    wb = bench()
    finetune = finetune_config(wb.card, config.finetune_epochs) if config.finetune_epochs else None
    return ((wb.dense, dataset(wb), list(config.strategies), list(config.levels), range(config.seeds)),
            dict(finetune=finetune, device=device(), evaluator=curves_evaluator(), model_name=wb.name,
                 store=runs_dir()))


def show_run_table(table: pd.DataFrame, name: str, frame: pd.DataFrame, **kwargs: Any) -> None:
    """``show_table`` of ``table`` (the sweep ``frame`` or a summary of it) whose CSV download starts with the
    sweep's configuration header and run id (``experiments.sweep_csv``), and the run id as a caption."""
    config = frame.attrs.get("config")
    if config is None:
        show_table(table, name, **kwargs)
        return
    rid = run_id(config)
    show_table(table, f"{name}_{rid}", csv_text=sweep_csv(table, config), **kwargs)
    st.caption(f"Run id `{rid}`: a hash of the full configuration (model weights, data, strategies and their "
               f"parameters, levels, seeds {', '.join(map(str, config['seeds']))}, training, versions), written "
               "as `# key: value` lines at the top of the CSV. The same id re-run gives the same numbers.")


def _copy_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    out.attrs = {k: (dict(v) if isinstance(v, dict) else v) for k, v in frame.attrs.items()}
    return out
