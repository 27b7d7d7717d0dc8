"""Connectivity: which connections and units of a pruned network still carry signal.

Pure functions on weights and masks (True = the weight survives); no plotting.
A network is read as a chain of weight layers in forward order joining columns of
*units*. Functions taking a model check that it is one (``layers.chain_layers``
traces it with ``torch.fx``; a residual, a branch or an attention block raises a
``ValueError`` saying where). Functions taking only masks read them in dict order,
so hand them ``layer_masks(model, masks)`` for a model that is not a bundled one:

* **Units.** Column 0 is the input (features, or the channels of a conv's
  input); column ``k`` holds the outputs of the ``k``-th layer. A Linear
  layer's units are its neurons, a Conv2d layer's its channels (filters). A
  Linear layer reading a flattened conv output of ``k * C`` features reads the
  ``C`` channels before it (channel-major, as ``flatten`` lays them out).
* **Surviving weight.** True in the mask; with a model, also nonzero
  (``layer_masks``). A layer without a mask counts as dense.
* **Connection.** Two units are connected when at least one surviving weight
  joins them (any tap of a conv kernel, any position of a flattened channel).
* **Dead unit** (``dead_neurons``). No connection enters it or none leaves it.
  Inputs are dead when nothing leaves them, the last layer's units (the
  classes) when nothing reaches them.
* **Layer collapse** (Tanaka et al. 2020; ``collapsed_layers``,
  ``layer_collapse``). A layer with every weight pruned: it cuts every
  input -> output path.
* **Effective sparsity** (Vysogorets & Kempe 2021; ``effective_masks``).
  A surviving weight whose source no input reaches, or whose target reaches no
  output, does nothing and counts as removed.
* **Input fan-out** (``input_fanout``). Per input feature / pixel, the
  surviving connections leaving it into the first layer; a Conv2d first layer
  counts its connections unrolled (every filter, output position and kernel
  tap that reads the pixel), exactly as the equivalent Linear layer would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .masks import Masks, any_true, count_true
from .layers import chain_layers, prunable_weights

INPUT = "input"  # the name of column 0 in per-column results


# --- masks and units ---------------------------------------------------------------------


def weight_masks(masks: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """The weight masks (``>= 2`` dims) in forward order (masks are built in layer order)."""
    return [(n, m) for n, m in masks.items() if m.dim() >= 2]


def layer_masks(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """Surviving weights of every layer of a chain, ``{"fc1.weight": bool, ...}`` in forward order, on the CPU.

    A weight survives where its mask is True (no mask: dense) and it is nonzero,
    so ``masks=None`` reads the masks off the zeros of the weights. Forward order is
    traced (``layers.chain_layers``); a layer whose weight is tied to another's is keyed
    by its own name and reads the tied weight's mask.

    Raises:
        ValueError: the model is not a chain of Linear / Conv layers (a residual, a branch,
            an attention block, a grouped convolution), naming where.
    """
    return {f"{layer.name}.weight": _alive(layer.module.weight, masks, layer.key) for layer in chain_layers(model)}


def surviving_masks(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> Masks:
    """Surviving entries of every prunable parameter of any model, keyed as masks are, in registration order.

    Same rule as ``layer_masks`` (mask and nonzero), one entry per distinct (tied) parameter.
    """
    return {w.key: _alive(w.param, masks, w.key) for w in prunable_weights(model)}


def _alive(weight: torch.Tensor, masks: Mapping[str, torch.Tensor] | None, key: str) -> torch.Tensor:
    alive = weight.detach().cpu().numpy() != 0  # numpy: torch's CPU bool ops are slow (see _reach)
    mask = None if masks is None else masks.get(key)
    return torch.from_numpy(alive if mask is None else alive & mask.detach().to("cpu", torch.bool).numpy())


def fold_units(t: torch.Tensor, in_units: int | None = None) -> torch.Tensor:
    """Sum a weight-shaped tensor to ``(out_units, in_units)``: over a conv's kernel taps, and over the
    flattened positions of each channel when a Linear layer's inputs are ``in_units`` channels.

    A bool tensor gives int64 counts.

    Raises:
        ValueError: the layer's inputs cannot be split into ``in_units`` units.
    """
    t = t.to(torch.int64) if t.dtype == torch.bool else t
    t = t.flatten(2).sum(-1) if t.dim() > 2 else t
    if in_units is None or t.shape[1] == in_units:
        return t
    if t.shape[1] % in_units:
        raise ValueError(f"Cannot connect a layer of {in_units} units to one of {t.shape[1]} inputs.")
    return t.reshape(t.shape[0], in_units, -1).sum(-1)


def unit_counts(masks: Mapping[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    """Per weight layer, ``(out_units, in_units)`` int64: surviving weights joining each pair of units."""
    out: list[tuple[str, torch.Tensor]] = []
    prev: int | None = None
    for name, m in weight_masks(masks):
        out.append((name, fold_units(m.cpu(), prev)))
        prev = m.shape[0]
    return out


def _unit_pairs(mask: torch.Tensor, in_units: int | None = None) -> torch.Tensor:
    """``fold_units(mask, in_units) > 0``; a bool Linear mask already is that (no int64 copy: 2 ms on fc1)."""
    mask = mask.cpu()
    if mask.dtype == torch.bool and mask.dim() == 2 and in_units in (None, mask.shape[1]):
        return mask
    return fold_units(mask, in_units) > 0


def _adjacency(masks: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    prev: int | None = None
    for _, m in weight_masks(masks):
        out.append(_unit_pairs(m, prev))
        prev = m.shape[0]
    return out


def _reach(adjacency: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per column: units some input reaches, and units that reach some output.

    In numpy: torch's broadcast bool ``&`` and ``any`` on CPU took ~1 ms each on a 300x784 mask (measured),
    numpy's ~0.03 ms, and the live slider asks for this on every step.
    """
    adj = [a.numpy() for a in adjacency]  # (out_units, in_units) bool
    forward = [np.ones(adj[0].shape[1], dtype=bool)]
    for a in adj:
        forward.append((a & forward[-1][None, :]).any(1))
    backward = [np.ones(adj[-1].shape[0], dtype=bool)]
    for a in reversed(adj):
        backward.insert(0, (a & backward[0][:, None]).any(0))
    return [torch.from_numpy(f) for f in forward], [torch.from_numpy(b) for b in backward]


