"""Activation sparsity, measured: how many hidden activations are exactly zero, per layer, class and input.

``activation_sparsity(model, x, y)`` runs the model (eval mode, no gradients) with forward
hooks on its activation modules, removes them afterwards and never mutates the model
(with ``masks``, a masked copy is measured). A "layer" is one call of an activation module,
named after the prunable layer that ran just before it (the MLP's shared ``act`` module is
called once per hidden layer: ``fc1``, ``fc2``, ...; LeNet-5: ``conv1``, ``conv2``, ``fc1``).

A *unit* is a feature of a Linear layer, a channel of a conv layer (active on an input if
any of its positions is non-zero). ``dead``: units never active on the given inputs;
``always_on``: units active on every input. Zero shares count elements (for conv maps,
every channel x position).

``KWinners(k)`` is k-winners-take-all (Ahmad & Scheinkman 2019) as an activation module:
per sample it keeps the k largest values of the layer (all channels x positions for conv
maps) and zeroes the rest. Exactly k positions are kept per sample even with ties (which
of the tied values win is ``torch.topk``'s choice, not specified); a kept value that is
itself 0 leaves fewer than k non-zeros. ``with_kwinners(model, k)`` returns an MLP copy
whose activation is k-WTA.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from .masks import Masks, apply_masks
from .models import prunable_layers


class KWinners(nn.Module):
    """k-winners-take-all over each sample's flattened activations; exactly ``k`` kept (ties: ``torch.topk``'s pick)."""

    def __init__(self, k: int):
        super().__init__()
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a whole number >= 1, got {k!r}.")
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kwinners(x, self.k)

    def extra_repr(self) -> str:
        return f"k={self.k}"


def kwinners(x: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest values of every sample (dims 1..), zero the rest; k is capped at the layer's size."""
    flat = x.flatten(1)  # (N, features)
    k = min(k, flat.shape[1])
    keep = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, flat.topk(k, dim=1).indices, True)
    return (flat * keep).view_as(x)


def with_kwinners(model: nn.Module, k: int) -> nn.Module:
    """A copy of an MLP (or any model with one ``act`` module) whose activation is ``KWinners(k)``."""
    if not isinstance(getattr(model, "act", None), nn.Module):
        raise ValueError(f"{type(model).__name__} has no 'act' activation module to replace with k-WTA.")
    out = copy.deepcopy(model)
    out.act = KWinners(k)
    return out


# the modules whose outputs are "hidden activations"
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Tanh,
                                                 nn.Sigmoid, nn.Hardtanh, KWinners)


def activation_modules(model: nn.Module) -> list[nn.Module]:
    """Every activation module of ``model`` (instances of ``ACTIVATION_TYPES``), in registration order."""
    return [m for m in model.modules() if isinstance(m, ACTIVATION_TYPES)]


@dataclass(frozen=True, eq=False)
class LayerActivations:
    """One hidden layer's activation sparsity over a set of inputs."""

    name: str  # the prunable layer just before the activation ("fc1")
    units: int  # features (Linear) or channels (conv)
    elements: int  # activations per input (units x positions)
    zero_fraction: float  # exact zeros / all activations, over all inputs
    per_input: torch.Tensor = field(repr=False)  # (N,) zero share of each input
    per_class: dict[int, float] = field(default_factory=dict)  # class -> zero share over its inputs (needs y)
    dead: tuple[int, ...] = ()  # units never active
    always_on: tuple[int, ...] = ()  # units active on every input

    def row(self) -> dict:
        """A JSON-able summary (no per-input values)."""
        return {"layer": self.name, "units": self.units, "elements": self.elements,
                "zero_fraction": self.zero_fraction, "dead_units": len(self.dead),
                "always_on_units": len(self.always_on),
                "per_class": {str(c): v for c, v in self.per_class.items()}}


@dataclass(frozen=True, eq=False)
class ActivationReport:
    layers: tuple[LayerActivations, ...]
    count: int  # inputs measured

    def layer(self, name: str) -> LayerActivations:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"No hidden layer {name!r}; have {', '.join(l.name for l in self.layers)}.")

    def to_dict(self) -> dict:
        return {"count": self.count, "layers": [layer.row() for layer in self.layers]}

    def frame(self):
        """One row per layer: layer, units, zero_fraction, dead_units, always_on_units."""
        import pandas as pd

        return pd.DataFrame([{k: v for k, v in layer.row().items() if k != "per_class"} for layer in self.layers])


@torch.no_grad()
def collect_activations(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{layer name: (N, ...) activations}`` of one forward pass of ``x`` (eval mode); hooks removed, mode restored."""
    current = {"layer": "input"}
    seen: dict[str, torch.Tensor] = {}

    def after_layer(name):
        def hook(module, inputs, output):
            current["layer"] = name
        return hook

    def record(module, inputs, output):
        name = current["layer"]
        while name in seen:  # an activation applied twice after the same layer (rare): keep both
            name += "'"
        seen[name] = output.detach()

    handles = [m.register_forward_hook(after_layer(n)) for n, m in prunable_layers(model)]
    handles += [m.register_forward_hook(record) for m in activation_modules(model)]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return seen


@torch.no_grad()
def activation_sparsity(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None, *,
                        masks: Masks | None = None, batch_size: int = 1024) -> ActivationReport:
    """Per hidden layer, the share of exactly-zero activations of ``model`` on ``x`` (see the module docstring).

    Args:
        model: never mutated (no hooks left, same mode, same weights).
        x: inputs, ``(N, ...)``; run in batches of ``batch_size`` on the model's device.
        y: labels ``(N,)``; with them, ``per_class`` holds the zero share per class.
        masks: measure a copy of ``model`` with these masks applied.
    """
    if masks is not None:
        model = copy.deepcopy(model)
        apply_masks(model, masks)
    device = next(model.parameters()).device
    zeros: dict[str, list[torch.Tensor]] = {}  # per layer: (B,) zero counts per input
    active: dict[str, list[torch.Tensor]] = {}  # per layer: (B, units) bool, unit active on the input
    elements: dict[str, int] = {}
    for i in range(0, len(x), batch_size):
        for name, a in collect_activations(model, x[i : i + batch_size].to(device)).items():
            nonzero = a != 0
            elements[name] = nonzero[0].numel()
            zeros.setdefault(name, []).append((~nonzero).flatten(1).sum(1).cpu())
            per_unit = nonzero.flatten(2).any(2) if nonzero.dim() > 2 else nonzero  # conv: channel active anywhere
            active.setdefault(name, []).append(per_unit.cpu())
    layers = []
    for name in zeros:
        counts = torch.cat(zeros[name])  # (N,)
        unit_active = torch.cat(active[name])  # (N, units)
        per_input = counts.double() / elements[name]
        per_class = {}
        if y is not None:
            labels = y.cpu()
            per_class = {int(c): float(per_input[labels == c].mean()) for c in torch.unique(labels)}
        layers.append(LayerActivations(
            name=name, units=unit_active.shape[1], elements=elements[name],
            zero_fraction=float(counts.sum()) / (elements[name] * len(counts)),
            per_input=per_input, per_class=per_class,
            dead=tuple(int(u) for u in torch.nonzero(~unit_active.any(0)).flatten()),
            always_on=tuple(int(u) for u in torch.nonzero(unit_active.all(0)).flatten()),
        ))
    return ActivationReport(layers=tuple(layers), count=len(x))
