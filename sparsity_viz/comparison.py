"""Comparing strategies: accuracy curves, per-layer profiles, survival maps, effective sparsity.

Everything here is pure library code returning DataFrames / tensors, so a page
is one call plus a chart:

* accuracy curves over strategies, levels and seeds are ``experiments.sweep``
  (with ``baselines=True`` for the random floor) and ``experiments.summarize``.
* ``sparsity_profile(masks_by_strategy)`` / ``strategy_profiles(...)`` -- which
  layers each strategy hits hardest.
* ``survival_map(a, b)`` / ``survival_table(a, b)`` / ``pixel_fanout(masks)`` --
  connections kept by both / only A / only B / neither, Jaccard per layer, and
  for MNIST-sized MLPs the surviving fan-out of every input pixel.
* ``effective_masks`` / ``effective_sparsity`` / ``collapse_report`` /
  ``collapse_warnings`` -- a weight with no path from the input to the output
  does nothing, so it counts as removed (Vysogorets & Kempe 2021); a layer
  pruned away entirely (layer collapse, Tanaka et al. 2020) cuts every path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from .masks import Masks
from .pruning import get_strategy, prune

NEITHER, ONLY_A, ONLY_B, BOTH = 0, 1, 2, 3
CATEGORY_NAMES = {NEITHER: "neither", ONLY_A: "only A", ONLY_B: "only B", BOTH: "both"}


# --- effective sparsity and layer collapse -----------------------------------------------


def weight_masks(masks: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """The weight masks (``>= 2`` dims) in forward order (masks are built in layer order)."""
    return [(n, m) for n, m in masks.items() if m.dim() >= 2]


def _adjacency(mask: torch.Tensor) -> torch.Tensor:
    """``(out_units, in_units)`` bool: Linear -> the mask; Conv -> channel i feeds channel o if any tap survives."""
    return mask if mask.dim() == 2 else mask.flatten(2).any(-1)


def _resize_units(alive: torch.Tensor, size: int) -> torch.Tensor:
    """Map unit liveness across a flatten (conv channels -> linear features): each channel owns ``size/len`` features."""
    if alive.numel() == size:
        return alive
    if size % alive.numel() == 0:
        return alive.repeat_interleave(size // alive.numel())
    if alive.numel() % size == 0:  # backwards: a channel is useful if any of its features is
        return alive.view(size, -1).any(1)
    raise ValueError(f"Cannot connect a layer of {alive.numel()} units to one of {size} inputs.")


def effective_masks(masks: Mapping[str, torch.Tensor]) -> Masks:
    """Weight masks with every weight that lies on no input -> output path removed.

    Forward: a unit is reachable if some surviving weight connects it to a
    reachable unit of the previous layer (all inputs are reachable). Backward:
    a unit is useful if some surviving weight connects it to a useful unit of
    the next layer (all outputs are useful). A weight counts if it survives,
    its source is reachable and its target useful. Convolutions are treated at
    channel level (a channel is reachable if any of its taps is); biases are
    not considered. Returns only weight masks.
    """
    items = weight_masks(masks)
    if not items:
        return {}
    adj = [_adjacency(m.cpu()) for _, m in items]
    reach_in: list[torch.Tensor] = []
    alive = torch.ones(adj[0].shape[1], dtype=torch.bool)
    for a in adj:
        alive = _resize_units(alive, a.shape[1])
        reach_in.append(alive)
        alive = (a & alive[None, :]).any(1)
    useful_out: list[torch.Tensor] = [torch.empty(0)] * len(adj)
    useful = torch.ones(adj[-1].shape[0], dtype=torch.bool)
    for i in range(len(adj) - 1, -1, -1):
        useful_out[i] = useful
        useful = (adj[i] & useful[:, None]).any(0)
        if i > 0:
            useful = _resize_units(useful, adj[i - 1].shape[0])
    out: Masks = {}
    for (name, m), r, u in zip(items, reach_in, useful_out):
        keep = u[:, None] & r[None, :]  # (out, in)
        if m.dim() > 2:
            keep = keep.view(*keep.shape, *([1] * (m.dim() - 2)))
        out[name] = m.cpu() & keep
    return out


def effective_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of weights removed once weights on no input -> output path count as removed."""
    eff = effective_masks(masks)
    total = sum(m.numel() for m in eff.values())
    return 1.0 - sum(int(m.sum()) for m in eff.values()) / total if total else 0.0


def nominal_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of weights (``>= 2``-dim masks) that the masks prune."""
    items = weight_masks(masks)
    total = sum(m.numel() for _, m in items)
    return 1.0 - sum(int(m.sum()) for _, m in items) / total if total else 0.0


def collapse_report(masks: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Per weight layer: nominal and effective sparsity, dead units, and whether it collapsed.

    ``collapsed``: the layer keeps no weight at all (every path is cut).
    ``disconnected``: no input -> output path survives through this layer.
    """
    eff = effective_masks(masks)
    rows = []
    for name, m in weight_masks(masks):
        adj = _adjacency(m.cpu())
        e = eff[name]
        rows.append({
            "layer": name,
            "total": m.numel(),
            "nominal_sparsity": 1.0 - int(m.sum()) / m.numel(),
            "effective_sparsity": 1.0 - int(e.sum()) / m.numel(),
            "dead_outputs": int((~adj.any(1)).sum()),  # units of this layer with no surviving input weight
            "dead_inputs": int((~adj.any(0)).sum()),  # inputs of this layer that feed nothing
            "collapsed": not bool(m.any()),
            "disconnected": not bool(e.any()),
        })
    return pd.DataFrame(rows)


