"""SynFlow: data-free pruning at initialisation by iterative synaptic-flow conservation.

Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
conserving synaptic flow". Replace every parameter by its absolute value, feed
an all-ones input, and let ``R = 1^T f(1)`` be the total "synaptic flow" through
the network; a weight's score is ``|w * dR/dw|``, the flow through it. Pruning
is repeated over ``iterations`` rounds with an exponential schedule (density
``(1 - s)^(k / K)`` after round k), re-scoring the surviving network each time.
Because the score of a connection grows when its layer thins out, SynFlow
provably avoids *layer collapse* (a layer pruned away entirely), which is where
one-shot global SNIP and magnitude break down at extreme sparsity. Global scope
(the original) or per layer. Runs in float64 so large products do not overflow.

Shines: pruning at initialisation without data, and at extreme sparsity
(99 %+), where it keeps every layer connected.
"""

from __future__ import annotations

import torch
from torch import nn

from ..layers import chain_problem
from ..models import prunable_parameters
from ._gradients import private_copy
from .base import ScoreStrategy, check_sparsity, select_lowest, zeros_to_prune


def model_input_shape(model: nn.Module, batch=None) -> tuple[int, ...]:
    """The shape of one input sample: from ``batch`` if given, else read off the first layer of a chain.

    Raises:
        ValueError: no batch and a model that is not a chain (its input shape cannot be read off).
    """
    if batch is not None:
        return tuple(batch[0].shape[1:])
    if hasattr(model, "in_features"):
        return (int(model.in_features),)
    problem = chain_problem(model)
    if problem is not None:
        raise ValueError(f"SynFlow cannot read the input shape off {type(model).__name__} ({problem}); "
                         "pass batch=(inputs, labels): only its shape is used.")
    first = next(m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    if isinstance(first, nn.Conv2d):
        return (first.in_channels, *GUESSED_IMAGE)  # a conv's input size is not in its weights: _FlowNet says so
    return (first.in_features,)


GUESSED_IMAGE = (28, 28)  # MNIST's size, the image size guessed for a conv model given no batch


class _FlowNet:
    """A float64 private copy with |theta| kept aside, re-masked cheaply every round."""

    def __init__(self, model: nn.Module, input_shape, include_bias: bool, guessed: bool = False):
        self.name, self.guessed = type(model).__name__, guessed
        self.work = private_copy(model).double().eval()
        with torch.no_grad():
            for p in self.work.parameters():
                p.abs_()
        self.abs = {n: p.detach().clone() for n, p in self.work.named_parameters()}
        self.params = dict(self.work.named_parameters())
        self.prunable = prunable_parameters(self.work, include_bias)
        device = next((p.device for p in self.work.parameters()), torch.device("cpu"))
        self.x = torch.ones((1, *input_shape), dtype=torch.float64, device=device)

    def scores(self, masks) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(self.abs[n] * masks[n].to(p.device, torch.float64) if n in masks else self.abs[n])
                p.grad = None
        try:
            out = self.work(self.x)
        except RuntimeError as exc:  # torch's shape error from inside the flow pass was the message (an audit)
            if not self.guessed:
                raise
            raise ValueError(f"SynFlow guessed {self.x.shape[-2]}x{self.x.shape[-1]} images for {self.name}, and it "
                             f"does not take them ({str(exc).strip().splitlines()[0][:120]}); pass batch=(inputs, "
                             "labels): only its shape is used.") from None
        out.sum().backward()
        # kept in float64 (ranked so, base.score_dtype): cast to float32, scores past 3.4e38 became inf and tiny
        # ones 0, ties ranked by position, so a global weight scale changed the masks (an audit)
        return {n: (p.detach() * p.grad).abs() for n, p in self.prunable.items()}


def synflow_scores(model: nn.Module, masks, input_shape, include_bias: bool = False,
                   guessed: bool = False) -> dict[str, torch.Tensor]:
    """``|w * dR/dw|`` with ``R = sum(f_|theta|(ones))`` on a float64 private copy, masks applied (``guessed``: the
    input shape is ``model_input_shape``'s guess, and a model that does not take it is told to pass a batch)."""
    return _FlowNet(model, input_shape, include_bias, guessed).scores(masks)


def _guessed(shape: tuple[int, ...], batch) -> bool:
    return batch is None and len(shape) == 3  # only a conv model's image size is guessed


class SynFlowStrategy(ScoreStrategy):
    name = "synflow"
    label = "SynFlow (data-free, at initialisation)"
    reads_input_shape = True  # a batch's shape only: its values are never used
    scopes = ("global", "layer")
    seeded = False  # data-free and deterministic: every seed gives the same masks
    iterations = 100  # Tanaka et al. use 100 rounds

    def __init__(self, scope=None, seed=0, include_bias=False, iterations: int | None = None):
        super().__init__(scope=scope, seed=seed, include_bias=include_bias)
        self.iterations = max(1, int(iterations if iterations is not None else type(self).iterations))

    def scores(self, model, batch):  # one round, no masks: the score map a page can draw
        shape = model_input_shape(model, batch)
        return synflow_scores(model, {}, shape, self.include_bias, _guessed(shape, batch))

    def ranking(self, model, batch=None):
        return None  # the masks come from 100 re-scored rounds, not from one sort

    def compute_masks(self, model, sparsity, current=None, batch=None):
        check_sparsity(sparsity)
        shape = model_input_shape(model, batch)
        params = prunable_parameters(model, self.include_bias)
        masks = {n: (current[n].clone() if current is not None and n in current else torch.ones_like(p, dtype=torch.bool))
                 for n, p in params.items()}
        # fail early, with the shared message, if ``current`` is already past the target
        select_lowest({n: torch.zeros(p.shape) for n, p in params.items()}, sparsity, self.scope, current)
        total = sum(p.numel() for p in params.values())
        net = _FlowNet(model, shape, self.include_bias, _guessed(shape, batch))
        for k in range(1, self.iterations + 1):
            density = (1.0 - sparsity) ** (k / self.iterations)
            level = 1.0 - density if k < self.iterations else sparsity
            scores = net.scores(masks)
            if k < self.iterations:
                masks = _prune_at_least(scores, level, self.scope, masks, total)
            else:
                masks = select_lowest(scores, level, self.scope, masks)
        return masks


def _prune_at_least(scores, level, scope, masks, total):
    """An intermediate round: prune to ``level`` but never below what is already pruned."""
    dead_total = sum(int((~m).sum()) for m in masks.values())
    if scope == "global":
        level = max(level, dead_total / total)
        if zeros_to_prune(level, total) < dead_total:
            return masks
        return select_lowest(scores, level, scope, masks)
    out = {}
    for n, s in scores.items():
        dead = int((~masks[n]).sum())
        lvl = max(level, dead / s.numel())
        out[n] = masks[n] if zeros_to_prune(lvl, s.numel()) < dead else select_lowest({n: s}, lvl, "layer", {n: masks[n]})[n]
    return out
