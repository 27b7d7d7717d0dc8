"""Comparing strategies: accuracy curves, per-layer profiles, survival maps.

Everything here is pure library code returning DataFrames / tensors, so a page
is one call plus a chart:

* accuracy curves over strategies, levels and seeds are ``experiments.sweep``
  (with ``baselines=True`` for the random floor) and ``experiments.summarize``.
* ``sparsity_profile(masks_by_strategy)`` / ``strategy_profiles(...)`` -- which
  layers each strategy hits hardest.
* ``survival_map(a, b)`` / ``survival_table(a, b)`` / ``fanout_comparison`` --
  connections kept by both / only A / only B / neither, Jaccard per layer, and
  the surviving fan-out of every input pixel under each.
* effective sparsity, layer collapse, dead units and fan-out are
  ``connectivity``'s (one definition for the whole package).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from .connectivity import effective_masks, input_fanout, layer_masks, weight_masks
from .pruning import get_strategy, prune, wants_batch

NEITHER, ONLY_A, ONLY_B, BOTH = 0, 1, 2, 3
CATEGORY_NAMES = {NEITHER: "neither", ONLY_A: "only A", ONLY_B: "only B", BOTH: "both"}


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


def fanout_comparison(model: nn.Module, a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor],
                      input_shape: Sequence[int] = (28, 28)) -> dict[str, torch.Tensor]:
    """Input fan-out (``connectivity.input_fanout``) of ``model`` under A, under B, and B - A
    (where B keeps more connections from a pixel)."""
    fa, fb = input_fanout(model, a, input_shape), input_fanout(model, b, input_shape)
    return {"a": fa, "b": fb, "difference": fb - fa}


def compare_masks(model: nn.Module, a: tuple[str, int], b: tuple[str, int], sparsity: float,
                  batch=None, scope: str | None = None, input_shape: Sequence[int] | None = None) -> dict:
    """Prune ``model`` with two ``(strategy, seed)`` pairs at ``sparsity``: masks, categories, table.

    Returns ``{"masks_a", "masks_b", "categories", "table"}`` and ``"fanout"``
    (``fanout_comparison``): for any model (MLP or conv) when ``input_shape`` is
    given, else when the first layer is a Linear over 784 (28 x 28) pixels.
    """
    ma = _prune_for(model, a[0], sparsity, a[1], batch, scope)
    mb = _prune_for(model, b[0], sparsity, b[1], batch, scope)
    out = {"masks_a": ma, "masks_b": mb, "categories": survival_map(ma, mb), "table": survival_table(ma, mb)}
    first = weight_masks(ma)[0][1]
    if input_shape is None and first.dim() == 2 and first.shape[1] == 784:
        input_shape = (28, 28)
    if input_shape is not None:
        out["fanout"] = fanout_comparison(model, ma, mb, input_shape)
    return out


def _prune_for(model, name, sparsity, seed, batch, scope):
    strategy = get_strategy(name, seed=seed, scope=scope if scope in get_strategy(name).scopes else None)
    return prune(model, strategy, sparsity, batch=batch if wants_batch(strategy) else None).masks


# --- per-layer profiles ------------------------------------------------------------------


def sparsity_profile(masks_by_strategy: Mapping[str, Mapping[str, torch.Tensor]],
                     model: nn.Module | None = None) -> pd.DataFrame:
    """Long table: strategy, layer, total, kept, sparsity, effective_sparsity (one row per layer).

    ``model``: the chain the masks prune; its traced forward order connects the layers (without it, the masks'
    own order is taken as forward order, as for the bundled models).
    """
    rows = []
    for strategy, masks in masks_by_strategy.items():
        eff = effective_masks(layer_masks(model, masks) if model is not None else masks)
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
    return sparsity_profile({s: _prune_for(model, s, sparsity, seed, batch, None) for s in strategies}, model)
