"""``json.loads`` for text from files a user gives: nesting too deep to parse, or a key given twice in one
object, is a ``ValueError``.

The standard parser raises ``RecursionError`` for ``[[[[...]]]]`` some thousand levels deep, which every
loader's ``except ValueError`` let through as a traceback (an audit: a 200 KB model card, a checkpoint's
metadata, a results store's header). The standard parser also keeps the last of two equal keys without a
word: a spec with two ``"layers"`` lists built the second one (another audit).
"""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    """The JSON value of ``text``; ``ValueError`` (``json.JSONDecodeError`` for bad syntax) when it has none."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError("JSON nested too deeply to read") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"the key {key[:80]!r} appears twice in one JSON object")
        obj[key] = value
    return obj
