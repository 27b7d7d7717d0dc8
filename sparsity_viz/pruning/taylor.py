"""First-order Taylor saliency: prune the weights whose removal changes the loss least.

Removing weight w changes the loss by about ``-w * dL/dw`` (first-order Taylor
expansion; LeCun et al. 1990's Optimal Brain Damage is the second-order
cousin). Molchanov et al. 2017 ("Pruning Convolutional Neural Networks for
Resource Efficient Inference") score by the magnitude ``|w * g|`` averaged over
mini-batches; their 2019 paper ("Importance Estimation for Neural Network
Pruning") squares it, ``(w * g)**2``, which ranks the same within one batch but
weighs the mini-batches differently in the average. This strategy takes the
2017 magnitude: the batch is split into micro-batches of ``chunk`` samples
(default 32) and ``|w * g_b|`` is averaged, so a weight whose gradient merely
cancels across samples still counts as important. Per layer by default, or
global. Needs data.

Shines on *trained* networks where |w| alone misleads (large but useless
weights); SNIP is the same score on the full-batch gradient at initialisation.
"""

from __future__ import annotations

import torch

from ._gradients import loss_gradients
from .base import ScoreStrategy


class TaylorStrategy(ScoreStrategy):
    name = "taylor"
    label = "First-order Taylor |w·∂L/∂w|"
    needs_data = True
    scopes = ("layer", "global")
    chunk = 32

    def scores(self, model, batch):
        weights, grads = loss_gradients(model, batch, self.include_bias, chunk=self.chunk)
        return {n: torch.stack([(weights[n] * g[n]).abs() for g in grads]).mean(0) for n in weights}
