"""What a lesson is: steps that set the app's state, ask a question, and reveal numbers computed at run time.

A lesson holds no result. Each step's ``reveal`` is a function of the bundled dense model,
its dataset and card (``LessonContext``) that calls the library (prune, evaluate, train,
connectivity, lottery, quantization) and formats what it measured; the app computes it
once per model and shares it between students. Texts never state a number or a
direction ("higher", "keeps more") that the reveal did not compute.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from torch import nn

from ..data import Dataset
from ..session import PruneConfig


@dataclass(frozen=True)
class AppState:
    """What one click sets for the class.

    ``page``: the view to open (its file stem, e.g. ``"2_prune"``); ``model``: the bundled model;
    ``prune``: the Prune settings that make the current model (``None``: the dense model);
    ``settings``: page settings by family (``"regularize"``, ``"quantize"``, ``"activations"``),
    each a mapping of the fields that page stores.
    """

    page: str
    model: str
    prune: PruneConfig | None = None
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class LessonContext:
    """What a reveal computes from: the dense bundled model (never modified), its dataset and card."""

    model: nn.Module
    dataset: Dataset
    card: Mapping[str, Any]
    name: str  # the bundled model's name (fresh initialisations for the lottery)


@dataclass(frozen=True, eq=False)
class Reveal:
    """The answer to a step's question: markdown whose numbers all come from ``numbers`` / ``table``."""

    text: str
    numbers: Mapping[str, float]  # every value the text states, by name (tests compare them with the library)
    table: pd.DataFrame | None = None


@dataclass(frozen=True)
class Step:
    """One step: set ``state``, ask ``question``, then ``reveal`` (computed when the class asks for it)."""

    title: str
    state: AppState
    question: str
    reveal: Callable[[LessonContext], Reveal]
    look: str = ""  # what to look at on the page once it is open


@dataclass(frozen=True)
class Lesson:
    name: str  # registry key
    title: str
    summary: str
    steps: tuple[Step, ...]

    def __post_init__(self):
        if not self.steps:
            raise ValueError(f"Lesson {self.name!r} has no steps.")

    def step(self, index: int) -> Step:
        if not 0 <= index < len(self.steps):
            raise ValueError(f"Lesson {self.name!r} has steps 1..{len(self.steps)}, not {index + 1}.")
        return self.steps[index]


def pct(x: float) -> str:
    """A fraction as the app prints it: ``0.528`` -> ``"52.8 %"``."""
    return f"{100 * x:.1f} %"


def points(x: float) -> str:
    """A difference of fractions in percentage points, signed: ``-0.4`` -> ``"-40.0 points"``."""
    return f"{100 * x:+.1f} points"
