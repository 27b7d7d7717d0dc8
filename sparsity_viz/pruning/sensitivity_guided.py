"""Sensitivity-guided pruning: per-layer targets read from a per-layer sensitivity scan.

Han et al. 2015 ("Learning both Weights and Connections", Section 4 and Fig. 5) chose
each layer's pruning rate from a sensitivity analysis: prune one layer at a time, see
how accuracy falls, prune the insensitive layers (LeNet-300-100's fc1) hard and the
sensitive ones gently. Distiller (``sensitivity_analysis`` + a pruning schedule) and
NNI (``SensitivityAnalysis`` / ``SensitivityPruner``) automate it. This strategy does so
with one exact rule:

1. **Cost curve per layer.** From the scan (``sensitivity.sensitivity_scan``, one row per
   layer, level and seed), a layer's cost at level ``l`` is the largest mean accuracy drop
   (over seeds) at any scanned level ``<= l``, and never below 0: a running maximum, so a
   layer's chosen level only grows as the tolerance grows. Level 0 costs 0; level 1 (all
   weights), unless scanned, costs +inf (taken only when nothing else is left).
2. **Tolerance.** For a tolerance ``t``, each layer goes to its highest level whose cost
   is ``<= t``, i.e. ``round(level * n)`` zeros. The tolerance is the smallest scanned
   cost at which the total reaches the target (the costs are sorted: an exact bisection
   over the finitely many steps).
3. **Exact total.** The layers whose level steps up at that tolerance share the rest of
   the target (target minus the zeros at the previous tolerance) in proportion to their
   step, by largest remainder; so the total is ``round(sparsity * total weights)`` to the
   element. Sparsity is thus spent on the least sensitive layers first.
4. **Inside a layer**, the base strategy's scores (default ``magnitude``) choose which
   weights go; weights already pruned in ``current`` go first (never revived; if more are
   pruned than the target allows, ``ValueError``).

Without a ``scan`` the strategy scans the model itself on its data ``batch`` (accuracy on
that batch, ``levels``, the base strategy with this seed): fast, but a batch is noisier
than a test split. Give ``scan=`` a frame from ``sensitivity_scan`` to use the real one.
Biases (``include_bias``) follow their layer's curve. Scope: global (one total).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from ..models import prunable_parameters
from .base import Strategy, check_sparsity, zeros_to_prune
from .erdos_renyi import keep_lowest_count, rebalance

GUIDED_LEVELS = (0.25, 0.5, 0.75, 0.9, 0.95, 0.99)  # the batch scan's grid when no scan is given
INF = math.inf


def cost_curves(scan: pd.DataFrame) -> dict[str, list[tuple[float, float]]]:
    """Per layer, ``[(level, cost), ...]`` ascending: the running maximum of the mean drop over seeds (rule 1)."""
    missing = {"layer", "level", "accuracy_drop"} - set(scan.columns)
    if missing:
        raise ValueError(f"A sensitivity scan needs the columns layer, level, accuracy_drop; missing "
                         f"{', '.join(sorted(missing))}.")
    mean = scan.groupby(["layer", "level"], sort=False)["accuracy_drop"].mean()
    curves: dict[str, list[tuple[float, float]]] = {}
    for layer in dict.fromkeys(scan["layer"]):
        points = sorted((float(lv), float(d)) for lv, d in mean[layer].items())
        curve, worst = [(0.0, 0.0)], 0.0
        for level, drop in points:
            worst = max(worst, drop if drop == drop else INF)  # a NaN drop counts as the worst
            if level > 0:
                curve.append((level, worst))
        if curve[-1][0] < 1.0:
            curve.append((1.0, INF))
        curves[layer] = curve
    return curves


def _level_at(curve: Sequence[tuple[float, float]], tolerance: float) -> float:
    best = 0.0
    for level, cost in curve:
        if cost <= tolerance:
            best = level
    return best


def allocate_zeros(curves: Mapping[str, Sequence[tuple[float, float]]], numel: Mapping[str, int],
                   layer_of: Mapping[str, str], target: int) -> tuple[dict[str, int], float]:
    """Zeros per unit (parameter) summing to exactly ``target``, and the tolerance used (rules 2 and 3).

    ``curves``: per layer; ``layer_of``: unit -> layer (a unit of an unscanned layer costs +inf above 0).
    """
    total = sum(numel.values())
    if not 0 <= target <= total:
        raise ValueError(f"Cannot prune {target} of {total} weights.")
    unscanned = [(0.0, 0.0), (1.0, INF)]
    curve = {u: curves.get(layer_of[u], unscanned) for u in numel}

    def zeros(t: float) -> dict[str, int]:
        return {u: zeros_to_prune(_level_at(curve[u], t), numel[u]) for u in numel}

    steps = sorted({c for cv in curve.values() for _, c in cv})
    low = {u: 0 for u in numel}
    for t in steps:
        high = zeros(t)
        if sum(high.values()) >= target:
            return _share(low, high, target), t
        low = high
    return _share(low, dict(numel), target), INF  # unreachable: the +inf step prunes everything


def _share(low: dict[str, int], high: dict[str, int], target: int) -> dict[str, int]:
    """``low`` plus the rest of ``target`` shared over the step ``high - low`` by largest remainder."""
    rest = target - sum(low.values())
    step = {u: high[u] - low[u] for u in low}
    room = sum(step.values())
    if rest <= 0 or room == 0:
        return dict(low)
    quota = {u: rest * step[u] / room for u in low}
    counts = {u: low[u] + math.floor(quota[u]) for u in low}
    short = target - sum(counts.values())
    for u in sorted(low, key=lambda u: (-(quota[u] - math.floor(quota[u])), list(low).index(u)))[:short]:
        counts[u] += 1
    return counts


def suggest_targets(scan: pd.DataFrame, sparsity: float) -> pd.DataFrame:
    """The per-layer targets this strategy picks for an overall ``sparsity`` over the scanned layers' weights.

    Columns: ``layer, weights, zeros, level`` (zeros / weights) and ``drop_at_level`` (the layer's
    cost there, from the scan); ``attrs``: ``tolerance``, ``target_zeros``, ``sparsity``.
    """
    check_sparsity(sparsity)
    if not len(scan):
        raise ValueError("The scan has no rows; run it first.")
    weights = scan.groupby("layer", sort=False)["weights"].first().astype(int).to_dict()
    curves = cost_curves(scan)
    target = zeros_to_prune(sparsity, sum(weights.values()))
    counts, tolerance = allocate_zeros(curves, weights, {n: n for n in weights}, target)
    rows = []
    for layer, n in weights.items():
        level = counts[layer] / n if n else 0.0
        cost = max((c for lv, c in curves[layer] if lv <= level + 1e-12), default=0.0)
        rows.append({"layer": layer, "weights": n, "zeros": counts[layer], "level": level, "drop_at_level": cost})
    out = pd.DataFrame(rows, columns=["layer", "weights", "zeros", "level", "drop_at_level"])
    out.attrs.update({"tolerance": tolerance, "target_zeros": target, "sparsity": float(sparsity)})
    return out


class SensitivityGuidedStrategy(Strategy):
    name = "sensitivity_guided"
    label = "Sensitivity-guided (per-layer scan)"
    needs_data = True  # the batch it scans on, unless given a scan
    scopes = ("global",)

    def __init__(self, scope: str | None = None, seed: int = 0, include_bias: bool = False, *,
                 scan: pd.DataFrame | None = None, base: str = "magnitude", levels: Sequence[float] = GUIDED_LEVELS):
        super().__init__(scope, seed, include_bias)
        from ..sensitivity import check_levels, scan_strategy  # the scan imports the registry: import late

        strat = scan_strategy(base, seed)
        if not hasattr(strat, "scores"):
            raise ValueError(f"The base strategy of sensitivity_guided must score weights (e.g. magnitude), "
                             f"not {base!r}.")
        self.base, self.levels, self.scan = base, check_levels(levels), scan

    def layer_zero_counts(self, model, sparsity, current=None, batch=None) -> dict[str, int]:
        """Exact zeros per prunable parameter (rules 1-3), at least the ones ``current`` already prunes."""
        check_sparsity(sparsity)
        params = prunable_parameters(model, self.include_bias)
        numel = {n: p.numel() for n, p in params.items()}
        target = zeros_to_prune(sparsity, sum(numel.values()))
        dead = {n: int((~current[n]).sum()) if current is not None and n in current else 0 for n in params}
        if sum(dead.values()) > target:
            raise ValueError(f"all layers: {sum(dead.values())} weights are already pruned, more than the {target} "
                             "the target sparsity allows; masks never revive weights.")
        if target in (0, sum(numel.values())):  # nothing to choose: no scan needed
            counts = {n: (numel[n] if target else 0) for n in params}
        else:
            scan = self.scan if self.scan is not None else self._batch_scan(model, batch)
            from ..sensitivity import layer_labels, layer_name

            weights = layer_labels([n for n in prunable_parameters(model)])
            layer_of = {n: weights.get(n, layer_name(n)) for n in params}  # a bias follows its layer
            counts, _ = allocate_zeros(cost_curves(scan), numel, layer_of, target)
        return rebalance(counts, dead, numel) if current is not None else counts

    def _batch_scan(self, model, batch) -> pd.DataFrame:
        from ..sensitivity import scan_arrays

        if batch is None:
            raise ValueError(f"Strategy {self.name!r} needs a batch of data (inputs, labels) to scan, or scan=.")
        x, y = batch
        device = str(next(model.parameters()).device)
        return scan_arrays(model, x.to(device), y.to(device), self.levels, strategy=self.base, seeds=(self.seed,),
                           batch_for=lambda seed: batch, device=device, split="batch")

    def compute_masks(self, model, sparsity, current=None, batch=None):
        check_sparsity(sparsity)
        if self.scan is None and batch is None:
            raise ValueError(f"Strategy {self.name!r} needs a batch of data (inputs, labels) to scan, or scan=.")
        counts = self.layer_zero_counts(model, sparsity, current, batch)
        from ..sensitivity import scan_strategy

        base = scan_strategy(self.base, self.seed)
        base.include_bias = self.include_bias
        scores = base.scores(model, batch)
        masks = {}
        for n, p in prunable_parameters(model, self.include_bias).items():
            held = current.get(n) if current is not None else None
            keep = keep_lowest_count(scores[n].detach().cpu(), counts[n], None if held is None else held.cpu())
            masks[n] = keep.to(p.device)
        return masks
