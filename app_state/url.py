"""The URL's query parameters: the shareable part of the state (model, strategy, scope, sparsity, lambda).

``parse_query`` turns parameters into settings (pure: no session state); ``set_url``
mirrors settings back; ``share_link`` is the link for the class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import streamlit as st

from sparsity_viz.pruning import STRATEGIES
from sparsity_viz.session import PruneConfig

from .resources import sample_names

LOCAL_URL = "http://localhost:8501/"


@dataclass(frozen=True)
class UrlSettings:
    """What a shared link asks for; None where it says nothing (or nothing valid)."""

    model: str | None = None
    prune: PruneConfig | None = None
    lam: float | None = None


def _float(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value else None


def parse_query(params: Mapping[str, str], models: list[str], base: PruneConfig = PruneConfig()) -> UrlSettings:
    """Valid settings from query parameters; unknown names and out-of-range numbers are ignored."""
    model = params.get("model")
    prune = base
    strategy = params.get("strategy")
    if strategy in STRATEGIES:
        scopes = STRATEGIES[strategy].scopes
        prune = replace(prune, strategy=strategy, scope=prune.scope if prune.scope in scopes else scopes[0])
    scope = params.get("scope")
    if scope in STRATEGIES[prune.strategy].scopes:
        prune = replace(prune, scope=scope)
    s = _float(params.get("sparsity"))
    if s is not None and 0 <= s <= 100:
        prune = replace(prune, sparsity=round(s) / 100)
    lam = _float(params.get("lam"))
    return UrlSettings(
        model=model if model in models else None,
        prune=prune if ("strategy" in params or "sparsity" in params) else None,
        lam=lam if lam is not None and lam >= 0 else None,
    )


def query() -> UrlSettings:
    """The current URL's settings."""
    return parse_query(st.query_params.to_dict(), sample_names())


def set_url(**params: Any) -> None:
    """Mirror settings in the URL (only what changed, so reruns stay cheap)."""
    qp = st.query_params
    for k, v in params.items():
        text = f"{v:g}" if isinstance(v, float) else str(v)
        if qp.get(k) != text:
            qp[k] = text


def share_link() -> str:
    """The app URL with the current query parameters."""
    try:
        base = (st.context.url or "").split("?")[0]
    except Exception:  # noqa: BLE001 - no browser context (AppTest)
        base = ""
    q = "&".join(f"{k}={v}" for k, v in st.query_params.to_dict().items())
    return f"{base or LOCAL_URL}?{q}"
