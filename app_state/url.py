"""The URL's query parameters: the shareable part of the state.

Workbench parameters: ``model``, ``dataset``, ``strategy``, ``scope``, ``sparsity`` (%), ``seed``,
``lam`` (the Regularize page's lambda) and ``recipe`` (how a trained current model is made
again, ``model_recipe.ModelRecipe.to_text``). Page settings: ``<page>.<field>`` (``settings.store``
mirrors them; ``parse_settings`` reads them back against the page's defaults). Parameters
this module does not know (the playground's ``pg_*``) are left alone.

``parse_query`` and ``parse_settings`` are pure (no session state); ``set_url`` / ``mirror_settings``
write back; ``share_link`` is the link for the class.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from sparsity_viz.model_recipe import ModelRecipe
from sparsity_viz.pruning import STRATEGIES, is_scheduled
from sparsity_viz.session import PruneConfig

from .resources import compatible_datasets, sample_names

LOCAL_URL = "http://localhost:8501/"
RECIPE = "recipe"  # the parameter that carries a trained model's recipe
PAGE_PARAM = re.compile(r"^([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)$")  # <page>.<field>
MAX_SEED = 10_000
MAX_ERROR = 300  # characters of a recipe's error shown


@dataclass(frozen=True)
class UrlSettings:
    """What a shared link asks for; None where it says nothing (or nothing valid)."""

    model: str | None = None
    dataset: str | None = None
    prune: PruneConfig | None = None
    lam: float | None = None
    recipe: ModelRecipe | None = None  # a trained model to rebuild
    recipe_error: str | None = None  # why the link's recipe was not understood
    pages: dict[str, dict[str, str]] = field(default_factory=dict)  # {page: {field: text}}, read by each page
    ignored: tuple[str, ...] = ()  # workbench parameters present but not understood, as "name 'text'"


def _float(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _int(text: Any) -> int | None:
    try:
        return int(str(text))
    except ValueError:
        return None


def shown(text: Any) -> str:
    """A parameter's text for a message: quoted, at most 40 characters."""
    text = str(text)
    return repr(text if len(text) <= 40 else text[:39] + "…")


def not_understood(ignored: Collection[str]) -> str:
    """The sentence a page or the sidebar shows for a link's parameters that were left out ("name 'text'")."""
    return (f"This link's {', '.join(ignored)} {'was' if len(ignored) == 1 else 'were'} not understood and left "
            "out: the app uses its own settings there.")


def parse_query(params: Mapping[str, str], models: list[str], base: PruneConfig = PruneConfig()) -> UrlSettings:
    """Valid settings from query parameters; out-of-range or unknown values are left out and listed in ``ignored``
    (parameters this module does not know are left alone)."""
    ignored: list[str] = []

    def ignore(name: str) -> None:
        ignored.append(f"{name} {shown(params[name])}")

    model = params.get("model")
    if model is not None and model not in models:
        ignore("model")
        model = None
    prune = base
    strategy = params.get("strategy")
    if strategy in STRATEGIES and not is_scheduled(strategy):  # the slider prunes once (scheduled ones train)
        scopes = STRATEGIES[strategy].scopes
        prune = replace(prune, strategy=strategy, scope=prune.scope if prune.scope in scopes else scopes[0])
    elif strategy is not None:
        ignore("strategy")
    scope = params.get("scope")
    if scope in STRATEGIES[prune.strategy].scopes:
        prune = replace(prune, scope=scope)
    elif scope is not None:
        ignore("scope")
    s = _float(params.get("sparsity"))
    if s is not None and 0 <= s <= 100 and s.is_integer():  # the slider's whole percents: 99.5 had become 100
        prune = replace(prune, sparsity=s / 100)
    elif "sparsity" in params:
        ignore("sparsity")
    seed = _int(params.get("seed"))
    if seed is not None and 0 <= seed <= MAX_SEED:
        prune = replace(prune, seed=seed)
    elif "seed" in params:
        ignore("seed")
    lam = _float(params.get("lam"))
    if "lam" in params and (lam is None or lam < 0):
        ignore("lam")
    dataset = params.get("dataset")
    if dataset is not None and model is not None and dataset not in compatible_datasets(model):
        ignore("dataset")
    recipe, error = None, None
    if params.get(RECIPE):
        try:
            recipe = ModelRecipe.from_text(params[RECIPE])
        except ValueError as exc:  # its message may quote the link's text: a 100 KB recipe filled the sidebar
            error = str(exc) if len(str(exc)) <= MAX_ERROR else str(exc)[:MAX_ERROR - 1] + "…"
    pages: dict[str, dict[str, str]] = {}
    for name, text in params.items():
        m = PAGE_PARAM.match(name)
        if m:
            pages.setdefault(m.group(1), {})[m.group(2)] = str(text)
    return UrlSettings(
        model=model,
        dataset=dataset if model is not None and dataset in compatible_datasets(model) else None,
        prune=prune if any(k in params for k in ("strategy", "scope", "sparsity", "seed")) else None,
        lam=lam if lam is not None and lam >= 0 else None,
        recipe=recipe,
        recipe_error=error,
        pages=pages,
        ignored=tuple(ignored),
    )


