"""Page settings that must survive page changes, kept in session keys no widget owns.

Streamlit drops a widget's state when its page is left; each page reads its widgets'
defaults from here and stores what the user chose. The shareable ones are mirrored
in the URL.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import streamlit as st

from sparsity_viz.recipes import l1_recipe
from sparsity_viz.session import PruneConfig

from . import keys
from .url import query, set_url

LAMBDAS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)  # the Regularize page's lambda slider
THRESHOLDS = (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # its zero-threshold slider
FINETUNE_EPOCHS = 2  # the Prune page's fine-tune default
SPEED_DEFAULTS = {"batches": [1, 32, 256],
                  "formats": ["dense", "csr-torch", "csr-native", "csr-int8-native", "nm-native", "compact+dense", "auto"],
                  "repeats": 10, "time_cap_s": 5.0}


def read_url_once() -> None:
    """Copy a shared link's settings into the stored ones, once per session."""
    if st.session_state.get(keys.URL_READ):
        return
    url = query()
    if url.model is not None:
        st.session_state[keys.MODEL] = st.session_state[keys.STORED_MODEL] = url.model
    if url.prune is not None:
        st.session_state[keys.STORED_PRUNE] = url.prune
    if url.lam is not None:
        reg = dict(st.session_state.get(keys.STORED_REG) or {})
        reg["strength"] = min(LAMBDAS, key=lambda v: abs(v - url.lam))
        st.session_state[keys.STORED_REG] = reg
    st.session_state[keys.URL_READ] = True


def stored_prune() -> PruneConfig:
    cfg = st.session_state.get(keys.STORED_PRUNE)
    return cfg if isinstance(cfg, PruneConfig) else PruneConfig()


def store_prune(cfg: PruneConfig) -> None:
    st.session_state[keys.STORED_PRUNE] = cfg
    set_url(strategy=cfg.strategy, scope=cfg.scope, sparsity=int(round(100 * cfg.sparsity)))


def reset_prune_slider() -> None:
    """The Prune slider goes back to 0 % (after a reset or an upload)."""
    st.session_state[keys.STORED_PRUNE] = replace(stored_prune(), sparsity=0.0)
    st.session_state.pop(keys.PRUNE_SLIDER, None)  # the slider widget re-reads the stored value


def stored_reg(model_name: str) -> dict:
    defaults = {"regularizer": "l1", **asdict(l1_recipe(model_name)), "start": "dense"}
    return {**defaults, **(st.session_state.get(keys.STORED_REG) or {})}


def store_reg(settings: dict) -> None:
    st.session_state[keys.STORED_REG] = dict(settings)
    set_url(lam=float(settings["strength"]))


def stored_finetune() -> int:
    return int(st.session_state.get(keys.STORED_FINETUNE, FINETUNE_EPOCHS))


def store_finetune(epochs: int) -> None:
    st.session_state[keys.STORED_FINETUNE] = int(epochs)


def stored_train_options(page: str) -> dict:
    """Dropout, DropConnect and train share last chosen on ``page`` (empty: the defaults)."""
    return dict((st.session_state.get(keys.STORED_TRAIN_OPTIONS) or {}).get(page) or {})


def store_train_options(page: str, options: dict) -> None:
    st.session_state[keys.STORED_TRAIN_OPTIONS] = {**(st.session_state.get(keys.STORED_TRAIN_OPTIONS) or {}),
                                                   page: dict(options)}


def stored(key: str, defaults: dict) -> dict:
    """A page's settings kept under ``key`` (a session key no widget owns), over its ``defaults``."""
    return {**defaults, **(st.session_state.get(key) or {})}


def store(key: str, defaults: dict, **settings: Any) -> None:
    """Update some of a page's settings kept under ``key``."""
    st.session_state[key] = {**stored(key, defaults), **settings}


def stored_speed() -> dict:
    return stored(keys.STORED_SPEED, SPEED_DEFAULTS)


def store_speed(**settings: Any) -> None:
    store(keys.STORED_SPEED, SPEED_DEFAULTS, **settings)
