"""N:M semi-structured pruning: at most N of every M consecutive input weights survive.

Idea: split each output row's fan-in (a Linear row, or a conv filter flattened
as ``in_channels * kh * kw``) into consecutive groups of M and keep the N
largest |w| of each group. Exactly this pattern (2:4) is what NVIDIA's sparse
tensor cores accelerate (Mishra et al. 2021, "Accelerating Sparse Deep Neural
Networks"; Zhou et al. 2021, "Learning N:M Fine-grained Structured Sparse
Neural Networks"). 1:4 is the more aggressive variant (75 %).

For a conv the groups run along the fan-in flattened as ``(in_channels, kh, kw)``:
the columns of the im2col matrix that this project's backend multiplies (its 2:4
and N:M paths run a conv through im2col). NVIDIA's ASP groups M consecutive
*input channels* at each filter tap instead (the layout of cuDNN's NHWC kernels),
so a conv mask from here is N:M for im2col, not for ASP; Linear layers agree.

The pattern's natural element sparsity is ``1 - N/M`` (``natural_sparsity``).
To keep the shared contract (any target in [0, 1], exact count, never revive),
the ``sparsity`` argument is honoured exactly: weights are ranked first by
whether the N:M pattern drops them, then by |w|, and the ``round(s * numel)``
lowest are pruned per layer. So

* at ``s == 1 - N/M`` (and fan-in divisible by M) the mask *is* the N:M pattern;
* at ``s > 1 - N/M`` it is the N:M pattern plus extra magnitude pruning among
  the kept weights -- still hardware-valid ("at most N of M");
* at ``s < 1 - N/M`` only the smallest pattern-dropped weights go: a partial
  pattern, not yet accelerable.

A trailing group shorter than M (fan-in not divisible by M) keeps
``min(len, N)`` weights. Biases (``include_bias``) are ranked by |b| alone.
Shines when you want real speed-ups from fine-grained sparsity on Ampere+ GPUs;
costs a little accuracy against unstructured magnitude at the same sparsity.
"""

from __future__ import annotations

import torch

from ..models import prunable_parameters
from .base import ScoreStrategy


def n_m_keep(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Bool mask keeping the ``n`` largest |w| of every ``m`` consecutive inputs of each row.

    ``weight`` is ``(out, ...)``; groups run along the flattened fan-in. Ties go
    to the earlier position (stable sort). A trailing partial group keeps
    ``min(len, n)`` entries.
    """
    if not (1 <= n <= m):
        raise ValueError(f"N:M needs 1 <= N <= M, got {n}:{m}.")
    rows = weight.detach().abs().reshape(weight.shape[0], -1)  # (out, fan_in)
    out, fan_in = rows.shape
    pad = (-fan_in) % m
    # pad with +inf scores? no: padded slots must never be kept, so use -inf and
    # make the partial group keep min(len, n) by capping below
    padded = torch.cat([rows, torch.full((out, pad), float("-inf"), dtype=rows.dtype, device=rows.device)], dim=1)
    groups = padded.view(out, -1, m)  # (out, G, m)
    order = torch.argsort(-groups, dim=-1, stable=True)  # descending |w|, earlier first on ties
    ranks = torch.empty_like(order)
    ranks.scatter_(-1, order, torch.arange(m, device=order.device).expand_as(order).contiguous())
    keep = (ranks < n).view(out, -1)[:, :fan_in]
    return keep.reshape(weight.shape)


class NMStrategy(ScoreStrategy):
    """N:M semi-structured pruning (default 2:4); see the module docstring."""

    name = "n_m"
    label = "N:M semi-structured"
    seeded = False  # |w| within each group of M: every seed gives the same masks
    n: int = 2
    m: int = 4

    def __init__(self, scope=None, seed=0, include_bias=False, n: int | None = None, m: int | None = None):
        super().__init__(scope=scope, seed=seed, include_bias=include_bias)
        self.n = int(n if n is not None else type(self).n)
        self.m = int(m if m is not None else type(self).m)
        if not (1 <= self.n <= self.m):
            raise ValueError(f"N:M needs 1 <= N <= M, got {self.n}:{self.m}.")

    @property
    def natural_sparsity(self) -> float:
        """Element sparsity of the pure pattern, ``1 - N/M``."""
        return 1.0 - self.n / self.m

    def scores(self, model, batch):
        out = {}
        for name, p in prunable_parameters(model, self.include_bias).items():
            w = p.detach()
            flat = w.abs().flatten()
            # rank by |w| inside each tier: integer ranks keep float32 exact (numel < 2**23)
            rank = torch.empty(flat.numel(), dtype=torch.float64, device=w.device)
            rank[torch.argsort(flat, stable=True)] = torch.arange(flat.numel(), dtype=torch.float64, device=w.device)
            if w.dim() >= 2:
                tier = n_m_keep(w, self.n, self.m).flatten().to(torch.float64)  # 1 = the pattern keeps it
            else:
                tier = torch.zeros_like(rank)
            out[name] = (tier * flat.numel() + rank).view_as(w)
        return out

    def is_n_m(self, masks) -> dict[str, bool]:
        """Per weight matrix: does the mask satisfy "at most N of every M" (hardware-valid)?"""
        result = {}
        for name, mask in masks.items():
            if mask.dim() < 2:
                continue
            rows = mask.reshape(mask.shape[0], -1)
            pad = (-rows.shape[1]) % self.m
            rows = torch.cat([rows, torch.zeros(rows.shape[0], pad, dtype=torch.bool, device=rows.device)], dim=1)
            result[name] = bool((rows.view(rows.shape[0], -1, self.m).sum(-1) <= self.n).all())
        return result

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n}:{self.m}, include_bias={self.include_bias})"


class NM24Strategy(NMStrategy):
    """2:4 semi-structured (50 %): the pattern Ampere sparse tensor cores run."""

    name = "n_m_2_4"
    label = "2:4 semi-structured"
    n, m = 2, 4


class NM14Strategy(NMStrategy):
    """1:4 semi-structured (75 %)."""

    name = "n_m_1_4"
    label = "1:4 semi-structured"
    n, m = 1, 4
