"""Which expert the router picks at every point of a 2-D input plane (the toys' expert regions)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .model import MoEMLP, routing


@dataclass(frozen=True, eq=False)
class ExpertMap:
    """The router's first choice on a grid: ``experts[j, i]`` at ``(xs[i], ys[j])``."""

    xs: np.ndarray  # (nx,)
    ys: np.ndarray  # (ny,)
    experts: np.ndarray  # (ny, nx) int64, the most probable expert (the top-1 choice)
    num_experts: int

    def shares(self) -> np.ndarray:
        """``(N,)`` share of the plane each expert owns."""
        return np.bincount(self.experts.ravel(), minlength=self.num_experts) / self.experts.size


def expert_map(model: MoEMLP, x_range: tuple[float, float], y_range: tuple[float, float],
               resolution: int = 100) -> ExpertMap:
    """The router's first choice on a ``resolution`` x ``resolution`` grid (2-D inputs only).

    The grid is laid out as ``figures.boundary_grid``'s (``linspace`` over each range), so
    the two overlay. The model is not modified.
    """
    if model.in_features != 2:
        raise ValueError(f"An expert map needs 2-D inputs; this MoE takes {model.in_features} features.")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2, got {resolution}.")
    xs = np.linspace(x_range[0], x_range[1], resolution, dtype=np.float32)
    ys = np.linspace(y_range[0], y_range[1], resolution, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)  # (ny, nx)
    pts = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1))  # (ny*nx, 2)
    first = routing(model, pts).experts[:, 0]  # (ny*nx,) most probable expert
    return ExpertMap(xs, ys, first.numpy().reshape(resolution, resolution), model.num_experts)
