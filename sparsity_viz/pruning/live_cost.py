"""How long one live-slider step takes per strategy and bundled model, as measured by ``benchmarks/live_prune.py``.

The numbers live in ``live_cost.json`` beside this file (median seconds of ``data_batch`` + ``prune`` on the dense
bundled model, written by the benchmark, never by hand). A strategy is *slow for the live slider* on a model when
its measured step takes longer than ``LIVE_SLOW_S``; the app marks it in its strategy menus and runs it behind a
spinner that says so. A model or strategy without a measurement is not marked (nothing is guessed).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

PATH = Path(__file__).with_name("live_cost.json")
LIVE_SLOW_S = 0.5  # s; above this a slider step no longer feels live (the classroom target is <= 1 s per move)


@functools.lru_cache(maxsize=1)
def _cached() -> dict:
    return json.loads(PATH.read_text()) if PATH.exists() else {}


def load() -> dict:
    """The benchmark's record: ``{"command", "level", "repeats", "machine", "seconds": {model: {strategy: s}}}``."""
    return json.loads(json.dumps(_cached()))  # a copy: the cached record stays read-only


def seconds(strategy: str, model: str) -> float | None:
    """Measured median seconds of one live step, or ``None`` when not measured."""
    return _cached().get("seconds", {}).get(model, {}).get(strategy)


def is_slow(strategy: str, model: str) -> bool:
    """True when ``strategy``'s measured live step on ``model`` exceeds ``LIVE_SLOW_S``."""
    s = seconds(strategy, model)
    return s is not None and s > LIVE_SLOW_S


def slow_strategies(model: str) -> list[str]:
    """The strategies marked slow on ``model``, in the order of the record."""
    return [n for n, s in _cached().get("seconds", {}).get(model, {}).items() if s > LIVE_SLOW_S]


def markdown_table(data: dict) -> str:
    """The record as a markdown table (models as columns; slow steps in bold)."""
    from ..models import MODELS
    from .registry import strategy_names

    def order(known: list[str]):  # registry / bundled-model order first, anything else after, by name
        return lambda n: (known.index(n) if n in known else len(known), n)

    per_model = data.get("seconds", {})
    models = sorted(per_model, key=order(list(MODELS)))
    strategies = sorted({s for m in models for s in per_model[m]}, key=order(strategy_names()))
    head = "| strategy | " + " | ".join(models) + " |\n|---|" + "---:|" * len(models)
    rows = []
    for s in strategies:
        cells = []
        for m in models:
            v = per_model[m].get(s)
            cells.append("" if v is None else (f"**{v:.2f}**" if v > LIVE_SLOW_S else f"{v:.2f}"))
        rows.append(f"| {s} | " + " | ".join(cells) + " |")
    note = (f"\n\nSeconds per live step (median of {data.get('repeats')} interleaved rounds, "
            f"level {data.get('level')}; "
            f"{data.get('machine')}); **bold** = above {LIVE_SLOW_S} s, marked slow in the menus. "
            f"Command: `{data.get('command')}`.")
    return head + "\n" + "\n".join(rows) + note
