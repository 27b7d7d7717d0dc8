"""Sparse random initialisation with Erdős–Rényi(-Kernel) layer densities.

Mocanu et al. 2018 (SET) draw each sparse layer as an Erdős–Rényi random graph
whose density scales with ``(n_in + n_out) / (n_in * n_out)``; Evci et al. 2020
(RigL) extend it to convolutions, "ERK": ``sum(shape) / prod(shape)`` for a
``(out, in, kh, kw)`` kernel. Small layers (the classifier, the first conv)
thus stay dense-ish and big ones (LeNet-300-100's fc1) get sparse. One factor
``eps`` scales all densities so the total matches the target; a layer whose
density would exceed 1 is kept dense and ``eps`` is re-solved for the rest
(as in the RigL code). Counts are then made integers by largest remainder, so
the *total* number of zeros is exact (``scope="global"``). Inside each layer the
surviving connections are a seeded uniform random subset.

Shines: as the starting topology for sparse training (SET / RigL) and as a
strong random baseline -- the layer allocation alone beats uniform random
pruning by far. Ignores the weights entirely.
"""

from __future__ import annotations

import math

import torch

from ..models import prunable_parameters
from .base import Strategy, check_sparsity, score_dtype, zeros_to_prune


def er_raw(shape: tuple[int, ...]) -> float:
    """The un-normalised ER(K) density of a parameter: ``sum(shape) / prod(shape)``; biases: 1."""
    if len(shape) < 2:
        return 1.0
    return sum(shape) / math.prod(shape)


def er_densities(shapes: dict[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Per-layer densities ``min(1, eps * raw)`` with total density ``density`` (real numbers)."""
    numel = {n: math.prod(s) for n, s in shapes.items()}
    total = sum(numel.values())
    target = density * total
    dense: set[str] = set()
    if density <= 0:
        return {n: 0.0 for n in shapes}
    while True:
        rest = [n for n in shapes if n not in dense]
        budget = target - sum(numel[n] for n in dense)
        denom = sum(er_raw(shapes[n]) * numel[n] for n in rest)
        if not rest or denom <= 0:
            return {n: 1.0 if n in dense else 0.0 for n in shapes}
        eps = budget / denom
        over = [n for n in rest if eps * er_raw(shapes[n]) > 1.0]
        if not over:
            return {n: 1.0 if n in dense else eps * er_raw(shapes[n]) for n in shapes}
        dense.update(over)


def er_zero_counts(shapes: dict[str, tuple[int, ...]], sparsity: float) -> dict[str, int]:
    """Exact integer zeros per layer: ER densities, largest-remainder rounding to ``round(s * total)``."""
    check_sparsity(sparsity)
    numel = {n: math.prod(s) for n, s in shapes.items()}
    total_zeros = zeros_to_prune(sparsity, sum(numel.values()))
    dens = er_densities(shapes, 1.0 - sparsity)
    real = {n: min(numel[n], max(0.0, (1.0 - dens[n]) * numel[n])) for n in shapes}
    counts = {n: int(math.floor(v)) for n, v in real.items()}
    short = total_zeros - sum(counts.values())
    order = sorted(shapes, key=lambda n: (-(real[n] - counts[n]), list(shapes).index(n)))
    i = 0
    while short != 0 and i < 10 * len(order) + 10:
        n = order[i % len(order)]
        if short > 0 and counts[n] < numel[n]:
            counts[n] += 1
            short -= 1
        elif short < 0 and counts[n] > 0:
            counts[n] -= 1
            short += 1
        i += 1
    return counts


def rebalance(target: dict[str, int], floor: dict[str, int], numel: dict[str, int]) -> dict[str, int]:
    """Counts ``>= floor`` per layer with the same total as ``target``, moving as little as possible."""
    counts = {n: max(target[n], floor[n]) for n in target}
    excess = sum(counts.values()) - sum(target.values())
    for n in sorted(counts, key=lambda n: -(counts[n] - floor[n])):
        if excess <= 0:
            break
        take = min(excess, counts[n] - floor[n])
        counts[n] -= take
        excess -= take
    return counts


def keep_lowest_count(scores: torch.Tensor, k: int, current: torch.Tensor | None) -> torch.Tensor:
    """Keep-mask pruning exactly ``k`` entries: the already-pruned first, then the lowest scores."""
    s = scores.detach().to(score_dtype([scores])).flatten().clone()
    if current is not None:
        s[~current.flatten().to(s.device)] = float("-inf")
    keep = torch.ones(s.numel(), dtype=torch.bool, device=s.device)  # on the scores' device: a CUDA argsort indexes it
    if k > 0:
        keep[torch.argsort(s, stable=True)[:k]] = False
    return keep.view(scores.shape)


class ErdosRenyiStrategy(Strategy):
    name = "erdos_renyi"
    label = "Sparse random init (Erdős–Rényi-Kernel)"
    scopes = ("global",)

    def layer_zero_counts(self, model, sparsity, current=None) -> dict[str, int]:
        params = prunable_parameters(model, self.include_bias)
        shapes = {n: tuple(p.shape) for n, p in params.items()}
        counts = er_zero_counts(shapes, sparsity)
        if current is not None:
            dead = {n: int((~current[n]).sum()) if n in current else 0 for n in params}
            if sum(dead.values()) > sum(counts.values()):
                raise ValueError(
                    f"all layers: {sum(dead.values())} weights are already pruned, more than the "
                    f"{sum(counts.values())} the target sparsity allows; masks never revive weights."
                )
            counts = rebalance(counts, dead, {n: p.numel() for n, p in params.items()})
        return counts

    def compute_masks(self, model, sparsity, current=None, batch=None):
        check_sparsity(sparsity)
        counts = self.layer_zero_counts(model, sparsity, current)
        generator = torch.Generator().manual_seed(self.seed)
        masks = {}
        for n, p in prunable_parameters(model, self.include_bias).items():
            scores = torch.rand(p.shape, generator=generator)
            masks[n] = keep_lowest_count(scores, counts[n], None if current is None else current.get(n)).to(p.device)
        return masks
