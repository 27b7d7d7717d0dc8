"""Guided lessons: one click sets the app's state for the class, a question, then a reveal measured at run time.

One lesson per file (``magnitude_vs_random``, ``layer_vs_global``, ``l1_zeros``, ``survivors``,
``lottery_tickets``, ``activations_quantization``) behind the explicit ``registry``; ``base`` holds
the data types, ``measure`` the shared measurements, ``home`` the Home page's first steps.
Streamlit-free: the app's ``app_state.lessons`` applies a step's ``AppState`` and caches reveals.
"""

from .base import AppState, Lesson, LessonContext, Reveal, Step
from .home import first_steps
from .registry import LESSONS, get_lesson

__all__ = ["AppState", "Lesson", "LessonContext", "LESSONS", "Reveal", "Step", "first_steps", "get_lesson"]
