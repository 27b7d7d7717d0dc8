"""``json.loads`` for text from files a user gives: nesting too deep to parse is a ``ValueError``.

The standard parser raises ``RecursionError`` for ``[[[[...]]]]`` some thousand levels deep, which every
loader's ``except ValueError`` let through as a traceback (an audit: a 200 KB model card, a checkpoint's
metadata, a results store's header).
"""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    """The JSON value of ``text``; ``ValueError`` (``json.JSONDecodeError`` for bad syntax) when it has none."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None
