"""Small feed-forward models and the registry of bundled architectures.

The bundled models are chains of ``Linear`` / ``Conv2d`` layers with named attributes
(``fc1``, ``conv1``, ...), so parameter names read well in reports and masks
(``"fc1.weight"``). Prunable layers are found by *type* in any ``nn.Module``
(``layers.py``: ``prunable_layers`` / ``prunable_parameters`` here are built on it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field

import torch
from torch import nn

from .layers import prunable_weights

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """A multilayer perceptron ``in -> hidden... -> classes`` with layers ``fc1..fcN``.

    Image inputs ``(N, C, H, W)`` are flattened first.
    """

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int, activation: str = "relu"):
        super().__init__()
        self.in_features = in_features
        self.hidden = tuple(hidden)
        self.num_classes = num_classes
        self.activation_name = activation
        sizes = (in_features, *self.hidden, num_classes)
        self.num_layers = len(sizes) - 1
        for i in range(self.num_layers):
            setattr(self, f"fc{i + 1}", nn.Linear(sizes[i], sizes[i + 1]))
        self.act = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (N, in_features)
        for i in range(1, self.num_layers + 1):
            x = getattr(self, f"fc{i}")(x)
            if i < self.num_layers:
                x = self.act(x)
        return x  # (N, num_classes) logits


class LeNet5(nn.Module):
    """LeNet-5 as pruned by Han et al. 2015 (Caffe variant, 431K parameters).

    (N,1,28,28) -conv1 5x5,20-> (N,20,24,24) -pool-> (N,20,12,12)
    -conv2 5x5,50-> (N,50,8,8) -pool-> (N,50,4,4) -fc1-> 500 -fc2-> 10
    """

    def __init__(self, num_classes: int = 10, channels: tuple[int, int] = (20, 50), hidden: int = 500):
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 4 * 4, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv1(x)))  # (N, c1, 12, 12)
        x = self.pool(self.act(self.conv2(x)))  # (N, c2, 4, 4)
        x = self.act(self.fc1(x.flatten(1)))  # (N, hidden)
        return self.fc2(x)  # (N, classes)


ARCHITECTURES: dict[str, type[nn.Module]] = {"mlp": MLP, "lenet5": LeNet5}


def _build_moe(**kwargs) -> nn.Module:
    """``moe.MoEMLP`` from card arguments, imported here lazily (``moe`` imports this module)."""
    from .moe.model import MoEMLP

    if isinstance(kwargs.get("expert_hidden"), list):
        kwargs["expert_hidden"] = tuple(kwargs["expert_hidden"])
    return MoEMLP(**kwargs)


# Architectures that are not chain models (no ``ModelSpec`` in ``MODELS``): built from a card by name only.
BUILDERS: dict[str, Callable[..., nn.Module]] = {"moe": _build_moe}


@dataclass(frozen=True)
class ModelSpec:
    """A bundled model: its architecture, constructor arguments and dataset."""

    name: str
    architecture: str  # key of ARCHITECTURES
    kwargs: dict = field(hash=False)
    dataset: str
    description: str

    def build(self) -> nn.Module:
        return build_architecture(self.architecture, self.kwargs)


def _mlp(name: str, dataset: str, in_features: int, hidden: tuple[int, ...], classes: int, desc: str) -> ModelSpec:
    kwargs = {"in_features": in_features, "hidden": list(hidden), "num_classes": classes, "activation": "relu"}
    return ModelSpec(name, "mlp", kwargs, dataset, desc)


MODELS: dict[str, ModelSpec] = {
    "moons_mlp": _mlp("moons_mlp", "moons", 2, (8, 8), 2, "Playground-sized MLP 2-8-8-2 on two moons"),
    "circles_mlp": _mlp("circles_mlp", "circles", 2, (8, 8), 2, "Playground-sized MLP 2-8-8-2 on circles"),
    "xor_mlp": _mlp("xor_mlp", "xor", 2, (8, 8), 2, "Playground-sized MLP 2-8-8-2 on XOR"),
    "spiral_mlp": _mlp("spiral_mlp", "spiral", 2, (16, 16), 2, "MLP 2-16-16-2 on the two-arm spiral"),
    "digits_mlp": _mlp("digits_mlp", "digits", 64, (32,), 10, "MLP 64-32-10 on 8x8 digits"),
    "lenet300": _mlp("lenet300", "mnist5k", 784, (300, 100), 10, "LeNet-300-100 on MNIST-5k"),
    "lenet5": ModelSpec("lenet5", "lenet5", {"num_classes": 10}, "mnist5k", "LeNet-5 (conv 20-50, fc 500) on MNIST-5k"),
}


def build_architecture(architecture: str, kwargs: dict) -> nn.Module:
    """Instantiate an architecture from plain JSON-able arguments."""
    if architecture in BUILDERS:
        return BUILDERS[architecture](**dict(kwargs))
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}; known: {', '.join([*ARCHITECTURES, *BUILDERS])}.")
    kw = dict(kwargs)
    for key in ("hidden", "channels"):
        if isinstance(kw.get(key), list):  # JSON lists -> tuples; LeNet5's int ``hidden`` stays
            kw[key] = tuple(kw[key])
    return ARCHITECTURES[architecture](**kw)


MAX_PARAMETERS = 50_000_000  # a model described by a file (card, checkpoint metadata, spec): 200 MB of float32


def build_from_metadata(architecture: Any, kwargs: Any) -> nn.Module:
    """``build_architecture`` for sizes read from a file: counted on the meta device first, so a file asking
    for 5e8 inputs is refused without allocating 2 GB (an audit); every failure is one ``ValueError``."""
    if not isinstance(architecture, str) or not isinstance(kwargs, dict):
        raise ValueError(f"an architecture is a name and an object of arguments, got {architecture!r}")
    try:
        with torch.device("meta"):
            params = count_parameters(build_architecture(architecture, kwargs))
        if params > MAX_PARAMETERS:
            raise ValueError(f"{params:,} parameters is more than the limit of {MAX_PARAMETERS:,}")
        return build_architecture(architecture, kwargs)
    except (TypeError, RuntimeError, OverflowError, NotImplementedError) as exc:  # negative or impossible sizes
        raise ValueError(str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__) from None


def get_spec(name: str) -> ModelSpec:
    """The registry entry for a bundled model name, with a clear error when unknown."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(MODELS)}.")
    return MODELS[name]


