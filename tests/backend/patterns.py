"""Sparsity patterns shared by the backend tests."""

import torch

PATTERNS = ["0%", "50%", "90%", "99%", "100%", "empty-rows", "empty-cols", "2:4"]


def make_weight(pattern: str, shape=(24, 40), seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    if pattern.endswith("%"):
        s = float(pattern[:-1]) / 100
        k = int(round(s * w.numel()))
        w.view(-1)[torch.randperm(w.numel(), generator=g)[:k]] = 0
    elif pattern == "empty-rows":
        w[torch.rand(shape[0], generator=g) < 0.5] = 0
        w[torch.rand(shape, generator=g) < 0.5] = 0
    elif pattern == "empty-cols":
        w[:, torch.rand(shape[1], generator=g) < 0.5] = 0
        w[0] = 0
    elif pattern == "2:4":
        groups = w.view(shape[0], -1, 4)
        order = torch.rand(groups.shape, generator=g).argsort(-1)
        groups.scatter_(-1, order[..., :2], 0.0)
    else:
        raise ValueError(pattern)
    return w