def query() -> UrlSettings:
    """The current URL's settings."""
    return parse_query(st.query_params.to_dict(), sample_names())


def encode(value: Any) -> str:
    """One setting as URL text: lists comma-joined, booleans 1/0, floats as the shortest exact text."""
    if isinstance(value, (list, tuple)):
        return ",".join(encode(v) for v in value)
    if isinstance(value, bool):
        return "1" if value else "0"
    return repr(value) if isinstance(value, float) else str(value)


def _whole(value: float | None) -> float | int | None:
    return int(value) if value is not None and value.is_integer() else value


def _decode(text: str, default: Any) -> Any:
    """``text`` read as the type of ``default``; None when it does not read as one."""
    if isinstance(default, bool):
        return {"1": True, "true": True, "0": False, "false": False}.get(text.lower())
    if isinstance(default, int):
        return _int(text)
    if isinstance(default, float):
        return _float(text)
    if isinstance(default, (list, tuple)):  # numbers stay ints where they are whole (levels: 90, 99.5)
        item = default[0] if default else None  # an empty default: numbers where they read as numbers
        number = isinstance(item, (int, float)) and not isinstance(item, bool)
        items = [_whole(_float(t)) if number else _decode(t, item) for t in text.split(",") if t]
        return None if any(i is None for i in items) else items
    if default is None:  # an optional setting (a layer name, a k): a number if it reads as one
        return _int(text) if _int(text) is not None else text
    return text


def parse_settings(texts: Mapping[str, str], defaults: Mapping[str, Any],
                   ranges: Mapping[str, tuple[float, float]] | None = None,
                   choices: Mapping[str, Collection] | None = None) -> dict[str, Any]:
    """A page's settings from its URL texts: each read as its default's type; unknown fields, values of the wrong
    type, numbers outside ``ranges`` (inclusive, for lists every item), values outside ``choices`` and lists that
    repeat an item (``curves.levels=90,90`` reached the sweep, which refuses repeats, as a traceback) are dropped."""
    out: dict[str, Any] = {}
    for name, text in texts.items():
        if name not in defaults:
            continue
        value = _decode(str(text), defaults[name])
        if value is None:
            continue
        items = value if isinstance(value, list) else [value]
        if len(set(items)) != len(items):
            continue
        if ranges and name in ranges:
            lo, hi = ranges[name]
            if not all(isinstance(v, (int, float)) and lo <= v <= hi for v in items):
                continue
        if choices and name in choices and not all(v in choices[name] for v in items):
            continue
        out[name] = value
    return out


def set_url(**params: Any) -> None:
    """Mirror settings in the URL (only what changed, so reruns stay cheap)."""
    qp = st.query_params
    for k, v in params.items():
        text = f"{v:g}" if isinstance(v, float) else str(v)
        if qp.get(k) != text:
            qp[k] = text


def drop_url(*names: str) -> None:
    """Remove parameters from the URL."""
    qp = st.query_params
    for name in names:
        if name in qp:
            del qp[name]


def mirror_settings(page: str, values: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
    """Write a page's settings as ``<page>.<field>`` parameters: those unlike the defaults (the rest are dropped)."""
    qp = st.query_params
    for name, default in defaults.items():
        key, value = f"{page}.{name}", values.get(name, default)
        if value == default or value is None:
            drop_url(key)
        elif qp.get(key) != encode(value):
            qp[key] = encode(value)


def set_recipe(recipe: ModelRecipe | None) -> None:
    """The current model's recipe in the URL when rebuilding it means training (else the prune parameters say it)."""
    if recipe is not None and recipe.trained:
        set_url(**{RECIPE: recipe.to_text()})
    else:
        drop_url(RECIPE)


def share_link() -> str:
    """The app URL (this page) with the current query parameters."""
    try:
        base = (st.context.url or "").split("?")[0]
    except Exception:  # noqa: BLE001 - no browser context (AppTest)
        base = ""
    return f"{base or LOCAL_URL}?{urlencode(st.query_params.to_dict(), safe=',:')}"
