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

For the Activations page (each one call): ``activations_of_input`` (one input's activations per
layer, ``(units,)`` or ``(channels, H, W)``), ``value_histogram`` (a layer's activation values with
the exact zeros counted apart), ``compare_reports`` (dense vs current per layer) and
``per_class_table``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from .masks import Masks, apply_masks
from .models import prunable_layers
from .training import as_inputs, as_labels, check_batch_size

if TYPE_CHECKING:
    import pandas as pd


class KWinners(nn.Module):
    """k-winners-take-all over each sample's flattened activations; exactly ``k`` kept (ties: ``torch.topk``'s pick)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = _checked_k(k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kwinners(x, self.k)

    def extra_repr(self) -> str:
        return f"k={self.k}"


def _checked_k(k) -> int:
    """``k`` as given when it is a whole number >= 1 (not a bool); else one ``ValueError``."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a whole number >= 1, got {k!r}.")
    return k


def kwinners(x: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest values of every sample (dims 1..), the rest exactly +0.0; k is capped at the layer's size."""
    flat = x.flatten(1)  # (N, features)
    k = min(_checked_k(k), flat.shape[1])
    keep = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, flat.topk(k, dim=1).indices, True)
    return torch.where(keep, flat, torch.zeros((), dtype=flat.dtype, device=flat.device)).view_as(x)  # not flat * keep: -0.0


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
    min_value: float = 0.0  # smallest and largest activation seen (a histogram's range)
    max_value: float = 0.0

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

    @property
    def zero_fraction(self) -> float:
        """Exact zeros over all hidden activations of all layers (each layer weighted by its elements)."""
        total = sum(layer.elements for layer in self.layers)
        return sum(layer.zero_fraction * layer.elements for layer in self.layers) / total if total else 0.0

    @property
    def never_active_units(self) -> int:
        """Units never active on the measured inputs, summed over the hidden layers."""
        return sum(len(layer.dead) for layer in self.layers)

    @property
    def units(self) -> int:
        return sum(layer.units for layer in self.layers)

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

    Raises:
        ValueError: the model has no hidden activation to measure (one linear layer, or none between its layers).
    """
    if masks is not None:
        model = copy.deepcopy(model)
        apply_masks(model, masks)
    x = as_inputs(model, x)  # numpy arrays raised "no attribute 'to'" (an audit)
    y = as_labels(y) if y is not None else None
    device = next(model.parameters()).device
    zeros: dict[str, list[torch.Tensor]] = {}  # per layer: (B,) zero counts per input
    active: dict[str, list[torch.Tensor]] = {}  # per layer: (B, units) bool, unit active on the input
    elements: dict[str, int] = {}
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    for i in range(0, len(x), check_batch_size(batch_size)):
        for name, a in collect_activations(model, x[i : i + batch_size].to(device)).items():
            lows[name] = min(lows.get(name, float("inf")), float(a.min()))
            highs[name] = max(highs.get(name, float("-inf")), float(a.max()))
            nonzero = a != 0
            elements[name] = nonzero[0].numel()
            zeros.setdefault(name, []).append((~nonzero).flatten(1).sum(1).cpu())
            per_unit = nonzero.flatten(2).any(2) if nonzero.dim() > 2 else nonzero  # conv: channel active anywhere
            active.setdefault(name, []).append(per_unit.cpu())
    if not zeros and len(x):  # the page raised "argmax of an empty sequence" (an audit)
        raise ValueError(f"{type(model).__name__} has no hidden activation module (ReLU, tanh, ...) after a layer: "
                         "there are no hidden activations to measure.")
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
            min_value=lows[name], max_value=highs[name],
        ))
    return ActivationReport(layers=tuple(layers), count=len(x))


# ---------------------------------------------------------------------------
# What the Activations page draws: one input's activations, histograms, tables


@torch.no_grad()
def activations_of_input(model: nn.Module, x_one: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{layer: activations}`` of one input: ``(units,)`` for a Linear layer, ``(channels, H, W)`` for a conv layer.

    ``x_one`` is one input, shaped as the dataset's ``input_shape`` (no batch dimension). The model is
    run in eval mode on its own device (hooks removed, mode restored); the tensors come back on the CPU.
    """
    x = x_one.unsqueeze(0)  # (1, *input_shape)
    device = next(model.parameters()).device
    return {name: a[0].cpu() for name, a in collect_activations(model, x.to(device)).items()}


