"""Per-layer sensitivity scan: prune ONE layer at a time to each level (the rest dense) and measure accuracy.

Han et al. 2015 ("Learning both Weights and Connections", Fig. 5) prune each layer of a
trained network on its own and plot accuracy against the pruned fraction: the curves
show which layers tolerate pruning (LeNet-300-100's fc1, AlexNet's fc layers) and which
do not (the first conv layer); Distiller's ``sensitivity_analysis`` and NNI's
``SensitivityAnalysis`` automate the same scan. ``sensitivity_scan`` is that scan:

* for each seed, the strategy (in its per-layer scope) ranks the dense model ONCE
  (``Strategy.ranking``: one sort per layer) and every level is cut from that
  ranking, as ``experiments.sweep`` does; strategies without a ranking compute their
  masks once per (seed, level) for all layers;
* for each layer and level, only that layer's mask is applied to a working copy, its
  accuracy measured, and the layer restored: the caller's model is never touched;
* one row per (layer, level, seed): ``accuracy``, ``accuracy_drop`` (dense minus
  pruned, in fractions; positive = worse), ``weights`` and ``zeros`` (exact counts).

``attrs``: ``dense_accuracy``, ``strategy``, ``levels``, ``seeds``, ``layers``, ``split``,
``cancelled`` (a stop ended it early; the finished rows are returned).
The sensitivity-guided strategy (``pruning/sensitivity_guided.py``) reads such a frame.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from .data import Dataset, data_batch
from .devices import resolve_device
from .models import prunable_parameters
from .pruning import STRATEGIES, get_strategy
from .pruning.base import Batch, Strategy, check_sparsity, wants_batch
from .training import evaluate, is_stopped

SCAN_COLUMNS = ["layer", "parameter", "level", "seed", "accuracy", "accuracy_drop", "weights", "zeros"]
DEFAULT_LEVELS = (0.5, 0.7, 0.9, 0.95, 0.99)

Progress = Callable[[float, str], None]


def layer_name(parameter: str) -> str:
    """The layer (module path) a prunable parameter belongs to: ``"fc1.weight"`` -> ``"fc1"``."""
    return parameter.rsplit(".", 1)[0] if "." in parameter else parameter


def layer_labels(parameters) -> dict[str, str]:
    """``{parameter: layer label}``: the module path, or the parameter name where a module holds two prunable ones."""
    paths = [layer_name(n) for n in parameters]
    return {n: (p if paths.count(p) == 1 else n) for n, p in zip(parameters, paths)}


def scan_strategy(name: str, seed: int = 0) -> Strategy:
    """The registry strategy ``name`` in its per-layer scope; ``ValueError`` when it cannot prune one layer alone."""
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(scan_strategy_names())}.")
    cls = STRATEGIES[name]
    if not _scannable(cls):
        raise ValueError(f"Strategy {name!r} cannot prune one layer on its own to an exact level (a scan needs a "
                         "one-shot strategy with a per-layer scope that prunes single weights; structured pruning "
                         "removes whole rows and never the classifier); choose one of "
                         f"{', '.join(scan_strategy_names())}.")
    return get_strategy(name, seed=seed, scope="layer")


def _scannable(cls) -> bool:
    return cls.kind == "one_shot" and "layer" in cls.scopes and cls.granularity == "weight"


def scan_strategy_names() -> list[str]:
    """Registry strategies a scan can use: one-shot, with a per-layer scope, pruning single weights, so every
    layer is cut to exactly ``round(level * weights)`` (registry order)."""
    return [n for n, c in STRATEGIES.items() if _scannable(c)]


def check_levels(levels: Sequence[float]) -> tuple[float, ...]:
    """The levels sorted and de-duplicated; ``ValueError`` for none or one outside [0, 1]."""
    try:
        values = [float(v) for v in levels]
    except (TypeError, ValueError):
        raise ValueError(f"Levels must be numbers in [0, 1], got {levels!r}.") from None
    if not values:
        raise ValueError("Give at least one sparsity level.")
    for v in values:
        try:
            check_sparsity(v)
        except ValueError:
            raise ValueError(f"Sparsity levels must lie in [0, 1], got {v!r}.") from None
    return tuple(sorted(set(values)))


def check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    """The seeds as ints, duplicates dropped; ``ValueError`` for none or one that is not a whole number."""
    out = []
    for s in seeds:
        try:
            whole = not isinstance(s, bool) and int(s) == s
        except (TypeError, ValueError):
            whole = False
        if not whole:
            raise ValueError(f"Seeds must be whole numbers, got {s!r}.")
        out.append(int(s))
    if not out:
        raise ValueError("Give at least one seed.")
    return tuple(dict.fromkeys(out))


def sensitivity_scan(
    model: nn.Module,
    dataset: Dataset,
    levels: Sequence[float] = DEFAULT_LEVELS,
    *,
    strategy: str = "magnitude",
    seeds: Sequence[int] = (0,),
    layers: Sequence[str] | None = None,
    progress: Progress | None = None,
    stop: Callable[[], bool] | object | None = None,
    evaluator: Callable[[nn.Module], nn.Module] | None = None,
    device: str = "cpu",
) -> pd.DataFrame:
    """Test accuracy with one layer at a time pruned to each level by ``strategy`` (see the module docstring).

    Args:
        model: the dense model (never modified).
        dataset: accuracy on its test split; data-driven strategies get ``data_batch(dataset, seed=seed)``.
        levels: sparsity levels in [0, 1] (sorted, duplicates dropped).
        strategy: a one-shot registry strategy with a per-layer scope (``scan_strategy_names()``).
        seeds: the strategy's seeds (random / data-driven strategies differ per seed).
        layers: layer names to scan (default: every prunable layer, ``models.prunable_parameters``).
        progress: ``progress(fraction_done, text)`` after each row.
        stop: checked before each row; the finished rows are returned with ``attrs["cancelled"]``.
        evaluator: maps each pruned model to the module evaluated (identity when None).
        device: where evaluation runs.
    """
    from .run_config import sweep_config  # lazy: run_config imports the pruning registry, which imports this module

    frame = scan_arrays(model, dataset.x_test, dataset.y_test, levels, strategy=strategy, seeds=seeds, layers=layers,
                        batch_for=lambda seed: data_batch(dataset, seed=seed), progress=progress, stop=stop,
                        evaluator=evaluator, device=device, split="test")
    # the full configuration (model and data fingerprints, strategy, levels, seeds, versions) and so a run id,
    # written as the CSV header by experiments.sweep_csv, as for sweeps
    frame.attrs["config"] = sweep_config(
        model, dataset, [strategy], sorted(set(float(v) for v in levels)), list(seeds), finetune=None, schedule=None,
        scope="layer", extra={"kind": "sensitivity_scan", "layers": list(layers) if layers is not None else None})
    return frame


def scan_arrays(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    levels: Sequence[float],
    *,
    strategy: str = "magnitude",
    seeds: Sequence[int] = (0,),
    layers: Sequence[str] | None = None,
    batch_for: Callable[[int], Batch] | None = None,
    progress: Progress | None = None,
    stop: Callable[[], bool] | object | None = None,
    evaluator: Callable[[nn.Module], nn.Module] | None = None,
    device: str = "cpu",
    split: str = "given",
) -> pd.DataFrame:
    """``sensitivity_scan`` measured on inputs ``x`` and labels ``y`` (the guided strategy scans its data batch)."""
    grid = check_levels(levels)
    seed_list = check_seeds(seeds)
    scan_strategy(strategy)  # fail fast, before any work
    base = copy.deepcopy(model).cpu().eval()
    params = prunable_parameters(base)  # weights only: {"fc1.weight": param}
    by_layer = {label: n for n, label in layer_labels(list(params)).items()}
    if layers is None:
        chosen = list(by_layer)
    else:
        chosen = list(dict.fromkeys(layers))
        unknown = [name for name in chosen if name not in by_layer]
        if unknown or not chosen:
            raise ValueError(f"Unknown layer(s) {', '.join(map(repr, unknown)) or '(none given)'}; the prunable "
                             f"layers are {', '.join(by_layer)}.")
    if not chosen:
        raise ValueError("The model has no prunable layer to scan.")

    def accuracy(net: nn.Module) -> float:
        return evaluate(evaluator(net) if evaluator is not None else net, x, y, device=device).accuracy

    device = str(resolve_device(device))
    base = base.to(device)
    dense = accuracy(base)
    attrs = {"dense_accuracy": dense, "strategy": strategy, "levels": list(grid), "seeds": list(seed_list),
             "layers": chosen, "split": split}
    rows: list[dict] = []
    total = len(seed_list) * len(chosen) * len(grid)
    cancelled = False
    originals = {n: params[n].detach().clone() for n in (by_layer[c] for c in chosen)}
    for seed in seed_list:
        if is_stopped(stop):
            cancelled = True
            break
        cuts = _masks_per_level(base, strategy, seed, grid, batch_for)
        for layer in chosen:
            pname = by_layer[layer]
            param, original = params[pname], originals[pname]
            for level in grid:
                if is_stopped(stop):
                    cancelled = True
                    break
                keep = cuts[level][pname].to(param.device)
                with torch.no_grad():
                    param.copy_(original * keep)  # this layer pruned, every other one dense
                acc = accuracy(base)
                with torch.no_grad():
                    param.copy_(original)
                rows.append({"layer": layer, "parameter": pname, "level": level, "seed": seed, "accuracy": acc,
                             "accuracy_drop": dense - acc, "weights": int(keep.numel()),
                             "zeros": int((~keep).sum())})
                if progress is not None:
                    progress(len(rows) / total, f"{layer} at {100 * level:g} %")
            if cancelled:
                break
        if cancelled:
            break
    frame = pd.DataFrame(rows, columns=SCAN_COLUMNS)
    frame.attrs.update(attrs)
    frame.attrs["cancelled"] = cancelled or len(rows) < total
    return frame


def _masks_per_level(base: nn.Module, strategy: str, seed: int, levels: Sequence[float],
                     batch_for: Callable[[int], Batch] | None) -> dict[float, dict[str, torch.Tensor]]:
    """``{level: masks}`` of the strategy on the dense model: one ranking per seed, cut at every level."""
    strat = scan_strategy(strategy, seed)
    if strat.needs_data and batch_for is None:
        raise ValueError(f"Strategy {strategy!r} needs a batch of data (inputs, labels).")
    batch = batch_for(seed) if wants_batch(strat) and batch_for is not None else None
    ranking = strat.ranking(base, batch)
    if ranking is not None:
        return {level: ranking.masks(level) for level in levels}
    return {level: strat.compute_masks(copy.deepcopy(base), level, batch=batch) for level in levels}


def scan_summary(scan: pd.DataFrame) -> pd.DataFrame:
    """Per layer and level: accuracy mean / std over seeds, mean drop, weights and zeros (keeps ``attrs``)."""
    out = (scan.groupby(["layer", "level"], sort=False, as_index=False)
           .agg(mean=("accuracy", "mean"), std=("accuracy", "std"), drop=("accuracy_drop", "mean"),
                seeds=("seed", "count"), weights=("weights", "first"), zeros=("zeros", "mean"))
           .fillna({"std": 0.0}))
    out.attrs.update(scan.attrs)
    return out


def tolerated_level(scan: pd.DataFrame, layer: str, max_drop: float) -> float:
    """The highest scanned level up to which ``layer``'s mean drop stays <= ``max_drop`` (0 when none)."""
    s = scan_summary(scan)
    s = s[s["layer"] == layer].sort_values("level")
    best = 0.0
    for level, drop in zip(s["level"], s["drop"]):
        if drop > max_drop + 1e-9:  # 1.00 - 0.99 is 0.010000000000000009: a drop of exactly 1 point is within it
            break
        best = float(level)
    return best