def collapse_warnings(masks: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable warnings: collapsed layers, and a network with no input -> output path left."""
    report = collapse_report(masks)
    warnings = [f"Layer collapse: {r.layer} keeps no weight; every path from input to output is cut."
                for r in report.itertuples() if r.collapsed]
    if not warnings and len(report) and report["disconnected"].any():
        warnings.append("No path from the input to the output survives: the network outputs a constant.")
    nominal, effective = nominal_sparsity(masks), effective_sparsity(masks)
    if effective - nominal > 1e-3 and not warnings:
        warnings.append(
            f"Effective sparsity {effective:.2%} exceeds nominal {nominal:.2%}: "
            "some surviving weights lie on no input -> output path."
        )
    return warnings


# --- survival maps -----------------------------------------------------------------------


def survival_map(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per layer, an int8 tensor: 3 = kept by both, 1 = only A, 2 = only B, 0 = neither.

    (``code = kept_A + 2 * kept_B``; names in ``CATEGORY_NAMES``.)
    """
    out = {}
    for name in a:
        if name in b:
            out[name] = (a[name].cpu().to(torch.int8) + 2 * b[name].cpu().to(torch.int8))
    return out


def survival_table(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Per layer (and ``"all"``): counts of both / only A / only B / neither and the Jaccard overlap.

    Jaccard = |kept by both| / |kept by either| (1.0 when neither keeps anything).
    """
    rows = []
    cats = survival_map(a, b)
    for name, c in list(cats.items()) + [("all", torch.cat([c.flatten() for c in cats.values()]) if cats else torch.empty(0))]:
        counts = {k: int((c == k).sum()) for k in CATEGORY_NAMES}
        union = counts[BOTH] + counts[ONLY_A] + counts[ONLY_B]
        rows.append({
            "layer": name, "total": c.numel(), "both": counts[BOTH], "only_a": counts[ONLY_A],
            "only_b": counts[ONLY_B], "neither": counts[NEITHER],
            "jaccard": counts[BOTH] / union if union else 1.0,
        })
    return pd.DataFrame(rows)


def pixel_fanout(masks: Mapping[str, torch.Tensor], image_shape: tuple[int, int] = (28, 28),
                 effective: bool = False) -> torch.Tensor:
    """Surviving outgoing connections of every input pixel, shaped ``image_shape`` (MLP first layer).

    With ``effective=True`` only connections on an input -> output path count.

    Raises:
        ValueError: the first layer is not a Linear over ``prod(image_shape)`` inputs.
    """
    m = effective_masks(masks) if effective else dict(masks)
    name, first = weight_masks(m)[0]
    if first.dim() != 2 or first.shape[1] != math.prod(image_shape):
        raise ValueError(f"{name} has shape {tuple(first.shape)}; pixel fan-out needs a Linear over "
                         f"{math.prod(image_shape)} pixels.")
    return first.cpu().sum(0).view(image_shape)


def fanout_comparison(a, b, image_shape=(28, 28)) -> dict[str, torch.Tensor]:
    """Pixel fan-out of A, of B, and B - A (where B keeps more connections from a pixel)."""
    fa, fb = pixel_fanout(a, image_shape), pixel_fanout(b, image_shape)
    return {"a": fa, "b": fb, "difference": fb - fa}


def compare_masks(model: nn.Module, a: tuple[str, int], b: tuple[str, int], sparsity: float,
                  batch=None, scope: str | None = None) -> dict:
    """Prune ``model`` with two ``(strategy, seed)`` pairs at ``sparsity``: masks, categories, table.

    Returns ``{"masks_a", "masks_b", "categories", "table"}`` (and ``"fanout"``
    when the first layer is a Linear over 784 pixels).
    """
    ma = _prune_for(model, a[0], sparsity, a[1], batch, scope)
    mb = _prune_for(model, b[0], sparsity, b[1], batch, scope)
    out = {"masks_a": ma, "masks_b": mb, "categories": survival_map(ma, mb), "table": survival_table(ma, mb)}
    first = weight_masks(ma)[0][1]
    if first.dim() == 2 and first.shape[1] == 784:
        out["fanout"] = fanout_comparison(ma, mb)
    return out


def _prune_for(model, name, sparsity, seed, batch, scope):
    strategy = get_strategy(name, seed=seed, scope=scope if scope in get_strategy(name).scopes else None)
    return prune(model, strategy, sparsity, batch=batch if strategy.needs_data else None).masks


# --- per-layer profiles ------------------------------------------------------------------


def sparsity_profile(masks_by_strategy: Mapping[str, Mapping[str, torch.Tensor]]) -> pd.DataFrame:
    """Long table: strategy, layer, total, kept, sparsity, effective_sparsity (one row per layer)."""
    rows = []
    for strategy, masks in masks_by_strategy.items():
        eff = effective_masks(masks)
        for name, m in masks.items():
            kept = int(m.sum())
            e = eff.get(name)
            rows.append({"strategy": strategy, "layer": name, "total": m.numel(), "kept": kept,
                         "sparsity": 1.0 - kept / m.numel(),
                         "effective_sparsity": 1.0 - int(e.sum()) / m.numel() if e is not None else 1.0 - kept / m.numel()})
    return pd.DataFrame(rows)


def strategy_profiles(model: nn.Module, strategies: Sequence[str], sparsity: float, batch=None,
                      seed: int = 0) -> pd.DataFrame:
    """``sparsity_profile`` of each named strategy pruning ``model`` at ``sparsity``."""
    return sparsity_profile({s: _prune_for(model, s, sparsity, seed, batch, None) for s in strategies})
