"""SNIP: single-shot pruning at initialisation by connection sensitivity |w * dL/dw|.

Lee et al. 2019, "SNIP: Single-shot Network Pruning based on Connection
Sensitivity". One forward/backward pass on a batch gives, for every weight, how
much the loss would change if the connection were removed (first-order:
``|w * g|``); the least sensitive connections are pruned once, before any
training, with one global threshold (the original; ``scope="layer"`` too).
The normalisation by the sum of all sensitivities in the paper does not change
the ranking, so it is left out. Needs a batch of data (inputs, labels).

Shines: pruning a freshly initialised network cheaply, at moderate sparsity.
Weak at extreme sparsity, where its global ranking can empty whole layers
(layer collapse; compare SynFlow). On a *trained* network the same formula is
first-order Taylor pruning (see ``taylor.py``).
"""

from __future__ import annotations

from ._gradients import loss_gradients
from .base import ScoreStrategy


class SNIPStrategy(ScoreStrategy):
    name = "snip"
    label = "SNIP (at initialisation)"
    needs_data = True
    scopes = ("global", "layer")

    def scores(self, model, batch):
        weights, (grads,) = loss_gradients(model, batch, self.include_bias)
        return {n: (weights[n] * grads[n]).abs() for n in weights}
