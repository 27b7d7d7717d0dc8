"""The Lessons page's state: which lesson and step, one click that sets the class's state, reveals shared by all.

A step's ``AppState`` (library data, ``sparsity_viz.lessons``) is applied through the existing
mechanisms only: the sidebar's model (``workbench.choose_model``), the Prune settings and the
current model (``workbench.apply_prune`` / ``reset_bench``), and each page's stored settings
(``settings.store_reg``, ``quantize.store_quant``, ``activations.store_activations``, and
``settings.keep_page_settings`` for pages without their own key). A reveal is the same for every
student (the bundled dense model, the lesson's fixed settings): it is computed once per process
in the shared ``LESSON_REVEALS`` cache and handed out as a copy.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import replace
from typing import Any

import streamlit as st

from sparsity_viz.lessons import LESSONS, Lesson, LessonContext, Reveal, first_steps, get_lesson
from sparsity_viz.lessons.home import MODEL as HOME_MODEL
from sparsity_viz.models import get_spec
from sparsity_viz.session import PruneConfig

from . import keys
from .activations import store_activations
from .cache import LESSON_REVEALS, shared_cache
from .quantize import store_quant
from .resources import bundled, dataset_named
from .settings import (keep_page_settings, prune_slider_to, reset_prune_slider, store, store_prune, store_reg,
                       store_train_options, stored, stored_reg)
from .workbench import apply_prune, bench, choose_model, reset_bench, selected_model

LESSON_DEFAULTS = {"lesson": next(iter(LESSONS)), "step": 0}


def registered_lessons() -> dict[str, Lesson]:
    """Every registered lesson, in teaching order."""
    return dict(LESSONS)


def page_path(page: str) -> str:
    """The file of view ``page`` (a stem such as ``"2_prune"``), for ``st.switch_page`` / ``st.page_link``."""
    return f"views/{page}.py"


def stored_lesson() -> dict:
    """``{"lesson", "step"}`` last chosen on the Lessons page (an unknown lesson falls back to the first)."""
    steps = max(len(lesson.steps) for lesson in LESSONS.values())
    s = stored(keys.STORED_LESSON, LESSON_DEFAULTS, {"step": (0, steps - 1)}, {"lesson": tuple(LESSONS)})
    return s if s["lesson"] in LESSONS else dict(LESSON_DEFAULTS)


def choose_lesson(name: str) -> None:
    store(keys.STORED_LESSON, LESSON_DEFAULTS, lesson=get_lesson(name).name, step=0)


def _set_regularize(model: str, values: dict) -> None:
    store_reg({**stored_reg(model), **values})
    store_train_options("regularize", {"dropout": 0.0, "dropconnect": 0.0, "train_fraction": 1.0})


def _set_page(page: str):
    return lambda model, values: keep_page_settings(page, {}, **values)


SETTERS = {  # a step's page-settings family -> how that page keeps them
    "regularize": _set_regularize,
    "quantize": lambda model, values: store_quant(**values),
    "activations": lambda model, values: store_activations(**values),
}


def apply_step(lesson: str, index: int) -> None:
    """Set the class's state for step ``index`` of ``lesson`` (a button callback: before the page's widgets exist).

    The model, then the current model (dense, or the dense model pruned by the step's ``PruneConfig``),
    then each page's settings. The caller opens the step's page.
    """
    step = get_lesson(lesson).step(index)
    state = step.state
    store(keys.STORED_LESSON, LESSON_DEFAULTS, lesson=lesson, step=int(index))
    if selected_model() != state.model or not _bundled_bench(state.model):
        choose_model(state.model)
        st.session_state.pop(keys.BENCH, None)  # an upload under the model's name: back to the bundled weights
    reset_bench()
    if state.prune is not None:
        apply_prune(state.prune)
        prune_slider_to(state.prune.sparsity)  # Reset set it to 0 (a callback: sent to the browser)
    else:
        store_prune(PruneConfig())  # the Prune page opens on the dense model too
        reset_prune_slider()
    for family, values in state.settings.items():
        SETTERS.get(family, _set_page(family))(state.model, dict(values))


STORED_KEYS = {"regularize": keys.STORED_REG, "quantize": keys.STORED_QUANT, "activations": keys.STORED_ACTIVATIONS}


def step_is_set(lesson: str, index: int) -> bool:
    """Whether this session's model, current model and the pages' settings are the ones step ``index`` sets: a
    step whose model matched said "The app is set for this step" while its page compared other strategies (an
    audit). The settings are read as kept (no link is read here: that is each page's)."""
    state = get_lesson(lesson).step(index).state
    if selected_model() != state.model or not _bundled_bench(state.model):
        return False
    wb = bench()
    if not (wb.prune_config == state.prune if state.prune is not None else wb.is_dense):
        return False
    for family, values in state.settings.items():
        kept = st.session_state.get(STORED_KEYS.get(family, keys.stored_page(family))) or {}
        if any(_plain(kept.get(name)) != _plain(value) for name, value in values.items()):
            return False
    return True


def _plain(value: Any) -> Any:
    """A setting as compared: tuples and lists alike."""
    return list(value) if isinstance(value, (list, tuple)) else value


def _bundled_bench(model: str) -> bool:
    """Whether the session's workbench holds bundled ``model`` on its own dataset, the model a lesson's reveal
    computes on: after a Home upload under the same name, Set up kept the upload and the page disagreed with the
    reveal (89.3 % shown, 94.4 % revealed; an audit)."""
    wb = st.session_state.get(keys.BENCH)
    return wb is not None and wb.name == model and wb.linkable and wb.dataset == get_spec(model).dataset


def _context(model: str) -> LessonContext:
    """The bundled dense model (a private copy: reveals may train it), its dataset and card."""
    shared, card = bundled(model)
    own = copy.deepcopy(shared)
    for p in own.parameters():
        p.requires_grad_(True)
    return LessonContext(own, dataset_named(get_spec(model).dataset), dict(card), model)


def _copy(reveal: Reveal) -> Reveal:
    return replace(reveal, numbers=dict(reveal.numbers), table=None if reveal.table is None else reveal.table.copy())


_COMPUTING: dict[tuple, threading.Lock] = {}  # one lock per reveal: a class pressing Reveal at once computes it once
_GUARD = threading.Lock()


def _shared_reveal(key: tuple, model: str, compute) -> Reveal:
    cache = shared_cache(LESSON_REVEALS)
    hit = cache.get(key)
    if hit is None:
        with _GUARD:
            lock = _COMPUTING.setdefault(key, threading.Lock())
        with lock:  # the others wait for the first student's computation, then read it
            hit = cache.get(key)
            if hit is None:
                hit = compute(_context(model))
                cache[key] = hit
    return _copy(hit)  # the shared entry stays read-only


def reveal(lesson: str, index: int) -> Reveal:
    """Step ``index``'s reveal, computed once per process for every student (a copy)."""
    step = get_lesson(lesson).step(index)
    return _shared_reveal((lesson, int(index)), step.state.model, step.reveal)


def mark_revealed(lesson: str, index: int) -> None:
    """This student asked for the answer (a button callback)."""
    st.session_state[keys.LESSON_REVEALED] = {*(st.session_state.get(keys.LESSON_REVEALED) or set()),
                                              (lesson, int(index))}


def is_revealed(lesson: str, index: int) -> bool:
    return (lesson, int(index)) in (st.session_state.get(keys.LESSON_REVEALED) or set())


def home_steps() -> Reveal:
    """The Home page's "Try this first", measured on its model (shared, once per process)."""
    return _shared_reveal(("home",), HOME_MODEL, first_steps)
