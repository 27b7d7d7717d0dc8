"""The explicit registry of lessons, in teaching order: adding one touches its file and one line here."""

from __future__ import annotations

from . import activations_quantization, l1_zeros, layer_vs_global, lottery_tickets, magnitude_vs_random, survivors
from .base import Lesson

LESSONS: dict[str, Lesson] = {m.LESSON.name: m.LESSON for m in (
    magnitude_vs_random, layer_vs_global, l1_zeros, survivors, lottery_tickets, activations_quantization)}


def get_lesson(name: str) -> Lesson:
    """A registered lesson; an unknown name raises one clear ``ValueError``."""
    if name not in LESSONS:
        raise ValueError(f"Unknown lesson {name!r}; choose one of {', '.join(LESSONS)}.")
    return LESSONS[name]
