"""A sweep's full configuration as plain data, and the run id derived from it.

``sweep_config`` states everything that decides a sweep's numbers: the model (name
and a fingerprint of its weights), the dataset (name, parameters, fingerprint of
its tensors), every strategy with its parameters and scope, the levels, the seeds,
the fine-tuning and schedule ``TrainConfig`` s, and the package and torch versions.
``run_id`` is a short hash of its *canonical JSON* (sorted keys, no spaces, floats
written the same way however they were typed, ``1`` == ``1.0``), so the same
configuration always gets the same id and any change of a field gives another.
The id is of the configuration, never of the results.

A sweep CSV carries the configuration as ``# key: <json>`` comment lines before the
rows (``write_header`` / ``read_header``); ``pandas.read_csv(path, comment="#")``
reads the rows alone, ``experiments.read_sweep_csv`` both.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

import torch
from torch import nn

from . import bounded_json
from .data import Dataset
from .pruning import get_strategy
from .session import architecture_fingerprint, fingerprint
from .training import TrainConfig

RUN_ID_LENGTH = 12  # hex digits of sha256: 48 bits, no collision in any realistic set of runs
# keys of a configuration, in the order a CSV header writes them (run_id first)
CONFIG_KEYS = ("model", "dataset", "strategies", "levels", "seeds", "scope", "finetune", "schedule", "versions")
# TrainConfig fields a sweep does not take from its configs: every point trains on the sweep's device
# with its own seed (the config's ``seed`` is replaced by the point's)
_NOT_CONFIG = ("device", "seed")


def dataset_fingerprint(dataset: Dataset) -> str:
    """A short hash of a dataset's splits (shapes and values of the four tensors)."""
    h = hashlib.sha1()
    for t in (dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test):
        t = t.detach().to("cpu").contiguous()
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def strategy_params(name: str, scope: str | None = None) -> dict[str, Any]:
    """``{"name", "kind", "scope", "params"}`` of a registered strategy as a sweep builds it (seed aside)."""
    strat = get_strategy(name, scope=scope if scope in get_strategy(name).scopes else None)
    skip = {"self", "scope", "seed"}
    params = {p: getattr(strat, p) for p in inspect.signature(type(strat).__init__).parameters
              if p not in skip and hasattr(strat, p)}
    return {"name": name, "kind": strat.kind, "scope": strat.scope, "params": params}


def train_config_dict(config: TrainConfig | None) -> dict[str, Any] | None:
    """A ``TrainConfig`` as a dict without the fields a sweep replaces (``device``, ``seed``); None stays None."""
    if config is None:
        return None
    return {k: v for k, v in asdict(config).items() if k not in _NOT_CONFIG}


def versions() -> dict[str, str]:
    """The package and torch versions (numbers are reproducible bit for bit only with both equal)."""
    from . import __version__  # here, not at import time: the package imports this module while it loads

    return {"sparsity_viz": __version__, "torch": torch.__version__}


def sweep_config(
    model: nn.Module,
    dataset: Dataset,
    strategies: Sequence[str],
    levels: Iterable[float],
    seeds: Iterable[int],
    *,
    finetune: TrainConfig | None,
    schedule: TrainConfig | None,
    scope: str | None,
    model_name: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full configuration of ``experiments.sweep(model, dataset, strategies, levels, seeds, ...)``.

    Args:
        model: the dense model (fingerprinted, not modified).
        dataset: its name, parameters and a fingerprint of its tensors are recorded.
        strategies: registry names, in sweep order (include ``"random"`` if the sweep adds it).
        levels, seeds: as the sweep gets them.
        finetune, schedule: the sweep's training configs (``device`` and ``seed`` left out: the sweep sets them).
        scope: the sweep's scope (each strategy records the scope it really uses).
        model_name: e.g. the bundled sample's name; None for a model built elsewhere.
        extra: more fields of the run that change its numbers (e.g. a page's passes).

    Returns:
        A JSON-ready dict with ``CONFIG_KEYS`` (plus ``extra``); ``run_id(config)`` names it.
    """
    config = {
        "model": {"name": model_name, "fingerprint": fingerprint(model), "architecture": architecture_fingerprint(model)},
        "dataset": {"name": dataset.name, "params": dict(dataset.params), "fingerprint": dataset_fingerprint(dataset)},
        "strategies": [strategy_params(n, scope) for n in strategies],
        "levels": [float(v) for v in levels],
        "seeds": [int(s) for s in seeds],
        "scope": scope,
        "finetune": train_config_dict(finetune),
        "schedule": train_config_dict(schedule),
        "versions": versions(),
    }
    if extra:
        clash = set(extra) & set(config)
        if clash:
            raise ValueError(f"extra fields may not replace configuration keys: {', '.join(sorted(clash))}.")
        config.update(extra)
    return canonical(config)


def canonical(value: Any) -> Any:
    """``value`` as plain JSON data: tuples as lists, integral floats as ints, NaN/inf as strings, keys as str."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (int, float)):  # numpy / torch scalars
        return canonical(value.item())
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return int(value) if value.is_integer() else float(value)
    raise ValueError(f"A configuration holds plain data only, not {type(value).__name__} ({value!r}).")


def canonical_json(config: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces, shortest round-trip floats: equal configurations give equal text."""
    return json.dumps(canonical(config), sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_id(config: Mapping[str, Any]) -> str:
    """A short, stable id of a configuration: the first ``RUN_ID_LENGTH`` hex digits of sha256(canonical JSON)."""
    if not isinstance(config, Mapping):
        raise ValueError(f"run_id needs a configuration dict, got {type(config).__name__}.")
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:RUN_ID_LENGTH]


def header_lines(config: Mapping[str, Any]) -> list[str]:
    """``# run_id: ...`` then one ``# key: <json>`` line per configuration key (known keys first)."""
    config = canonical(config)
    keys = [k for k in CONFIG_KEYS if k in config] + sorted(k for k in config if k not in CONFIG_KEYS)
    return [f"# run_id: {run_id(config)}"] + [f"# {k}: {json.dumps(config[k], sort_keys=True)}" for k in keys]


def with_header(config: Mapping[str, Any], csv_text: str) -> str:
    """The CSV text preceded by the configuration header."""
    return "\n".join(header_lines(config)) + "\n" + csv_text


def read_header(lines: Iterable[str]) -> tuple[dict[str, Any], str | None]:
    """The configuration and the stated run id from the leading ``# key: <json>`` lines (stops at the first row).

    Raises:
        ValueError: a header line is not ``# key: <json>``.
    """
    config: dict[str, Any] = {}
    stated = None
    for line in lines:
        if not line.startswith("#"):
            break
        key, sep, text = line[1:].strip().partition(": ")
        if not sep:
            raise ValueError(f"Header line {line.strip()!r} is not '# key: value'.")
        if key == "run_id":
            stated = text.strip()
            continue
        try:
            config[key] = bounded_json.loads(text)
        except ValueError as exc:  # JSONDecodeError, or nesting too deep
            raise ValueError(f"Header line for {key!r} is not valid JSON: {getattr(exc, 'msg', exc)}.") from None
    return config, stated