def _layer(param: str) -> str:
    return param.removesuffix(".weight")


# --- dead units --------------------------------------------------------------------------


def unconnected_units(masks: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, int]]:
    """Per weight layer, within its own weight matrix: (inputs no surviving weight leaves,
    outputs no surviving weight enters).

    Inputs are a Linear layer's input features (also after a flatten) or a
    conv's input channels; outputs are neurons or filters.
    """
    out = {}
    for name, m in weight_masks(masks):
        pair = _unit_pairs(m)
        out[name] = (pair.shape[1] - count_true(any_true(pair, 0)), pair.shape[0] - count_true(any_true(pair, 1)))
    return out


def dead_neurons(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Which units are dead: no surviving incoming weight, or no surviving outgoing weight.

    Returns ``{"input": (in_units,), "fc1": (units,), ...}`` bool tensors, True = dead.
    Input units are dead when nothing leaves them; the last layer's units (the
    classes) when nothing reaches them. A conv unit is a channel.
    """
    lm = layer_masks(model, masks)
    adj = _adjacency(lm)
    if not adj:
        return {}
    dead = {INPUT: ~any_true(adj[0], 0)}
    for i, name in enumerate(lm):
        dead[_layer(name)] = ~any_true(adj[i], 1) | (~any_true(adj[i + 1], 0) if i + 1 < len(adj) else False)
    return dead


# --- layer collapse ----------------------------------------------------------------------


def collapsed_layers(masks: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the weight layers with every weight pruned."""
    return [name for name, m in weight_masks(masks) if not bool(any_true(m))]


@dataclass(frozen=True)
class CollapseReport:
    """Layer collapse: fully pruned layers and whether the input still reaches the output."""

    pruned_layers: tuple[str, ...]  # layers with every weight pruned
    path_exists: bool  # some input -> output path of surviving weights exists
    alive_units: dict[str, int] = field(hash=False)  # units on some input -> output path, per column
    total_units: dict[str, int] = field(hash=False)

    @property
    def collapsed(self) -> bool:
        """True when a layer is fully pruned or no input -> output path survives."""
        return bool(self.pruned_layers) or not self.path_exists


def layer_collapse(model: nn.Module, masks: Mapping[str, torch.Tensor] | None = None) -> CollapseReport:
    """Detect layer collapse (Tanaka et al. 2020): a layer pruned away, or no path left."""
    lm = layer_masks(model, masks)
    adj = _adjacency(lm)
    if not adj:
        return CollapseReport((), True, {}, {})
    forward, backward = _reach(adj)
    on_path = [f & b for f, b in zip(forward, backward)]
    names = [INPUT, *(_layer(n) for n in lm)]
    return CollapseReport(
        pruned_layers=tuple(_layer(n) for n in collapsed_layers(lm)),
        path_exists=bool(any_true(on_path[-1])),
        alive_units={n: count_true(p) for n, p in zip(names, on_path)},
        total_units={n: int(p.numel()) for n, p in zip(names, on_path)},
    )


