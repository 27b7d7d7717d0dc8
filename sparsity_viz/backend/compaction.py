"""Structured compaction: physically remove dead neurons, giving smaller dense layers.

In a chain ``y_i = act(W_i y_{i-1} + b_i)`` a hidden neuron ``j`` of layer ``i`` is
removable when
  * its row of ``W_i`` is all zero: it always outputs the constant ``act(b_i[j])``,
    which is folded into the next bias (``b_{i+1} += W_{i+1}[:, j] * act(b_i[j])``), or
  * its column of ``W_{i+1}`` is all zero: nothing reads it.
Inputs whose column of ``W_1`` is all zero are dropped by an index_select on the
input. The logits keep every output. The result computes the same function (up
to float rounding of the folded bias).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class Compacted:
    """Compacted chain: weights/biases per layer, kept input features, kept rows per layer."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    input_keep: torch.Tensor | None  # (in',) int64 indices into the input, None = all
    kept_rows: list[torch.Tensor]  # per layer: original indices of the surviving outputs

    def removed(self, original: list[torch.Tensor]) -> list[tuple[int, int]]:
        """``(rows removed, cols removed)`` per layer relative to ``original`` shapes."""
        return [(o.shape[0] - w.shape[0], o.shape[1] - w.shape[1]) for o, w in zip(original, self.weights)]


def compact_chain(weights: list[torch.Tensor], biases: list[torch.Tensor | None],
                  act: Callable[[torch.Tensor], torch.Tensor]) -> Compacted:
    """Remove dead hidden neurons and unused inputs from a Linear chain (see module doc)."""
    W = [w.detach().float().clone() for w in weights]
    b = [bb.detach().float().clone() if bb is not None else torch.zeros(w.shape[0]) for bb, w in zip(biases, W)]
    rows = [torch.arange(w.shape[0]) for w in W]
    n = len(W)
    changed = True
    while changed:
        changed = False
        for i in range(n - 1):  # hidden layers only
            dead_row = (W[i] == 0).all(1)  # constant output act(b)
            unused = (W[i + 1] == 0).all(0)  # never read
            drop = dead_row | unused
            if not drop.any():
                continue
            const = act(b[i][dead_row & ~unused])  # (k,)
            if const.numel():
                b[i + 1] = b[i + 1] + W[i + 1][:, dead_row & ~unused] @ const
            keep = ~drop
            W[i], b[i], rows[i] = W[i][keep], b[i][keep], rows[i][keep]
            W[i + 1] = W[i + 1][:, keep]
            changed = True
    in_keep = (W[0] != 0).any(0)
    input_keep = None
    if not in_keep.all():
        input_keep = in_keep.nonzero().flatten()
        W[0] = W[0][:, in_keep]
    return Compacted([w.contiguous() for w in W], b, input_keep, rows)
