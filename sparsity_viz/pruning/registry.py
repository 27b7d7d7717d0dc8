"""The explicit registry of pruning strategies: adding one touches its file and one line here."""

from __future__ import annotations

from .base import Strategy
from .global_magnitude import GlobalMagnitudeStrategy
from .magnitude import MagnitudeStrategy
from .random import RandomStrategy
from .structured import StructuredStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    MagnitudeStrategy.name: MagnitudeStrategy,
    GlobalMagnitudeStrategy.name: GlobalMagnitudeStrategy,
    RandomStrategy.name: RandomStrategy,
    StructuredStrategy.name: StructuredStrategy,
}


def get_strategy(name: str, **params) -> Strategy:
    """Instantiate a registered strategy; unknown names raise one clear ``ValueError``."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    return STRATEGIES[name](**params)


def strategy_names() -> list[str]:
    return list(STRATEGIES)
