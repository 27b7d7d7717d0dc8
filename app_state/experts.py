"""The Experts (MoE) page's state: the bundled MoE models, their routing reports per setting, a short fine-tune.

The bundled MoE checkpoints are shared by every session (``st.cache_resource``) and
read-only (``requires_grad`` off, never modified): every change is the library's copy
(``moe.with_top_k``, ``moe.prune_moe``, ``moe.finetune_moe_run``). One ``ExpertsView`` per
``ExpertsConfig`` is memoised in this session's ``EXPERTS`` cache. The page is independent
of the sidebar's workbench: nothing here reads or writes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import streamlit as st

from sparsity_viz.checkpoints import available_moe_samples, load_sample
from sparsity_viz.moe import (ExpertMap, MoEMLP, compare_compute, expert_map, expert_report, finetune_moe_run,
                              get_moe_spec, moe_strategy_names, prune_moe, routing_frame, with_top_k)
from sparsity_viz.figures import data_range
from sparsity_viz.samples import MOE_RECIPES

from . import keys
from .cache import EXPERTS, session_cache
from .resources import dataset_named
from .runs import run_with_stop

MAP_RESOLUTION = 120
TIMING_BATCHES = (1, 32, 256)
TIMING_ROUNDS = 7


@st.cache_resource(show_spinner="Loading the MoE model...")
def bundled_moe(name: str) -> tuple[MoEMLP, dict]:
    """The bundled MoE checkpoint and its card, shared by every session: NEVER modify it."""
    model, card = load_sample(name)
    for p in model.parameters():
        p.requires_grad_(False)  # a tripwire: in-place training of the shared copy fails loudly
    return model, card


def moe_names() -> list[str]:
    """The bundled MoE models (kept out of the sidebar's model picker)."""
    return available_moe_samples()


def moe_strategies() -> list[str]:
    """Pruning strategies that work on an MoE's experts."""
    return moe_strategy_names()


@dataclass(frozen=True)
class ExpertsConfig:
    """What the page's widgets say (a cache key). ``finetune_epochs > 0``: that many epochs of fine-tuning after."""

    name: str
    top_k: int
    pruned: tuple[int, ...] = ()
    sparsity: float = 0.0
    strategy: str = "global_magnitude"
    finetune_epochs: int = 0  # epochs run (the last one cut short when stopped_early)
    balance_weight: float = 0.0  # of the fine-tune
    stopped_early: bool = False  # the fine-tune was stopped before its epochs were done

    @property
    def base(self) -> ExpertsConfig:
        """The same settings without the fine-tune."""
        return replace(self, finetune_epochs=0, balance_weight=0.0, stopped_early=False)


@dataclass(frozen=True, eq=False)
class ExpertsView:
    """Everything the page draws for one configuration."""

    config: ExpertsConfig
    model: MoEMLP  # a private copy (top-k set, pruned, maybe fine-tuned)
    masks: dict  # prune_moe's masks (all ones when nothing is pruned)
    report: dict  # moe.expert_report of ``model`` on the test split
    bundled: dict  # moe.expert_report of the bundled checkpoint as trained
    card: dict
    regions: ExpertMap | None  # 2-D toys: the router's choice over the plane
    routing: pd.DataFrame  # moe.routing_frame(report), the CSV export

    @property
    def num_experts(self) -> int:
        return self.report["num_experts"]


def moe_dataset(name: str):
    """The dataset the bundled MoE ``name`` was trained on (shared, read-only)."""
    return dataset_named(get_moe_spec(name).dataset)


def spec_of(name: str) -> Any:
    """The registered MoE architecture (``moe.MoESpec``: num_experts, top_k, dataset, ...)."""
    return get_moe_spec(name)


def _build(config: ExpertsConfig, model: MoEMLP, masks: dict) -> ExpertsView:
    shared, card = bundled_moe(config.name)
    data = dataset_named(card["dataset"]["name"])
    regions = None
    if model.in_features == 2:
        (x0, x1), (y0, y1) = data_range(data.x_test)
        regions = expert_map(model, (x0, x1), (y0, y1), MAP_RESOLUTION)
    report = expert_report(model, data)
    bundled = session_cache(EXPERTS).get_or_compute(("bundled", config.name),
                                                    lambda: expert_report(shared, data))
    return ExpertsView(config, model, masks, report, bundled, card, regions, routing_frame(report))


def experts_view(config: ExpertsConfig) -> ExpertsView | None:
    """The view of ``config`` (memoised per session). A fine-tuned config exists only after ``finetune_run``.

    Raises ``ValueError`` (bad expert, top-k or sparsity) with the library's message.
    """
    cache = session_cache(EXPERTS)
    hit = cache.get(config)
    if hit is not None or config.finetune_epochs > 0:
        return hit
    shared, _ = bundled_moe(config.name)
    data = dataset_named(get_moe_spec(config.name).dataset)
    model, masks = prune_moe(with_top_k(shared, config.top_k), experts=config.pruned, sparsity=config.sparsity,
                             strategy=config.strategy, data=data)
    view = _build(config, model.eval(), masks)
    cache[config] = view
    return view


def tuned_config(config: ExpertsConfig) -> ExpertsConfig | None:
    """The fine-tuned version of ``config`` to show, if the last fine-tune was of these settings and is still held."""
    tuned = st.session_state.get(keys.STORED_EXPERTS_TUNED)
    if isinstance(tuned, ExpertsConfig) and tuned.base == config and session_cache(EXPERTS).get(tuned) is not None:
        return tuned
    return None


def finetune_kept_nothing() -> bool:
    """Whether the last fine-tune was stopped before its first epoch ended (read once: the next run forgets it)."""
    return bool(st.session_state.pop(keys.EXPERTS_NOTHING_KEPT, False))


def forget_finetune() -> None:
    """Show the settings without the fine-tune again."""
    st.session_state.pop(keys.STORED_EXPERTS_TUNED, None)


def finetune_run(config: ExpertsConfig, epochs: int, balance_weight: float) -> None:  # returns only when training diverged (run_with_stop)
    """Fine-tune the pruned copy ``epochs`` epochs (masks held) under a progress bar and Stop; show it after."""
    from sparsity_viz.training import TrainConfig, TrainResult  # only when training

    if not 1 <= epochs <= 20:
        raise ValueError(f"epochs must be between 1 and 20, got {epochs}.")
    base = experts_view(config.base)
    data = dataset_named(get_moe_spec(config.name).dataset)
    recipe = MOE_RECIPES[config.name].config
    train_config = TrainConfig(epochs=epochs, lr=recipe.lr, batch_size=recipe.batch_size, seed=0, device="cpu")
    target = replace(config.base, finetune_epochs=epochs, balance_weight=balance_weight)

    def work(progress, stop):
        return finetune_moe_run(base.model, data, base.masks, train_config, balance_weight=balance_weight,
                                progress=lambda f: progress(f, "fine-tuning"), stop=stop)

    def keep(result: TrainResult) -> None:  # a Stop keeps what ran, labelled so (it was labelled `epochs` epochs)
        if not result.history:  # stopped before the first epoch ended: nothing to show, and the page says so
            st.session_state[keys.EXPERTS_NOTHING_KEPT] = True
            return
        done = replace(target, finetune_epochs=len(result.history), stopped_early=result.stopped)
        session_cache(EXPERTS)[done] = _build(done, result.model, base.masks)
        st.session_state[keys.STORED_EXPERTS_TUNED] = done

    run_with_stop(work, keep, key="experts_finetune", text="Fine-tuning...")


def timing(config: ExpertsConfig) -> pd.DataFrame | None:
    """The last conditional-compute measurement of this configuration's model (``None``: not measured yet)."""
    return session_cache(EXPERTS).get(("timing", config))


def measure_timing(config: ExpertsConfig) -> pd.DataFrame:
    """``moe.compare_compute`` on this configuration's model: routed vs all experts vs a dense MLP, per batch."""
    view = experts_view(config)
    if view is None:
        raise ValueError("Nothing to measure: the settings have no model yet.")
    rows = pd.DataFrame(compare_compute(view.model, TIMING_BATCHES, rounds=TIMING_ROUNDS))
    session_cache(EXPERTS)[("timing", config)] = rows
    return rows
