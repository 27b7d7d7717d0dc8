"""Structured pruning: remove whole output neurons (Linear rows) or conv filters by L2 norm.

In each hidden layer the rows / filters with the smallest L2 norm are removed
entirely, as ``torch.nn.utils.prune.ln_structured(n=2, dim=0)`` does. Unlike
unstructured masks, this gives real speed-ups with plain dense kernels: the
layer can be physically shrunk. The output layer is left whole (its rows are the
classes; for a model that is not a chain, the last prunable parameter in
registration order: register the classifier last). The sparsity target counts rows: ``round(sparsity * rows)`` rows are
removed per hidden layer, so element sparsity moves in steps of one row. With masks already in force
(``current``), a row counts as removed only when all of it is pruned, the others rank by the L2 norm of their
surviving weights, and the pruned weights stay pruned (the total, not a fraction of what is left, is the target).
"""

from __future__ import annotations

import torch

from ..layers import prunable_weights
from .base import Strategy, check_sparsity, select_lowest, zeros_to_prune


class StructuredStrategy(Strategy):
    name = "structured"
    label = "Structured (neurons / filters, L2)"
    granularity = "row"
    seeded = False  # row norms alone: every seed gives the same masks

    def hidden_layers(self, model):
        """``(name, module)`` of every prunable weight's layer but the last (the classifier)."""
        return [(w.module_name, w.module) for w in prunable_weights(model)[:-1]]

    def compute_masks(self, model, sparsity, current=None, batch=None):
        check_sparsity(sparsity)
        layers = prunable_weights(model)
        masks = {}
        for i, entry in enumerate(layers):
            w = entry.param.detach()  # (out, in) or (out, in, kh, kw)
            key = entry.key
            if i == len(layers) - 1:
                masks[key] = torch.ones_like(w, dtype=torch.bool) if current is None else current[key].clone()
                if self.include_bias and current is not None and entry.bias_key in current:  # held, not dropped
                    masks[entry.bias_key] = current[entry.bias_key].clone()
                continue
            row_current = None
            if current is not None:
                # as ln_structured over a pruned weight: a row is gone only when all of it is pruned, and the
                # others rank by the norm of what is left of them (a row used to count as gone once any weight was)
                w = w * current[key].to(w.dtype)
                alive = current[key].flatten(1).any(dim=1)  # (out,)
                gone, k = int((~alive).sum()), zeros_to_prune(sparsity, w.shape[0])
                if gone > k:
                    raise ValueError(f"{key}: {gone} rows are already pruned (wholly), more than the {k} rows the target "
                                     "sparsity removes; masks never revive weights, so prune from the dense model.")
                row_current = {key: alive}
            row_norms = w.flatten(1).norm(p=2, dim=1)  # (out,)
            row_keep = select_lowest({key: row_norms}, sparsity, "layer", row_current)[key]
            mask = row_keep.view(-1, *([1] * (w.dim() - 1))).expand_as(w).clone()
            if current is not None:
                mask &= current[key]
            masks[key] = mask
            if self.include_bias and entry.bias_key is not None:
                bias_keep = row_keep.clone()
                if current is not None and entry.bias_key in current:  # a pruned bias stays pruned
                    bias_keep &= current[entry.bias_key]
                masks[entry.bias_key] = bias_keep
        return masks

    def expected_zeros(self, model, sparsity):
        """Exact zeros for a dense start: whole rows per hidden layer, none in the classifier."""
        layers = prunable_weights(model)
        out = {}
        for i, entry in enumerate(layers):
            w = entry.param
            rows = w.shape[0]
            out[entry.key] = 0 if i == len(layers) - 1 else zeros_to_prune(sparsity, rows) * (w.numel() // rows)
            if self.include_bias and entry.bias_key is not None and i < len(layers) - 1:
                out[entry.bias_key] = zeros_to_prune(sparsity, rows)
        return out
