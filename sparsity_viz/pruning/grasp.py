"""GraSP: pruning at initialisation that preserves gradient flow.

Wang et al. 2020, "Picking Winning Tickets Before Training by Preserving
Gradient Flow". Instead of keeping the loss unchanged (SNIP), GraSP keeps the
*gradient norm* large after pruning: with ``g`` the loss gradient and ``H`` the
Hessian, removing weight w changes ``g^T g`` by about ``-w * (H g)``; the
weights whose removal reduces gradient flow least -- the largest
``-w * (Hg)`` -- are pruned. Here the keep-score is therefore ``w * (Hg)``
(higher = keep). ``Hg`` is one Hessian-vector product (double backward). Logits
are divided by a temperature T = 200 as in the paper. Global scope. Needs data.

Shines: at initialisation at high sparsity, where preserving trainability
matters more than the current loss. Noisy on tiny batches; on trained
networks it is not meant to be used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..models import prunable_parameters
from ._gradients import private_copy
from .base import ScoreStrategy


class GraSPStrategy(ScoreStrategy):
    name = "grasp"
    label = "GraSP (gradient flow, at initialisation)"
    needs_data = True
    scopes = ("global", "layer")
    temperature = 200.0

    def scores(self, model, batch):
        x, y = batch
        work = private_copy(model).eval()
        params = prunable_parameters(work, self.include_bias)
        weights = list(params.values())
        # the math attention kernel: the fused ones (attention blocks of user models) have no double backward
        with sdpa_kernel(SDPBackend.MATH):
            loss = F.cross_entropy(work(x) / self.temperature, y)
            g = torch.autograd.grad(loss, weights)  # g, treated as a constant
            loss = F.cross_entropy(work(x) / self.temperature, y)
            g2 = torch.autograd.grad(loss, weights, create_graph=True)
            z = sum((a * b.detach()).sum() for a, b in zip(g2, g))
            hg = torch.autograd.grad(z, weights, allow_unused=True)
        return {
            n: (w.detach() * (h if h is not None else torch.zeros_like(w))).detach()
            for (n, w), h in zip(params.items(), hg)
        }