def describe_scan(scan: pd.DataFrame, max_drop: float = 0.01) -> str:
    """One sentence read from the scan: per layer, the highest level within ``max_drop`` (a fraction) of dense.

    E.g. "Within 1 point of the dense accuracy, fc1 tolerates 70 % pruned (a 0.5-point drop), fc3 only
    50 % (0.7 points); fc1 is the least sensitive, fc3 the most."
    """
    if not len(scan):
        return "The scan has no rows yet."
    s = scan_summary(scan)
    parts, reach = [], {}
    for layer in dict.fromkeys(s["layer"]):
        level = tolerated_level(scan, layer, max_drop)
        rows = s[(s["layer"] == layer) & (s["level"] == level)]
        reach[layer] = (level, -float(s.loc[s["layer"] == layer, "drop"].mean()))
        if level == 0 or not len(rows):
            lowest = s[s["layer"] == layer].sort_values("level").iloc[0]
            parts.append(f"{layer} loses {100 * lowest['drop']:.1f} points already at {100 * lowest['level']:g} %")
        else:
            parts.append(f"{layer} tolerates {100 * level:g} % pruned ({_change(float(rows['drop'].iloc[0]))})")
    points = f"{100 * max_drop:g} point{'s' if max_drop != 0.01 else ''}"
    text = f"Within {points} of the dense accuracy, " + ", ".join(parts)
    if len(reach) > 1:
        order = sorted(reach, key=lambda n: reach[n], reverse=True)  # highest tolerated level, then smallest mean drop
        if reach[order[0]] == reach[order[-1]]:  # it named a least and a most sensitive layer among equals
            text += "; no layer is more sensitive than another here"
        else:
            text += f"; {order[0]} is the least sensitive, {order[-1]} the most"
    return text + "."


def _change(drop: float) -> str:
    """A drop as words: "a 0.5-point drop", "a 3.3-point gain" (it read "a -33.3-point drop"), "no change"."""
    if round(100 * drop, 1) == 0:
        return "no change"
    return f"a {100 * abs(drop):.1f}-point {'drop' if drop > 0 else 'gain'}"
