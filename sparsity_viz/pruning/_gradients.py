"""Shared helper for gradient-based scores: gradients on a private copy of the model.

The model passed in is never touched (no ``.grad`` left behind, no mode change):
all work happens on a deep copy in train mode... or eval mode where asked.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..models import prunable_parameters


def private_copy(model: nn.Module) -> nn.Module:
    """A deep copy with gradients enabled on every parameter and no stale ``.grad``."""
    work = copy.deepcopy(model)
    for p in work.parameters():
        p.requires_grad_(True)
        p.grad = None
    return work


def loss_gradients(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    include_bias: bool = False,
    chunk: int | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Weights and cross-entropy gradients of the prunable parameters on ``batch``.

    Returns ``(weights, grads)`` where ``grads`` is one dict per micro-batch of
    ``chunk`` samples (one dict for the whole batch when ``chunk`` is None).
    Computed on a private copy in eval mode (deterministic; these models have no
    dropout / batch norm anyway).
    """
    x, y = batch
    work = private_copy(model).eval()
    params = prunable_parameters(work, include_bias)
    size = len(y) if chunk is None else max(1, chunk)
    grads: list[dict[str, torch.Tensor]] = []
    for i in range(0, len(y), size):
        work.zero_grad(set_to_none=True)
        logits = work(x[i : i + size].to(next(work.parameters()).device))
        loss = F.cross_entropy(logits, y[i : i + size].to(logits.device))
        loss.backward()
        grads.append({n: p.grad.detach().clone() for n, p in params.items()})
    weights = {n: p.detach().clone() for n, p in params.items()}
    return weights, grads
