"""Global magnitude pruning: drop the smallest |w| over all layers at once.

One threshold for the whole network, so large layers with many small weights
(LeNet-300-100's fc1) lose most and small, important layers keep more; this is
how Han et al.'s 12x compression of LeNet-300-100 distributes itself. Same masks
as ``torch.nn.utils.prune.global_unstructured`` with ``L1Unstructured`` (ties
aside). Can empty a whole layer at extreme sparsity (layer collapse).
"""

from __future__ import annotations

from .magnitude import MagnitudeStrategy


class GlobalMagnitudeStrategy(MagnitudeStrategy):
    name = "global_magnitude"
    label = "Magnitude (global)"
    scopes = ("global",)