def build_model(name: str, seed: int | None = None) -> nn.Module:
    """A freshly initialised model of a registered architecture (seeded if ``seed`` is given)."""
    spec = get_spec(name)
    if seed is None:
        return spec.build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build()


def prunable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every layer whose prunable parameter is its own ``weight``
    (Linear / Conv1d / Conv2d, or a module declaring ``sparsity_viz_prunable = ("weight",)``),
    in registration order, once per distinct weight (a tied copy is left out).

    Discovery is by type (``layers.PRUNABLE``), never by name. Registration order is the
    forward order of the bundled models; for any model, ``layers.chain_layers`` gives the
    traced forward order. ``layers.prunable_weights`` also lists parameters not named
    ``weight`` (``nn.MultiheadAttention.in_proj_weight``).
    """
    return [(w.module_name, w.module) for w in prunable_weights(model)
            if w.attr == "weight" and w.key == f"{w.module_name}.weight"]


def prunable_parameters(model: nn.Module, include_bias: bool = False) -> dict[str, nn.Parameter]:
    """``{"fc1.weight": param, ...}`` for every prunable parameter (and biases if asked).

    One entry per distinct ``Parameter`` (tied weights once), named as ``named_parameters()`` names it.
    """
    params: dict[str, nn.Parameter] = {}
    for w in prunable_weights(model):
        params[w.key] = w.param
        if include_bias and w.bias_key is not None and w.bias_key not in params:
            params[w.bias_key] = w.bias
    return params


def count_parameters(model: nn.Module) -> int:
    """Total number of parameters (weights and biases)."""
    return sum(p.numel() for p in model.parameters())


def describe_architecture(model: nn.Module) -> str:
    """A one-line human description, e.g. ``784-300-100-10 MLP (266,610 params)``."""
    if isinstance(model, MLP):
        sizes = "-".join(str(s) for s in (model.in_features, *model.hidden, model.num_classes))
        return f"{sizes} MLP ({count_parameters(model):,} params)"
    shapes = ", ".join(f"{w.label} {tuple(w.param.shape)}" for w in prunable_weights(model))
    return f"{type(model).__name__}: {shapes} ({count_parameters(model):,} params)"


def fan_in(module: nn.Module) -> int:
    """Number of inputs feeding one output unit of a Linear / Conv2d layer."""
    return math.prod(module.weight.shape[1:])
