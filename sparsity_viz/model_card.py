"""The fields of a sample model's JSON card, checked by type when the card is read.

A card is the project's own output (``samples.train_sample``), but it is a plain file a user can edit or replace
(``SPARSITY_VIZ_SAMPLES`` points at any folder): a field of the wrong type used to surface as a traceback deep in
whichever command read it (``'str' object has no attribute 'get'``). ``check_card`` names the field instead.
Fields a card lacks are left to the reader's defaults; unknown fields pass untouched.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from .whole_numbers import is_whole

Check = Callable[[Any], bool]


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _count(v: Any) -> bool:
    return is_whole(v) and v >= 0


def _fraction(v: Any) -> bool:
    return _is_number(v) and 0 <= v <= 1


def _rate(v: Any) -> bool:
    return _is_number(v) and 0 <= v < 1  # TrainConfig's dropout / DropConnect range


def _share(v: Any) -> bool:
    return _is_number(v) and 0 < v <= 1  # TrainConfig's train_fraction range


def _non_negative(v: Any) -> bool:
    return _is_number(v) and v >= 0


def _positive(v: Any) -> bool:
    return _is_number(v) and v > 0


def _text(v: Any) -> bool:
    return isinstance(v, str)


def _numbers(v: Any) -> bool:
    return isinstance(v, list) and all(_is_number(x) for x in v)


def _text_or_none(v: Any) -> bool:
    return v is None or isinstance(v, str)


# field -> (check, what the field must be), per part of the card
TOP: dict[str, tuple[Check, str]] = {
    "name": (_text, "a string"),
    "description": (_text, "a string"),
    "torch_version": (_text, "a string"),
    "balance_weight_reason": (_text, "a string"),
    "seed": (is_whole, "an integer"),
    "parameters": (_count, "a whole number >= 0"),
    "active_parameters": (_count, "a whole number >= 0"),
    "test_accuracy": (_fraction, "a number in [0, 1]"),
    "train_accuracy": (_fraction, "a number in [0, 1]"),
    "test_loss": (_non_negative, "a finite number >= 0"),
    "train_seconds": (_non_negative, "a finite number >= 0"),
    "balance_loss": (_is_number, "a finite number"),
    "balance_loss_per_epoch": (_numbers, "a list of finite numbers"),
    "load": (_numbers, "a list of finite numbers"),
}
DATASET: dict[str, tuple[Check, str]] = {
    "name": (_text, "a string"),
    "seed": (is_whole, "an integer"),
    "test_size": (_count, "a whole number >= 0"),
    "train_size": (_count, "a whole number >= 0"),
}
RECIPE: dict[str, tuple[Check, str]] = {
    "lr": (_positive, "a finite number > 0"),
    "batch_size": (lambda v: is_whole(v) and v >= 1, "a whole number >= 1"),
    "epochs": (_count, "a whole number >= 0"),
    "seed": (is_whole, "an integer"),
    "momentum": (_non_negative, "a finite number >= 0"),
    "weight_decay": (_non_negative, "a finite number >= 0"),
    "strength": (_non_negative, "a finite number >= 0"),
    "balance_weight": (_non_negative, "a finite number >= 0"),
    "zero_threshold": (_non_negative, "a finite number >= 0"),
    "dropout": (_rate, "a number in [0, 1)"),
    "dropconnect": (_rate, "a number in [0, 1)"),
    "train_fraction": (_share, "a number in (0, 1]"),
    "eval_train": (lambda v: isinstance(v, bool), "true or false"),
    "device": (_text, "a string"),
    "optimizer": (_text, "a string"),
    "regularizer": (_text_or_none, "a string or null"),
}
PARTS: dict[str, dict[str, tuple[Check, str]]] = {"dataset": DATASET, "recipe": RECIPE}


def _check_fields(values: Mapping[str, Any], fields: dict[str, tuple[Check, str]], prefix: str) -> list[str]:
    return [f"{prefix}{key} must be {what}, got {_short(values[key])}"
            for key, (ok, what) in fields.items() if key in values and not ok(values[key])]


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def card_problems(card: Any) -> list[str]:
    """Why ``card`` is not a usable model card (empty when it is): one line per field of the wrong type."""
    if not isinstance(card, dict):
        return [f"a model card is a JSON object, got {type(card).__name__}"]
    problems = _check_fields(card, TOP, "")
    for part, fields in PARTS.items():
        if part not in card:
            continue
        if not isinstance(card[part], dict):
            problems.append(f"{part} must be a JSON object, got {type(card[part]).__name__}")
        else:
            problems += _check_fields(card[part], fields, f"{part}.")
    arch = card.get("architecture")
    if "architecture" in card and not (isinstance(arch, dict) and isinstance(arch.get("kind"), str)
                                       and isinstance(arch.get("kwargs"), dict)):
        problems.append("architecture must be a JSON object with a string kind and an object kwargs")
    return problems
