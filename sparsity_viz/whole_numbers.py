"""One test for a count, a seed or an index given by a caller: an integer, Python's or numpy's, and not a bool
(``True`` is an ``int`` in Python, and ran as 1 where a count or a seed was wanted)."""

from __future__ import annotations

import numbers
from typing import Any


def is_whole(value: Any) -> bool:
    """Whether ``value`` is an integer (``int``, a numpy integer) and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
