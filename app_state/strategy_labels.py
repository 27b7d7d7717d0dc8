"""Strategy names for menus, with a "slow" mark where a live step was measured slow on the session's model.

The mark comes from ``sparsity_viz.pruning.live_cost`` (written by ``benchmarks/live_prune.py``), never from a guess.
"""

from __future__ import annotations

from sparsity_viz.pruning import STRATEGIES, live_cost


def slow_note(name: str, model: str) -> str | None:
    """``"slow: ~N s a step"`` when ``name``'s measured live step on ``model`` is slow, else ``None``."""
    if not live_cost.is_slow(name, model):
        return None
    return f"slow: ~{live_cost.seconds(name, model):.1f} s a step"


def strategy_label(name: str, model: str) -> str:
    """The registry label, with the slow mark when it applies (for ``format_func`` of strategy menus)."""
    label = STRATEGIES[name].label if name in STRATEGIES else name
    note = slow_note(name, model)
    return f"{label} ({note})" if note else label


def prune_spinner_text(name: str, model: str) -> str:
    """What the spinner says while ``name`` prunes ``model``: how long it takes when it was measured slow."""
    label = STRATEGIES[name].label if name in STRATEGIES else name
    s = live_cost.seconds(name, model)
    if live_cost.is_slow(name, model):
        return f"Pruning with {label}: about {s:.1f} s on {model} (measured), the page updates when it is done..."
    return f"Pruning with {label}..."
