"""What each first-layer unit looks at: its surviving incoming weights laid out as the input image.

For an image model, a first-layer Linear unit reads every pixel, so its weight row
reshaped to ``(H, W)`` is its *receptive field*; a first-layer Conv2d filter's kernel
``(C_in, kh, kw)`` is the same thing on a small window. Pruned weights become ``NaN``
(drawn grey) and a unit is *dead* as ``connectivity.dead_neurons`` defines it (no
surviving connection in, or none out). ``unit_fans`` gives one unit's fan-in and
fan-out counts, read off ``graph.unit_connections``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .connectivity import dead_neurons, layer_masks
from .graph import unit_connections
from .layers import chain_layers


@dataclass(frozen=True, eq=False)
class ReceptiveFields:
    """Every unit of one layer as an image of its surviving incoming weights."""

    layer: str  # e.g. "fc1" or "conv1"
    kind: str  # "linear" or "conv"
    images: np.ndarray  # (units, H, W) float32, NaN where pruned (conv: channels side by side, a NaN gap between)
    alive: np.ndarray  # (units,) int64: surviving incoming weights per unit
    dead: np.ndarray  # (units,) bool: connectivity.dead_neurons of this layer
    inputs: int  # incoming weights per unit

    @property
    def units(self) -> int:
        return int(self.images.shape[0])

    @property
    def zmax(self) -> float:
        """Largest surviving ``|w|`` (1.0 when none survives): a symmetric colour range."""
        finite = np.abs(self.images[np.isfinite(self.images)])
        return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def first_layer(model: nn.Module) -> str:
    """Name of the model's first prunable layer in forward order (a chain; else ``ValueError``)."""
    layers = chain_layers(model)
    if not layers:
        raise ValueError("The model has no Linear / Conv2d layer.")
    return layers[0].name


def _image_shape(features: int, input_shape: Sequence[int] | None) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else ()
    if len(shape) == 3 and math.prod(shape) == features:
        return shape  # (C, H, W)
    if len(shape) == 2 and math.prod(shape) == features:
        return (1, *shape)
    side = math.isqrt(features)
    if not shape and side * side == features and side > 2:
        return (1, side, side)
    raise ValueError(f"Receptive fields need image inputs: {features} input features do not form an image "
                     f"(input shape {shape or 'unknown'}). Choose an image model such as lenet300, digits_mlp or "
                     "lenet5.")


def _tile_channels(w: np.ndarray) -> np.ndarray:
    """``(units, C, H, W)`` -> ``(units, H, C * (W + 1) - 1)``: channels side by side, one NaN column between."""
    units, c, h, width = w.shape
    out = np.full((units, h, c * (width + 1) - 1), np.nan, dtype=np.float32)
    for i in range(c):
        out[:, :, i * (width + 1) : i * (width + 1) + width] = w[:, i]
    return out


def receptive_fields(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    layer: str | None = None,
) -> ReceptiveFields:
    """The receptive fields of every unit of ``layer`` (default: the first layer).

    A Linear layer must read the image itself (``input_shape`` ``(C, H, W)``; a square
    number of features works without it); a Conv2d layer's filters are drawn as kernels.
    A weight counts as surviving where its mask is True and it is nonzero (``layer_masks``).

    Raises:
        ValueError: the layer is unknown, is not a first Linear layer over an image, or not a Conv2d.
    """
    chain = chain_layers(model)
    names = [c.name for c in chain]
    layer = layer or first_layer(model)
    if layer not in names:
        raise ValueError(f"Model has no prunable layer {layer!r}; layers: {', '.join(names)}.")
    module = chain[names.index(layer)].module
    alive_mask = layer_masks(model, masks)[f"{layer}.weight"]  # bool, weight-shaped
    w = module.weight.detach().to("cpu", torch.float32)
    values = torch.where(alive_mask, w, torch.full_like(w, float("nan"))).numpy()
    if isinstance(module, nn.Conv2d):
        kind, images = "conv", _tile_channels(values)  # (C_out, kh, C_in*(kw+1)-1)
    elif isinstance(module, nn.Linear):
        if names.index(layer) != 0:
            raise ValueError(f"{layer} does not read the image (only the first layer's units have pixel fields).")
        c, h, width = _image_shape(w.shape[1], input_shape)
        kind, images = "linear", _tile_channels(values.reshape(w.shape[0], c, h, width))
    else:
        raise ValueError(f"{layer} is a {type(module).__name__}: receptive fields are drawn for Linear and Conv2d.")
    dead = dead_neurons(model, masks)[layer].numpy().astype(bool)
    alive = alive_mask.reshape(alive_mask.shape[0], -1).sum(1).numpy().astype(np.int64)
    return ReceptiveFields(layer, kind, images.astype(np.float32), alive, dead, int(w[0].numel()))


@dataclass(frozen=True)
class UnitFans:
    """One unit's surviving connections: from how many units of the column before, to how many after."""

    layer: str
    unit: int
    fan_in_weights: int  # surviving incoming weights
    fan_in_units: int  # units (input features / channels) of the column before joined by one
    fan_out_weights: int  # surviving outgoing weights (0 for the last layer)
    fan_out_units: int  # units of the next layer joined by one


def unit_fans(model: nn.Module, masks: Mapping[str, torch.Tensor] | None, layer: str, unit: int) -> UnitFans:
    """Fan-in and fan-out of ``unit`` of ``layer``, counted on ``graph.unit_connections``."""
    conns = unit_connections(model, masks)
    names = [c.name for c in conns]
    if layer not in names:
        raise ValueError(f"Model has no prunable layer {layer!r}; layers: {', '.join(names)}.")
    i = names.index(layer)
    count = conns[i].count  # (out_units, in_units)
    if not 0 <= unit < count.shape[0]:
        raise ValueError(f"{layer} has {count.shape[0]} units; unit {unit} does not exist.")
    nxt = conns[i + 1].count[:, unit] if i + 1 < len(conns) else torch.zeros(0, dtype=torch.int64)
    return UnitFans(layer, unit, int(count[unit].sum()), int((count[unit] > 0).sum()), int(nxt.sum()),
                    int((nxt > 0).sum()))


def unit_masks(
    model: nn.Module, masks: Mapping[str, torch.Tensor] | None, layer: str, unit: int
) -> dict[str, torch.Tensor]:
    """Masks (in ``layer_masks`` form) keeping only the surviving weights into and out of ``unit`` of ``layer``.

    Drawn with ``graph.build_graph``, they give exactly that unit's fan-in and fan-out edges.
    """
    alive = layer_masks(model, masks)
    keys = list(alive)
    key = f"{layer}.weight"
    if key not in alive:
        raise ValueError(f"Model has no prunable layer {layer!r}.")
    i = keys.index(key)
    if not 0 <= unit < alive[key].shape[0]:
        raise ValueError(f"{layer} has {alive[key].shape[0]} units; unit {unit} does not exist.")
    out = {k: torch.zeros_like(m) for k, m in alive.items()}
    out[key][unit] = alive[key][unit]
    if i + 1 < len(keys):
        nxt = alive[keys[i + 1]]  # (out, units * k, ...) : a Linear after a flatten reads k positions per channel
        units = alive[key].shape[0]
        view = nxt.reshape(nxt.shape[0], units, -1)
        kept = torch.zeros_like(view)
        kept[:, unit] = view[:, unit]
        out[keys[i + 1]] = kept.reshape(nxt.shape)
    return out


__all__ = ["ReceptiveFields", "UnitFans", "first_layer", "receptive_fields", "unit_fans", "unit_masks"]
