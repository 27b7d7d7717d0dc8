"""What each hidden unit computes over the input plane (TensorFlow Playground's little pictures).

``unit_maps`` runs the MLP on a grid covering the toy and keeps every hidden layer's
activations (after the nonlinearity): one ``(ny, nx)`` map per unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..connectivity import dead_neurons
from ..models import MLP


@dataclass(frozen=True, eq=False)
class UnitMaps:
    """``maps[l][u, j, i]``: unit ``u`` of hidden layer ``l + 1`` at ``(xs[i], ys[j])``."""

    xs: np.ndarray  # (nx,)
    ys: np.ndarray  # (ny,)
    maps: list[np.ndarray]  # per hidden layer: (units, ny, nx)


@torch.no_grad()
def unit_maps(model: MLP, x_range: tuple[float, float], y_range: tuple[float, float], resolution: int = 24) -> UnitMaps:
    """Every hidden unit's output on a ``resolution`` x ``resolution`` grid (the model is not changed)."""
    if not isinstance(model, MLP):
        raise ValueError("Unit maps need the playground's MLP (fc1..fcN with one activation).")
    xs = np.linspace(x_range[0], x_range[1], resolution, dtype=np.float32)
    ys = np.linspace(y_range[0], y_range[1], resolution, dtype=np.float32)
    gx, gy = np.meshgrid(xs, ys)  # (ny, nx)
    h = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1))  # (ny*nx, 2)
    maps = []
    for i in range(1, model.num_layers):
        h = model.act(getattr(model, f"fc{i}")(h))  # (ny*nx, units)
        maps.append(h.T.reshape(-1, resolution, resolution).numpy().copy())
    return UnitMaps(xs, ys, maps)


def dead_hidden_units(model: MLP, masks: dict[str, torch.Tensor]) -> list[list[bool]]:
    """Per hidden layer, per unit: True when no connection into or out of it survives (``connectivity.dead_neurons``)."""
    dead = dead_neurons(model, masks)
    return [dead[f"fc{layer}"].tolist() for layer in range(1, model.num_layers)]
