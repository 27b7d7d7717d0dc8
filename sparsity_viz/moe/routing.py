"""Routing: a learned linear router, top-k gating and the load-balancing loss.

The router maps a flattened input to one logit per expert; ``route`` turns the logits
into a ``Routing``: the ``top_k`` experts each input goes to and their gate weights.

* top-2 (and any k >= 2), Shazeer et al. 2017: softmax over the router logits, the k
  largest probabilities renormalised to sum to 1 over the selected experts.
* top-1, Switch Transformer (Fedus et al. 2021): the gate is the raw softmax probability
  of the one chosen expert. Renormalising one probability gives 1.0 and cuts the router
  off from the task loss (it would learn only from the balance loss); ``renormalize=True``
  forces it anyway.

Load-balancing loss (Switch Transformer, eq. 4): ``N * sum_i f_i * P_i``, with ``f_i`` the
fraction of routing assignments that went to expert i (over ``batch * k`` assignments, so
``sum f = 1``) and ``P_i`` the mean router probability of expert i. It is 1.0 for perfectly
uniform routing and at most ``N / k``, when the router is certain of one expert (each input's k
assignments go to k experts, so one gets at most ``1 / k`` of them: N for top-1, 2.0 for 4 experts
at top-2); only ``P`` carries gradient (``f`` comes from an argmax).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class Router(nn.Module):
    """``logits = x.flatten(1) @ weight.T + bias``, one logit per expert.

    Deliberately not an ``nn.Linear``: ``models.prunable_layers`` finds layers by that type,
    and the router is not a prunable layer (pruning the gate is a different experiment
    from pruning experts; its weights stay dense under every strategy).
    """

    def __init__(self, in_features: int, num_experts: int):
        super().__init__()
        self.in_features = in_features
        self.num_experts = num_experts
        self.weight = nn.Parameter(torch.empty(num_experts, in_features))
        self.bias = nn.Parameter(torch.empty(num_experts))
        bound = 1.0 / math.sqrt(in_features)  # nn.Linear's default initialisation
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.flatten(1), self.weight, self.bias)  # (B, num_experts)


@dataclass(frozen=True)
class Routing:
    """Where a batch goes.

    Attributes:
        experts: ``(B, k)`` int64, the chosen experts per input, most probable first.
        gates: ``(B, k)`` gate weights of the chosen experts.
        logits: ``(B, N)`` router logits.
        probs: ``(B, N)`` softmax of the logits.
        load: ``(N,)`` int64, how many assignments each expert received (sums to ``B * k``).
        balance_loss: scalar tensor, ``N * sum_i f_i * P_i`` (differentiable through ``probs``).
    """

    experts: torch.Tensor
    gates: torch.Tensor
    logits: torch.Tensor
    probs: torch.Tensor
    load: torch.Tensor
    balance_loss: torch.Tensor

    @property
    def num_experts(self) -> int:
        return self.logits.shape[-1]

    def dense_gates(self) -> torch.Tensor:
        """``(B, N)`` gate matrix: the gate weight of each chosen expert, 0 for every other."""
        dense = torch.zeros_like(self.probs)
        return dense.scatter(1, self.experts, self.gates)


def balance_loss(probs: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """``N * sum_i f_i * P_i`` for router ``probs`` ``(B, N)`` and chosen ``experts`` ``(B, k)``."""
    n = probs.shape[-1]
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    counts = torch.bincount(experts.reshape(-1), minlength=n).to(probs.dtype)
    f = counts / experts.numel()  # fraction of assignments per expert
    p = probs.mean(0)  # mean router probability per expert
    return n * (f * p).sum()


def route(logits: torch.Tensor, top_k: int, renormalize: bool | None = None) -> Routing:
    """Top-k gating of router ``logits`` ``(B, N)``.

    Args:
        logits: router output.
        top_k: experts per input, ``1 <= top_k <= N``.
        renormalize: renormalise the chosen probabilities to sum to 1; ``None``: only
            when ``top_k >= 2`` (see the module docstring).
    """
    n = logits.shape[-1]
    if not 1 <= top_k <= n:
        raise ValueError(f"top_k must be between 1 and the number of experts ({n}), got {top_k}.")
    if renormalize is None:
        renormalize = top_k >= 2
    probs = logits.softmax(-1)
    gates, experts = probs.topk(top_k, dim=-1)  # sorted, most probable first
    if renormalize:
        gates = gates / gates.sum(-1, keepdim=True)
    load = torch.bincount(experts.reshape(-1), minlength=n)
    return Routing(experts=experts, gates=gates, logits=logits, probs=probs, load=load,
                   balance_loss=balance_loss(probs, experts))