# --- effective sparsity ------------------------------------------------------------------


def effective_masks(masks: Mapping[str, torch.Tensor]) -> Masks:
    """Weight masks with every weight that lies on no input -> output path removed.

    A weight counts if it survives, some input reaches its source unit and its
    target unit reaches some output (units as in the module doc: channels for
    convolutions; biases are not considered). Returns only weight masks.
    """
    items = weight_masks(masks)
    if not items:
        return {}
    forward, backward = _reach(_adjacency(masks))
    out: Masks = {}
    for i, (name, m) in enumerate(items):
        m = m.cpu().numpy()
        reached, useful = forward[i].numpy(), backward[i + 1].numpy()
        reached = reached.repeat(m.shape[1] // reached.size)  # a channel -> its flattened features
        keep = useful[:, None] & reached[None, :]  # (out, in)
        out[name] = torch.from_numpy(m & keep.reshape(*keep.shape, *([1] * (m.ndim - 2))))
    return out


def effective_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of weights removed once weights on no input -> output path count as removed."""
    eff = effective_masks(masks)
    total = sum(m.numel() for m in eff.values())
    return 1.0 - sum(count_true(m) for m in eff.values()) / total if total else 0.0


def nominal_sparsity(masks: Mapping[str, torch.Tensor]) -> float:
    """Fraction of weights (``>= 2``-dim masks) that the masks prune."""
    items = weight_masks(masks)
    total = sum(m.numel() for _, m in items)
    return 1.0 - sum(count_true(m) for _, m in items) / total if total else 0.0


def collapse_report(masks: Mapping[str, torch.Tensor]) -> pd.DataFrame:
    """Per weight layer: nominal and effective sparsity, unconnected units, and whether it collapsed.

    ``dead_inputs`` / ``dead_outputs``: see ``unconnected_units``.
    ``collapsed``: the layer keeps no weight at all (every path is cut).
    ``disconnected``: no input -> output path survives through this layer.
    """
    eff = effective_masks(masks)
    unconnected = unconnected_units(masks)
    collapsed = set(collapsed_layers(masks))
    rows = []
    for name, m in weight_masks(masks):
        rows.append({
            "layer": name,
            "total": m.numel(),
            "nominal_sparsity": 1.0 - count_true(m) / m.numel(),
            "effective_sparsity": 1.0 - count_true(eff[name]) / m.numel(),
            "dead_outputs": unconnected[name][1],
            "dead_inputs": unconnected[name][0],
            "collapsed": name in collapsed,
            "disconnected": not bool(any_true(eff[name])),
        })
    return pd.DataFrame(rows)


def collapse_warnings(masks: Mapping[str, torch.Tensor]) -> list[str]:
    """Human-readable warnings: collapsed layers, and a network with no input -> output path left."""
    report = collapse_report(masks)
    warnings = [f"Layer collapse: {r.layer} keeps no weight; every path from input to output is cut."
                for r in report.itertuples() if r.collapsed]
    if not warnings and len(report) and report["disconnected"].any():
        warnings.append("No path from the input to the output survives: the network outputs a constant.")
    nominal, effective = nominal_sparsity(masks), effective_sparsity(masks)
    if effective - nominal > 1e-3 and not warnings:
        warnings.append(
            f"Effective sparsity {effective:.2%} exceeds nominal {nominal:.2%}: "
            "some surviving weights lie on no input -> output path."
        )
    return warnings


# --- input fan-out -----------------------------------------------------------------------


def image_side(features: int) -> int | None:
    """The side of a square image of ``features`` pixels (at least 4x4), else None."""
    side = math.isqrt(features)
    return side if side * side == features and side >= 4 else None


def input_fanout(
    model: nn.Module,
    masks: Mapping[str, torch.Tensor] | None = None,
    input_shape: Sequence[int] | None = None,
    *,
    effective: bool = False,
) -> torch.Tensor:
    """Surviving connections leaving every input feature / pixel into the first layer, int64.

    Linear first layer: the surviving weights in each input column, shaped
    ``(H, W)`` for image inputs (from ``input_shape``, channels summed, or a square
    number of features >= 16) and ``(features,)`` otherwise. Conv2d first layer
    (``input_shape`` required): per pixel, the (filter, output position, kernel
    tap) triples with a surviving weight that read it, summed over input
    channels, shaped ``(H, W)``: the fan-out of the conv unrolled into a Linear
    layer. With ``effective=True`` only connections on an input -> output path
    count (``effective_masks``).

    Raises:
        ValueError: not a chain, no Linear / Conv2d layer, a conv model without
            ``input_shape``, or an ``input_shape`` that does not fit.
    """
    layers = chain_layers(model)
    if not layers:
        raise ValueError("The model has no Linear / Conv2d layer.")
    lm = layer_masks(model, masks)
    if effective:
        lm = effective_masks(lm)
    module = layers[0].module
    mask = lm[f"{layers[0].name}.weight"]
    if isinstance(module, nn.Conv1d):
        raise ValueError("input_fanout supports a Linear or Conv2d first layer, not Conv1d.")
    if isinstance(module, nn.Conv2d):
        if input_shape is None:
            raise ValueError("input_fanout of a convolutional model needs input_shape=(C, H, W).")
        return _conv_fanout(module, mask, tuple(int(s) for s in input_shape[-2:]))
    return _shaped(mask.sum(0).to(torch.int64), input_shape)


def _conv_fanout(conv: nn.Conv2d, mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per pixel of an ``size`` input, the uses of a surviving kernel tap (the conv's transpose applied to ones)."""
    (h, w), (kh, kw) = size, conv.kernel_size
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ho < 1 or wo < 1:
        raise ValueError(f"input_shape {size} is smaller than the kernel of the first convolution.")
    extra = (h - ((ho - 1) * sh - 2 * ph + dh * (kh - 1) + 1), w - ((wo - 1) * sw - 2 * pw + dw * (kw - 1) + 1))
    ones = torch.ones(1, conv.out_channels, ho, wo, dtype=torch.float64)
    fan = F.conv_transpose2d(ones, mask.to(torch.float64), stride=conv.stride, padding=conv.padding,
                             output_padding=extra, dilation=conv.dilation)  # (1, C_in, H, W)
    return fan[0].sum(0).round().to(torch.int64)


def _shaped(fan: torch.Tensor, input_shape: Sequence[int] | None) -> torch.Tensor:
    """Per-feature fan-out as an image when the input is one, else flat."""
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if math.prod(shape) != fan.numel():
            raise ValueError(f"input_shape {shape} does not match {fan.numel()} input features.")
        if len(shape) == 3:  # (C, H, W): summed over channels, as the conv path does (an RGB upload got (3, H, W))
            return fan.reshape(shape).sum(0)
        return fan.reshape(shape)
    side = image_side(fan.numel())
    return fan.reshape(side, side) if side else fan


FANOUT_BORDER = 4  # pixels from an image's edge that count as its border ring (MNIST's never carry ink)


def border_ring(side_h: int, side_w: int, width: int = FANOUT_BORDER) -> torch.Tensor:
    """``(H, W)`` bool: True on the ``width`` pixels next to each edge."""
    ring = torch.ones(side_h, side_w, dtype=torch.bool)
    ring[width:side_h - width, width:side_w - width] = False
    return ring


@dataclass(frozen=True)
class FanoutRings:
    """An ``(H, W)`` fan-out (``input_fanout``) split into its border ring and its centre."""

    border_mean: float  # surviving connections of a border pixel, on average
    centre_mean: float
    empty: int  # pixels that lost every connection
    empty_border: int  # of them, on the border ring
    pixels: int
    width: int = FANOUT_BORDER

    @property
    def where(self) -> str:
        """Which part keeps more, in words."""
        if self.centre_mean > self.border_mean:
            return "the centre keeps more"
        return "the border keeps more" if self.border_mean > self.centre_mean else "both keep as many"

    def sentence(self) -> str:
        """The split in one measured sentence (Markdown)."""
        return (f"A pixel of the {self.width}-pixel border ring keeps **{self.border_mean:.1f}** connections on "
                f"average, a centre pixel **{self.centre_mean:.1f}**: {self.where}. **{self.empty}** of {self.pixels} "
                f"pixels lost every connection, {self.empty_border} of them on the border ring.")


def fanout_rings(fan: torch.Tensor, width: int = FANOUT_BORDER) -> FanoutRings | None:
    """The border / centre split of an image's fan-out; None for one too small to have a centre (or not 2-D)."""
    if fan.dim() != 2 or min(fan.shape) <= 2 * width:
        return None
    ring, empty = border_ring(*fan.shape, width), fan == 0
    return FanoutRings(float(fan[ring].double().mean()), float(fan[~ring].double().mean()), int(empty.sum()),
                       int((empty & ring).sum()), fan.numel(), width)


def describe_fanout(fan: torch.Tensor, width: int = FANOUT_BORDER) -> str:
    """One measured sentence on an image's fan-out (Markdown), or "" when it has no border ring and centre."""
    rings = fanout_rings(fan, width)
    return rings.sentence() if rings is not None else ""
