"""Layer-wise magnitude pruning: in every layer, drop the weights with the smallest |w|.

Han et al. 2015 ("Learning both Weights and Connections") prune each layer by
magnitude and retrain; it is the baseline every other strategy is measured
against. Same masks as ``torch.nn.utils.prune.l1_unstructured`` (ties aside).
Shines with fine-tuning; without it, every layer loses the same fraction, which
hurts small layers (e.g. the output layer) first.
"""

from __future__ import annotations

from ..models import prunable_parameters
from .base import ScoreStrategy


class MagnitudeStrategy(ScoreStrategy):
    name = "magnitude"
    label = "Magnitude (per layer)"
    scopes = ("layer", "global")
    seeded = False  # |w| alone: every seed gives the same masks

    def scores(self, model, batch):
        return {n: p.detach().abs() for n, p in prunable_parameters(model, self.include_bias).items()}
