"""Random unstructured pruning: drop a seeded, uniformly random subset of weights.

The floor every real strategy must beat (Blalock et al. 2020). Per layer by
default (each layer keeps the same fraction); with global scope the fraction is
uniform over all weights, so layers keep roughly the same density too. Seeded:
the same seed gives the same mask.
"""

from __future__ import annotations

import torch

from ..models import prunable_parameters
from .base import ScoreStrategy


class RandomStrategy(ScoreStrategy):
    name = "random"
    label = "Random"
    scopes = ("layer", "global")

    def scores(self, model, batch):
        generator = torch.Generator().manual_seed(self.seed)
        params = prunable_parameters(model, self.include_bias)
        return {n: torch.rand(p.shape, generator=generator).to(p.device) for n, p in params.items()}
