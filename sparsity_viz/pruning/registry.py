"""The explicit registry of pruning strategies: adding one touches its file and one line here."""

from __future__ import annotations

from .base import Strategy
from .global_magnitude import GlobalMagnitudeStrategy
from .magnitude import MagnitudeStrategy
from .random import RandomStrategy
from .structured import StructuredStrategy
from .n_m import NM14Strategy, NM24Strategy
from .snip import SNIPStrategy
from .synflow import SynFlowStrategy
from .grasp import GraSPStrategy
from .erdos_renyi import ErdosRenyiStrategy
from .taylor import TaylorStrategy
from .gradual import GradualStrategy
from .iterative import IterativeStrategy
from .dynamic import RigLStrategy, SETStrategy
from .sensitivity_guided import SensitivityGuidedStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    MagnitudeStrategy.name: MagnitudeStrategy,
    GlobalMagnitudeStrategy.name: GlobalMagnitudeStrategy,
    RandomStrategy.name: RandomStrategy,
    StructuredStrategy.name: StructuredStrategy,
    NM24Strategy.name: NM24Strategy,
    NM14Strategy.name: NM14Strategy,
    SNIPStrategy.name: SNIPStrategy,
    SynFlowStrategy.name: SynFlowStrategy,
    GraSPStrategy.name: GraSPStrategy,
    ErdosRenyiStrategy.name: ErdosRenyiStrategy,
    TaylorStrategy.name: TaylorStrategy,
    SensitivityGuidedStrategy.name: SensitivityGuidedStrategy,
    GradualStrategy.name: GradualStrategy,
    IterativeStrategy.name: IterativeStrategy,
    SETStrategy.name: SETStrategy,
    RigLStrategy.name: RigLStrategy,
}


def get_strategy(name: str, **params) -> Strategy:
    """Instantiate a registered strategy; unknown names raise one clear ``ValueError``."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    return STRATEGIES[name](**params)


def get_one_shot_strategy(name: str, purpose: str, **params) -> Strategy:
    """``get_strategy`` for a use that needs one-shot masks (``purpose``: "Deep Compression", "a figure"); a scheduled
    strategy is refused by name: its ``compute_masks`` are plain magnitude's, which were used under its name."""
    strategy = get_strategy(name, **params)
    if strategy.scheduled:
        raise ValueError(f"{name} prunes while it trains (a scheduled strategy), so it has no one-shot masks for "
                         f"{purpose}; choose one of {', '.join(one_shot_strategy_names())}.")
    return strategy


def strategy_names() -> list[str]:
    return list(STRATEGIES)


def scheduled_strategy_names() -> list[str]:
    """Registered strategies that prune while training (``kind == "scheduled"``), in registry order."""
    return [n for n, cls in STRATEGIES.items() if cls.kind == "scheduled"]


def one_shot_strategy_names() -> list[str]:
    """Registered strategies that prune once (``kind == "one_shot"``), in registry order."""
    return [n for n, cls in STRATEGIES.items() if cls.kind == "one_shot"]


def is_scheduled(strategy: str | Strategy) -> bool:
    """True when ``strategy`` (a registry name or an instance) prunes while training."""
    if isinstance(strategy, str):
        if strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}.")
        return STRATEGIES[strategy].kind == "scheduled"
    return strategy.scheduled
