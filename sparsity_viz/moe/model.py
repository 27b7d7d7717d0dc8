"""A mixture-of-experts MLP: a learned router sends each input to its top-k expert MLPs.

``MoEMLP.forward`` is the conditional computation: for each expert it gathers only the
inputs routed to it (``index_select``), runs the expert on them, and adds the gated
outputs back in place (``index_add``); an expert that received no input is not run.
``dense_gated_forward`` is the reference it must equal: every expert on every input,
weighted by a gate matrix that is 0 for the unselected experts.

Experts are ``models.MLP`` (``in -> hidden... -> classes``, layers ``fc1..fcN``), held in
``experts``, so their parameter names read ``experts.2.fc1.weight`` and they are ``nn.Linear``
layers: ``models.prunable_layers`` and every pruning strategy see them with no change. The
router (``routing.Router``) is not an ``nn.Linear`` and is never pruned.

After every forward the model keeps ``aux_loss`` (the batch's load-balancing loss, with
its graph in training mode) and ``last_routing``; ``moe.training.MoEAuxLossHook`` adds
``weight * aux_loss`` to the loss through the training loop's ``TrainHook.loss_term``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from ..masks import Masks, full_masks
from ..models import MLP, prunable_parameters
from .routing import Router, Routing, route


class MoEMLP(nn.Module):
    """``num_experts`` expert MLPs ``in -> expert_hidden... -> classes`` behind a top-k router.

    Args:
        in_features: flattened input size (images ``(N, C, H, W)`` are flattened).
        expert_hidden: hidden widths of each expert, e.g. ``(300, 100)`` (LeNet-300-100 size).
        num_classes: output logits.
        num_experts: N, at least 2.
        top_k: experts per input (1: Switch, 2: Shazeer et al.).
        activation: the experts' activation (``models.ACTIVATIONS``).
        renormalize: see ``routing.route`` (``None``: renormalise only for ``top_k >= 2``).
    """

    def __init__(self, in_features: int, expert_hidden: tuple[int, ...], num_classes: int, num_experts: int = 4,
                 top_k: int = 1, activation: str = "relu", renormalize: bool | None = None):
        super().__init__()
        if num_experts < 2:
            raise ValueError(f"An MoE needs at least 2 experts, got {num_experts}.")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k must be between 1 and num_experts ({num_experts}), got {top_k}.")
        self.in_features = in_features
        self.expert_hidden = tuple(expert_hidden)
        self.num_classes = num_classes
        self.num_experts = num_experts
        self.top_k = top_k
        self.activation_name = activation
        self.renormalize = renormalize
        self.router = Router(in_features, num_experts)
        self.experts = nn.ModuleList(MLP(in_features, self.expert_hidden, num_classes, activation)
                                     for _ in range(num_experts))
        self.aux_loss: torch.Tensor | None = None
        self.last_routing: Routing | None = None

    def route(self, x: torch.Tensor) -> Routing:
        """The routing of a batch (router logits, top-k experts, gates, load, balance loss)."""
        return route(self.router(x), self.top_k, self.renormalize)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.route(x)
        self.aux_loss, self.last_routing = r.balance_loss, r
        return conditional_forward(self, x, r)  # (B, classes)

    def __getstate__(self):
        # the last batch's tensors (with their autograd graph) are not model state: deepcopy/pickle drop them
        state = self.__dict__.copy()
        state["aux_loss"] = None
        state["last_routing"] = None
        return state


def conditional_forward(model: MoEMLP, x: torch.Tensor, r: Routing) -> torch.Tensor:
    """Run each expert only on the inputs routed to it; ``(B, classes)`` gated sum."""
    xf = x.flatten(1)  # (B, in)
    b, k = r.experts.shape
    out = xf.new_zeros(b, model.num_classes)
    flat = r.experts.reshape(-1)  # (B*k,) assignment -> expert
    order = torch.argsort(flat, stable=True)
    rows = torch.div(order, k, rounding_mode="floor")  # (B*k,) input of each assignment, grouped by expert
    gates = r.gates.reshape(-1)[order]
    start = 0
    for e, count in enumerate(r.load.tolist()):
        if count == 0:
            continue  # no input: the expert is not run at all
        idx = rows[start : start + count]
        y = model.experts[e](xf.index_select(0, idx))  # (count, classes)
        out = out.index_add(0, idx, y * gates[start : start + count, None])
        start += count
    return out


def dense_gated_forward(model: MoEMLP, x: torch.Tensor, r: Routing | None = None) -> torch.Tensor:
    """Reference: every expert on every input, weighted by the dense gate matrix (0 off the top-k)."""
    r = model.route(x) if r is None else r
    xf = x.flatten(1)
    every = torch.stack([expert(xf) for expert in model.experts], 1)  # (B, N, classes)
    return (r.dense_gates()[:, :, None] * every).sum(1)


def routing(model: MoEMLP, x: torch.Tensor) -> Routing:
    """The routing of ``x`` by ``model`` (no gradient; the model's mode is untouched).

    ``ValueError`` when an input gets a NaN or infinite router logit: top-k then picks an arbitrary
    expert (NaN sorts above every number), and a report would count it as routed (an audit).
    """
    with torch.no_grad():
        r = model.route(x)
    broken = ~torch.isfinite(r.logits).all(dim=1)  # (B,)
    if bool(broken.any()):
        first = int(broken.nonzero()[0])
        raise ValueError(f"{int(broken.sum())} of {len(broken)} inputs get NaN or infinite router logits (first: "
                         f"input {first}); check the inputs and the router's weights for NaN or infinity.")
    return r


def expert_parameter_names(model: MoEMLP, expert: int, include_bias: bool = False) -> list[str]:
    """Prunable parameter names of one expert (``experts.{i}.fc*.weight``, biases if asked)."""
    if not 0 <= expert < model.num_experts:
        raise ValueError(f"expert must be in [0, {model.num_experts - 1}], got {expert}.")
    prefix = f"experts.{expert}."
    return [n for n in prunable_parameters(model, include_bias) if n.startswith(prefix)]


def expert_masks(model: MoEMLP, experts: Iterable[int], include_bias: bool = False) -> Masks:
    """Masks that prune every weight of the given experts (all others kept): apply with ``masks.apply_masks``."""
    masks = full_masks(model, include_bias)
    for e in experts:
        for name in expert_parameter_names(model, e, include_bias):
            masks[name] = torch.zeros_like(masks[name])
    return masks


@dataclass(frozen=True)
class MoESpec:
    """A named MoE architecture and the dataset it is for (a registry row, like ``models.ModelSpec``)."""

    name: str
    dataset: str
    in_features: int
    expert_hidden: tuple[int, ...]
    num_classes: int
    num_experts: int
    top_k: int
    description: str

    @property
    def kwargs(self) -> dict:
        """``MoEMLP`` arguments as plain JSON (a card's ``architecture.kwargs``, kind ``"moe"``)."""
        return {"in_features": self.in_features, "expert_hidden": list(self.expert_hidden),
                "num_classes": self.num_classes, "num_experts": self.num_experts, "top_k": self.top_k,
                "activation": "relu"}

    def build(self, seed: int | None = 0) -> MoEMLP:
        """The model, initialised from ``seed`` without touching the process's random stream (None: from it)."""
        if seed is None:
            return MoEMLP(self.in_features, self.expert_hidden, self.num_classes, self.num_experts, self.top_k)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MoEMLP(self.in_features, self.expert_hidden, self.num_classes, self.num_experts, self.top_k)


MOE_ARCHITECTURES: dict[str, MoESpec] = {
    s.name: s
    for s in (
        MoESpec("moe_moons", "moons", 2, (8,), 2, 4, 1,
                "4 tiny experts 2-8-2, top-1 (Switch) router; each expert's region of the plane can be drawn"),
        MoESpec("moe_mnist", "mnist5k", 784, (300, 100), 10, 4, 2,
                "4 LeNet-300-100 experts, top-2 (Shazeer et al. 2017) router"),
    )
}


def get_moe_spec(name: str) -> MoESpec:
    """The registered MoE architecture ``name``; ``ValueError`` naming the choices if unknown."""
    if name not in MOE_ARCHITECTURES:
        raise ValueError(f"Unknown MoE model {name!r}; choose one of {', '.join(MOE_ARCHITECTURES)}.")
    return MOE_ARCHITECTURES[name]