@dataclass(frozen=True, eq=False)
class ValueHistogram:
    """Activation values of one layer over a set of inputs: exact zeros apart, the other values in bins."""

    layer: str
    edges: torch.Tensor  # (bins + 1,) float64
    counts: torch.Tensor  # (bins,) int64, non-zero values only
    zeros: int  # exactly-zero activations
    total: int  # all activations

    @property
    def zero_fraction(self) -> float:
        return self.zeros / self.total if self.total else 0.0


@torch.no_grad()
def value_histogram(model: nn.Module, x: torch.Tensor, layer: str, *, bins: int = 40,
                    value_range: tuple[float, float] | None = None, batch_size: int = 1024) -> ValueHistogram:
    """Histogram of layer ``layer``'s activation values of ``model`` on ``x`` (non-zero values in ``bins`` bins).

    ``value_range`` fixes the bins (share it to compare two models); by default it spans the
    values seen, and always includes 0. Values outside ``value_range`` land in the end bins.
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins!r}.")
    device = next(model.parameters()).device
    chunks = []
    for i in range(0, len(x), check_batch_size(batch_size)):
        acts = collect_activations(model, x[i : i + batch_size].to(device))
        if layer not in acts:
            raise ValueError(f"No hidden layer {layer!r}; have {', '.join(acts)}.")
        chunks.append(acts[layer].flatten().to("cpu", torch.float64))
    values = torch.cat(chunks) if chunks else torch.zeros(0, dtype=torch.float64)
    nonzero = values[values != 0]
    if value_range is None:
        lo = min(0.0, float(nonzero.min())) if nonzero.numel() else 0.0
        hi = max(0.0, float(nonzero.max())) if nonzero.numel() else 1.0
    else:
        lo, hi = float(value_range[0]), float(value_range[1])
    if not hi > lo:
        hi = lo + 1.0
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    index = torch.bucketize(nonzero.clamp(lo, hi), edges[1:-1], right=True)  # bin i: edges[i] <= v < edges[i+1]
    counts = torch.bincount(index, minlength=bins)
    return ValueHistogram(layer, edges, counts, int(values.numel() - nonzero.numel()), int(values.numel()))


def shared_range(hists: list[ValueHistogram]) -> tuple[float, float]:
    """The union of the ranges of some histograms (to redraw them over shared bins)."""
    return (min(float(h.edges[0]) for h in hists), max(float(h.edges[-1]) for h in hists))


def compare_reports(dense: ActivationReport, current: ActivationReport) -> pd.DataFrame:
    """One row per hidden layer: units, zero share (%) dense and current, dead and always-on units of both.

    Both reports must measure the same layers (same names, same units).
    """
    import pandas as pd

    names_d, names_c = [l.name for l in dense.layers], [l.name for l in current.layers]
    if names_d != names_c:
        raise ValueError(f"The reports measure different layers: {names_d} vs {names_c}.")
    rows = []
    for d, c in zip(dense.layers, current.layers):
        if d.units != c.units:
            raise ValueError(f"Layer {d.name} has {d.units} units dense but {c.units} now.")
        rows.append({"layer": d.name, "units": d.units,
                     "dense_zero_pct": 100 * d.zero_fraction, "current_zero_pct": 100 * c.zero_fraction,
                     "dense_dead": len(d.dead), "current_dead": len(c.dead),
                     "dense_always_on": len(d.always_on), "current_always_on": len(c.always_on)})
    return pd.DataFrame(rows, columns=["layer", "units", "dense_zero_pct", "current_zero_pct", "dense_dead",
                                       "current_dead", "dense_always_on", "current_always_on"])


def per_class_table(reports: dict[str, ActivationReport], class_names: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per class: the zero share (%) of each layer of each report (columns ``"<layer> <label> (%)"``).

    ``reports`` maps a label ("dense", "current") to a report measured with labels ``y``.
    """
    import pandas as pd

    classes = sorted({c for r in reports.values() for layer in r.layers for c in layer.per_class})
    rows = []
    for c in classes:
        row = {"class": class_names[c] if class_names is not None and c < len(class_names) else str(c)}
        for label, report in reports.items():
            for layer in report.layers:
                share = layer.per_class.get(c)
                row[f"{layer.name} {label} (%)"] = None if share is None else 100 * share
        rows.append(row)
    return pd.DataFrame(rows)
