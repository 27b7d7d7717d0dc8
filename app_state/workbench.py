"""This session's workbench: which model, dataset and device are chosen, and the current (pruned) model.

Each session's ``Workbench`` holds its own dense copy and the *current* model (dense
copy + masks + origin). Prune, fine-tuning, Regularize and uploads replace the current
model; Weights, Connections, Attribution, Curves and Export read it.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from sparsity_viz.arch_spec import build_from_spec
from sparsity_viz.backend.live import live_step
from sparsity_viz.backend.ranked import LiveStep
from sparsity_viz.data import Dataset, data_batch
from sparsity_viz.devices import DeviceUnavailableError, resolve_device
from sparsity_viz.masks import Masks, masked_copy
from sparsity_viz.model_recipe import ModelRecipe
from sparsity_viz.models import build_model, get_spec
from sparsity_viz.pruning import STRATEGIES, get_one_shot_strategy, prune, wants_batch
from sparsity_viz.session import PruneConfig, Workbench, new_workbench, replace_current, reset

from . import keys
from .cache import PRUNE_MASKS, shared_cache
from .resources import bundled, compatible_datasets, configure_threads_once, dataset_named, default_model, sample_names
from .settings import read_url_once, reset_prune_slider, store_prune
from .strategy_labels import prune_spinner_text
from .url import set_recipe, set_url

DEVICES = ("auto", "cpu", "cuda")


def init() -> None:
    """Once per rerun, before anything else: thread policy; on a session's first run, the link's state.

    The URL's settings are read once per session and its model state (pruned or rebuilt from a recipe)
    applied before any page draws, so the sidebar and the page show the link's model at once.
    """
    configure_threads_once()
    if read_url_once():
        from .links import restore_link  # noqa: PLC0415 (links imports runs, which imports this module)

        restore_link()


def own_bench() -> Workbench | None:
    """This session's own model (uploaded spec + checkpoint) as uploaded, if any."""
    return st.session_state.get(keys.OWN_BENCH)


def model_names() -> list[str]:
    """The sidebar's models: the bundled ones, then this session's own model."""
    own = own_bench()
    return sample_names() + ([own.name] if own is not None else [])


def model_description(name: str) -> str:
    own = own_bench()
    if own is not None and name == own.name:
        return f"your model: {own.card.get('description', '')}"
    return get_spec(name).description


def dataset_options(name: str) -> list[str]:
    """Datasets the model ``name`` can be evaluated on (its own first)."""
    own = own_bench()
    if own is not None and name == own.name:
        return list(own.card["datasets"])
    return compatible_datasets(name)


def fresh_model(name: str, seed: int):
    """A fresh, seeded initialisation of model ``name``'s architecture (bundled, or this session's own spec)."""
    own = own_bench()
    if own is not None and name == own.name:
        return build_from_spec(own.card["spec"], seed=seed)
    return build_model(name, seed)


def selected_model() -> str:
    """The model chosen in the sidebar (or the default)."""
    name = st.session_state.get(keys.MODEL) or st.session_state.get(keys.STORED_MODEL)
    return name if name in model_names() else default_model()


def device() -> str:
    """The device chosen in the sidebar, falling back to CPU when it is missing."""
    choice = st.session_state.get(keys.DEVICE, "auto")
    try:
        return str(resolve_device(choice))
    except DeviceUnavailableError:
        return "cpu"


def bench() -> Workbench:
    """This session's workbench, (re)built from a deep copy of the cached model when the model changes."""
    name = selected_model()
    wb: Workbench | None = st.session_state.get(keys.BENCH)
    own = own_bench()
    if (wb is None or wb.name != name) and own is not None and own.name == name:
        wb = own  # back to the own model as uploaded (its models are never modified in place)
        st.session_state[keys.BENCH] = wb
        st.session_state.pop(keys.TRAIN_LOG, None)
    elif wb is None or wb.name != name:
        shared, card = bundled(name)
        wb = new_workbench(name, get_spec(name).dataset, shared, card=card)
        for p in wb.dense.parameters():
            p.requires_grad_(True)  # the session's own copy may be trained (on copies, by train())
        st.session_state[keys.BENCH] = wb
        st.session_state.pop(keys.TRAIN_LOG, None)
    ds_choice = st.session_state.get(keys.DATASET)
    if ds_choice in dataset_options(name) and ds_choice != wb.dataset:
        wb = replace(wb, dataset=ds_choice)
        st.session_state[keys.BENCH] = wb
    return wb


