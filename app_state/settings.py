"""Page settings that must survive page changes, kept in session keys no widget owns, and mirrored in the URL.

Streamlit drops a widget's state when its page is left; each page reads its widgets'
defaults from here (``stored``) and stores what the user chose (``store``). One mechanism
carries every page's settings in a link: ``store(key, defaults, ...)`` mirrors the settings
that differ from the defaults as ``<page>.<field>`` URL parameters (``<page>`` is the key
without ``keys.STORED_PREFIX``); ``read_url_once`` keeps a link's parameters aside, and the
page's first ``stored`` reads them back, each as its default's type, dropping unknown fields
and values outside the given ``ranges`` / ``choices``. Pages without their own key use
``page_settings`` / ``keep_page_settings`` (``keys.stored_page``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import asdict, replace
from typing import Any

import streamlit as st

from sparsity_viz.recipes import l1_recipe
from sparsity_viz.regularizers import REGULARIZERS
from sparsity_viz.session import PruneConfig

from . import keys
from .url import drop_url, mirror_settings, not_understood, parse_settings, query, set_url, shown
from .widgets import show_lasting

LAMBDAS = (0.0, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)  # the Regularize page's lambda slider
THRESHOLDS = (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)  # its zero-threshold slider
FINETUNE_EPOCHS = 2  # the Prune page's fine-tune default
SPEED_DEFAULTS = {"batches": [1, 32, 256],
                  "formats": ["dense", "csr-torch", "csr-native", "csr-int8-native", "nm-native", "compact+dense", "auto"],
                  "repeats": 10, "time_cap_s": 5.0}
SPEED_BATCHES = (1, 8, 32, 128, 256, 1024)  # the Speed page's batch-size choices
MAX_TRAIN_RATE = 0.8  # the dropout / DropConnect sliders' top
DISPLAY_DEFAULTS = {"projector": False, "axes": False}  # the sidebar's Display toggles (display.* in the URL)
TRAIN_OPTION_DEFAULTS = {"dropout": 0.0, "dropconnect": 0.0, "train_fraction": 1.0}
Ranges = Mapping[str, tuple[float, float]] | None
Choices = Mapping[str, Collection] | None


def read_url_once() -> bool:
    """Copy a shared link's settings into the stored ones, once per session (True the first time).

    Page settings (``<page>.<field>``) wait in ``keys.URL_PAGE_PARAMS`` until their page's ``stored``
    reads them against its defaults.
    """
    if st.session_state.get(keys.URL_READ):
        return False
    url = query()
    if url.model is not None:
        st.session_state[keys.MODEL] = st.session_state[keys.STORED_MODEL] = url.model
    if url.dataset is not None:
        st.session_state[keys.DATASET] = url.dataset
    st.session_state[keys.URL_PAGE_PARAMS] = url.pages
    if url.prune is not None:
        st.session_state[keys.STORED_PRUNE] = url.prune
    if url.lam is not None:
        reg = dict(st.session_state.get(keys.STORED_REG) or {})
        reg["strength"] = min(LAMBDAS, key=lambda v: abs(v - url.lam))
        st.session_state[keys.STORED_REG] = reg
    st.session_state[keys.URL_READ] = True
    return True


def stored_prune() -> PruneConfig:
    cfg = st.session_state.get(keys.STORED_PRUNE)
    return cfg if isinstance(cfg, PruneConfig) else PruneConfig()


def store_prune(cfg: PruneConfig) -> None:
    st.session_state[keys.STORED_PRUNE] = cfg
    set_url(strategy=cfg.strategy, scope=cfg.scope, sparsity=int(round(100 * cfg.sparsity)), seed=cfg.seed)


def reset_prune_slider(from_callback: bool = False) -> None:
    """The Prune slider goes back to 0 % (after a reset or an upload).

    From a widget callback (the sidebar's Reset, maybe with the slider on screen) the value is set through session
    state, which Streamlit sends to the browser: dropping the key let the widget fall back to 0 on the server while
    the browser still showed (and on the next rerun sent) 90 (an audit). From a script run (an upload, a lesson's
    set-up, with no slider on screen) the key is dropped: set there, the 0 stayed behind as a value of its own and
    came back over the slider's later positions whenever the Prune page was opened again.
    """
    st.session_state[keys.STORED_PRUNE] = replace(stored_prune(), sparsity=0.0)
    if from_callback:
        prune_slider_to(0.0)
    else:
        st.session_state.pop(keys.PRUNE_SLIDER, None)


def prune_slider_to(sparsity: float) -> None:
    """From a widget callback: the Prune slider shows ``sparsity`` (a fraction), in the browser too."""
    st.session_state[keys.PRUNE_SLIDER] = int(round(100 * sparsity))


def prune_slider_key() -> str:
    """The Prune slider's key, its value set from the stored settings where the widget has none yet (the view
    passes no ``value``: one source, session state, so a reset reaches the browser)."""
    if keys.PRUNE_SLIDER not in st.session_state:
        prune_slider_to(stored_prune().sparsity)
    return keys.PRUNE_SLIDER


def kept_value(stored: int, shown: int, high: int) -> int:
    """What to keep of a setting a page showed clamped to ``high`` (a smaller model's range): the stored value while
    the widget still shows its clamped form, else the user's new choice. Keeping what was shown had turned k = 250
    into 8 for good after one visit to moons_mlp (an audit)."""
    return stored if shown == min(stored, high) else shown


def follow_model(page: str, widgets: dict[str, Any]) -> None:
    """Before ``page`` draws widgets whose range depends on the model: on a model switch, set them to ``widgets``
    (``{key: kept setting clamped to this model}``). A keyed widget keeps its own value across a switch, so it
    showed the smaller model's clamped value on the way back (with ``kept_value``, the kept settings survive)."""
    marker = keys.model_of(page)
    model = st.session_state.get(keys.STORED_MODEL)
    if st.session_state.get(marker) != model:
        st.session_state.update(widgets)
        st.session_state[marker] = model


def reg_defaults(model_name: str) -> dict:
    """The Regularize page's settings before anyone moved them: the model's L1 recipe."""
    return {"regularizer": "l1", **asdict(l1_recipe(model_name)), "start": "dense"}


REG_RANGES = {"strength": (0.0, 1e3), "zero_threshold": (0.0, 1e3), "epochs": (1, 200), "lr": (1e-5, 1e4)}
REG_CHOICES = {"regularizer": REGULARIZERS, "start": ("dense", "current")}


def stored_reg(model_name: str) -> dict:
    return stored(keys.STORED_REG, reg_defaults(model_name), REG_RANGES, REG_CHOICES)


def store_reg(settings: dict) -> None:
    """Keep the Regularize settings; lambda goes in the URL as ``lam``, the rest as ``reg.<field>``."""
    st.session_state[keys.STORED_REG] = dict(settings)
    mirror_settings(_page(keys.STORED_REG), {k: v for k, v in settings.items() if k != "strength"},
                    reg_defaults(st.session_state.get(keys.STORED_MODEL) or ""))
    set_url(lam=float(settings["strength"]))


def stored_display() -> dict:
    """Projector mode and fixed accuracy axes as last set, or as a link (or a reload) asks for them."""
    return stored(keys.STORED_DISPLAY, DISPLAY_DEFAULTS)


def store_display(projector: bool, axes: bool) -> None:
    """Keep the Display toggles, mirrored in the URL so a reload of the projector's tab keeps them."""
    store(keys.STORED_DISPLAY, DISPLAY_DEFAULTS, projector=bool(projector), axes=bool(axes))


def stored_finetune() -> int:
    return int(stored(keys.STORED_FINETUNE, {"epochs": FINETUNE_EPOCHS}, {"epochs": (1, 50)})["epochs"])


def store_finetune(epochs: int) -> None:
    store(keys.STORED_FINETUNE, {"epochs": FINETUNE_EPOCHS}, epochs=int(epochs))


def _train_options_key(page: str) -> str:
    return keys.stored_page(f"{page}_train")


def stored_train_options(page: str) -> dict:
    """Dropout, DropConnect and train share last chosen on ``page``."""
    ranges = {"dropout": (0.0, MAX_TRAIN_RATE), "dropconnect": (0.0, MAX_TRAIN_RATE), "train_fraction": (0.01, 1.0)}
    return stored(_train_options_key(page), TRAIN_OPTION_DEFAULTS, ranges)


def store_train_options(page: str, options: dict) -> None:
    store(_train_options_key(page), TRAIN_OPTION_DEFAULTS, **options)


def _page(key: str) -> str:
    """The URL name of the page whose settings ``key`` keeps."""
    return key.removeprefix(keys.STORED_PREFIX)


def stored(key: str, defaults: dict, ranges: Ranges = None, choices: Choices = None) -> dict:
    """A page's settings kept under ``key`` (a session key no widget owns), over its ``defaults``.

    The first call after a link was opened takes in the link's ``<page>.<field>`` parameters that read
    as the defaults' types and lie within ``ranges`` (inclusive) and ``choices``; the rest are left out:
    said in a warning where the page reads its settings, and removed from the address bar.
    """
    pending = st.session_state.get(keys.URL_PAGE_PARAMS) or {}
    page = _page(key)
    texts = pending.get(page)
    if texts:
        st.session_state[keys.URL_PAGE_PARAMS] = {k: v for k, v in pending.items() if k != page}
        from_link = parse_settings(texts, defaults, ranges, choices)
        st.session_state[key] = {**(st.session_state.get(key) or {}), **from_link}
        left_out = [name for name in texts if name not in from_link]
        if left_out:
            drop_url(*(f"{page}.{name}" for name in left_out))
            show_lasting("warning", not_understood([f"{page}.{name} {shown(texts[name])}" for name in left_out]))
    return {**defaults, **(st.session_state.get(key) or {})}


def store(key: str, defaults: dict, **settings: Any) -> None:
    """Update some of a page's settings kept under ``key``, and mirror them in the URL."""
    st.session_state[key] = {**stored(key, defaults), **settings}
    mirror_settings(_page(key), st.session_state[key], defaults)


def page_settings(page: str, defaults: dict, ranges: Ranges = None, choices: Choices = None) -> dict:
    """``stored`` for a page without its own STORED_* key (``keys.stored_page(page)``)."""
    return stored(keys.stored_page(page), defaults, ranges, choices)


def keep_page_settings(page: str, defaults: dict, **settings: Any) -> None:
    """``store`` for a page without its own STORED_* key."""
    store(keys.stored_page(page), defaults, **settings)


def speed_format_options(cuda: bool) -> list[str]:
    """The formats the Speed page offers: every model format, then the GPU ones on CUDA, the int8 ones on the CPU."""
    from sparsity_viz.backend.bench import MODEL_FORMATS
    from sparsity_viz.backend.int8 import INT8_FORMATS

    return [*MODEL_FORMATS, *(["csr-cuda", "2:4-cuda"] if cuda else INT8_FORMATS)]


def stored_speed() -> dict:
    formats = {*speed_format_options(cuda=True), *speed_format_options(cuda=False)}  # a link may come from either
    return stored(keys.STORED_SPEED, SPEED_DEFAULTS, {"repeats": (3, 50), "time_cap_s": (1, 60)},
                  {"batches": SPEED_BATCHES, "formats": formats})


def store_speed(**settings: Any) -> None:
    store(keys.STORED_SPEED, SPEED_DEFAULTS, **settings)