def set_bench(wb: Workbench) -> None:
    st.session_state[keys.BENCH] = wb


def dataset(wb: Workbench | None = None) -> Dataset:
    """The dataset the session's accuracies are measured on (an uploaded one lives in this session only)."""
    name = (wb or bench()).dataset
    own = st.session_state.get(keys.OWN_DATASETS) or {}
    return own[name] if name in own else dataset_named(name)


def reset_bench() -> None:
    """Sidebar 'Reset': back to the dense model (the Prune slider goes back to 0 %)."""
    wb = st.session_state.get(keys.BENCH)
    if wb is not None:
        st.session_state[keys.BENCH] = reset(wb)
    reset_prune_slider(from_callback=True)
    st.session_state.pop(keys.TRAIN_LOG, None)


def choose_model(name: str) -> None:
    """Select a sample model (a button callback; the sidebar selectbox follows)."""
    st.session_state[keys.MODEL] = name
    on_model_change()


def on_model_change() -> None:
    """The sidebar's model changed: remember it, use its own dataset, forget the last upload message."""
    name = st.session_state.get(keys.MODEL)
    if name:
        st.session_state[keys.STORED_MODEL] = name
        st.session_state[keys.DATASET] = dataset_options(name)[0]
        st.session_state.pop(keys.UPLOAD_MSG, None)
        set_url(model=name)


def prune_masks(wb: Workbench, cfg: PruneConfig) -> Masks:
    """Masks of ``cfg`` on the session's dense model, shared between sessions by the dense weights' fingerprint."""
    cache = shared_cache(PRUNE_MASKS)
    key = (wb.fingerprint, wb.dataset, cfg)
    masks = cache.get(key)
    if masks is None:
        batch = data_batch(dataset(wb), seed=cfg.seed) if wants_batch(STRATEGIES[cfg.strategy]) else None
        with st.spinner(prune_spinner_text(cfg.strategy, wb.name), show_time=True):  # slow ones say how slow
            strategy = get_one_shot_strategy(cfg.strategy, "the Prune slider", scope=cfg.scope, seed=cfg.seed)
            masks = prune(wb.dense, strategy, cfg.sparsity, batch=batch,
                          current=wb.dense_masks).masks  # an upload's stored zeros stay pruned
        cache[key] = masks
    return {k: v.clone() for k, v in masks.items()}  # the shared entry stays read-only


def live_prune(wb: Workbench, cfg: PruneConfig) -> LiveStep | None:
    """``cfg`` cut from the session dense model's ranking, sorted once per model, dataset and strategy.

    None for strategies that are not a cut of one ranking (``prune_masks`` prunes those).
    """
    batch = (lambda: data_batch(dataset(wb), seed=cfg.seed)) if STRATEGIES[cfg.strategy].needs_data else None
    return live_step(wb.dense, cfg.strategy, cfg.sparsity, scope=cfg.scope, seed=cfg.seed, batch=batch,
                     current=wb.dense_masks, key=(wb.fingerprint, wb.dataset))


def apply_prune(cfg: PruneConfig) -> Workbench:
    """Make the current model the dense copy pruned by ``cfg`` (unless it already is)."""
    wb = bench()
    store_prune(cfg)
    if wb.prune_config == cfg:
        return wb
    step = live_prune(wb, cfg)
    if step is not None:
        masks, model = step.masks, step.model
    else:
        masks = prune_masks(wb, cfg)
        model = masked_copy(wb.dense, masks)
    wb = replace_current(wb, model, masks, cfg.describe(), prune_config=cfg,
                         recipe=ModelRecipe(prune=cfg))
    set_bench(wb)
    set_recipe(wb.recipe)
    return wb
