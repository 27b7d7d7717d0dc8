"""One user's workbench as plain data: the dense model, the current (pruned / trained) model, its origin.

The app keeps one ``Workbench`` per browser session. The dense model is a private
copy of a bundled (or uploaded) checkpoint; every view reads the *current* model,
which Prune, fine-tuning and Regularize replace. Functions here are pure: they
return new ``Workbench`` values and never modify the models they are given
(``replace_current`` takes ownership of the model it is handed).

Streamlit-free, so it can be tested and reused without the app.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from .masks import Masks, full_masks, masks_from_zeros, sparsity


@dataclass(frozen=True)
class PruneConfig:
    """What the Prune page's widgets say; frozen, so it is a cache key."""

    strategy: str = "magnitude"
    scope: str = "layer"
    sparsity: float = 0.0  # fraction in [0, 1]
    seed: int = 0

    def describe(self) -> str:
        return f"{self.strategy} pruning ({'layer-wise' if self.scope == 'layer' else self.scope}) to " \
               f"{100 * self.sparsity:.0f} % sparsity"  # not "global-wise" (an audit)


@dataclass(frozen=True)
class CurvesConfig:
    """What the Curves page's widgets say: one sweep configuration (a cache key)."""

    strategies: tuple[str, ...]
    levels: tuple[float, ...]  # fractions in [0, 1]
    seeds: int = 1
    finetune_epochs: int = 0
    scope: str = "layer"


@dataclass(frozen=True, eq=False)
class Workbench:
    """The dense reference model and the current model every view shows.

    ``current`` holds weights with pruned entries exactly zero; ``masks`` say
    which entries are pruned (True = survives).
    """

    name: str  # registry name of the architecture, e.g. "lenet300"
    dataset: str  # dataset the views evaluate on
    dense: nn.Module  # private dense copy (never modified)
    current: nn.Module  # the model every view shows
    masks: Masks
    origin: str  # human description of how ``current`` was made
    fingerprint: str  # ``model_key`` of the dense model (weights and architecture): part of every cache key
    dense_accuracy: float | None = None
    prune_config: PruneConfig | None = None  # the Prune settings that made ``current``, if any
    history: tuple[str, ...] = field(default=())  # earlier origins, oldest first
    card: dict[str, Any] = field(default_factory=dict)
    dense_masks: Masks | None = None  # masks of ``dense`` itself (an upload's stored zeros); None: nothing pruned
    recipe: Any = None  # model_recipe.ModelRecipe that rebuilds ``current`` from ``dense``; None: no link can

    @property
    def linkable(self) -> bool:
        """A link can name its dense model (a bundled one, not an uploaded checkpoint or architecture)."""
        return "uploaded" not in self.card and not self.card.get("own")

    @property
    def sparsity(self) -> float:
        return sparsity(self.masks)

    @property
    def is_dense(self) -> bool:
        return self.sparsity == 0.0 and self.prune_config is None and self.origin.startswith("dense")


def architecture_fingerprint(model: nn.Module) -> str:
    """A short hash of what a state dict does not hold: the module tree (``repr``: layer types and settings,
    activation modules) and an MLP's ``activation_name``. Two models with equal weights and another activation
    differ here."""
    text = f"{type(model).__qualname__}|{getattr(model, 'activation_name', '')}|{model!r}"
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def fingerprint(model: nn.Module) -> str:
    """A short hash of a model's state dict (names, shapes and values)."""
    h = hashlib.sha1()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def model_key(model: nn.Module) -> str:
    """A model's identity for caches: its weights (``fingerprint``) and its architecture (``architecture_fingerprint``).

    Weights alone named two models: an upload of moons_mlp's weights under tanh shared the bundled ReLU model's
    pruned copy, masks and curves with another session (an audit).
    """
    return f"{fingerprint(model)}-{architecture_fingerprint(model)}"


def new_workbench(
    name: str,
    dataset: str,
    dense: nn.Module,
    *,
    origin: str = "dense (as trained)",
    dense_accuracy: float | None = None,
    card: dict[str, Any] | None = None,
) -> Workbench:
    """A workbench over a private deep copy of ``dense`` (the argument is not kept)."""
    from .model_recipe import ModelRecipe  # noqa: PLC0415 (model_recipe imports PruneConfig from here)

    own = copy.deepcopy(dense).eval()
    return Workbench(
        name=name,
        dataset=dataset,
        dense=own,
        current=own,  # shared until something replaces it; neither is ever modified in place
        masks=full_masks(own),
        origin=origin,
        fingerprint=model_key(own),
        dense_accuracy=dense_accuracy,
        card=dict(card or {}),
        recipe=ModelRecipe(),
    )


def workbench_from_upload(
    name: str, dataset: str, model: nn.Module, filename: str, *, dense_accuracy: float | None = None,
    card: dict[str, Any] | None = None,
) -> Workbench:
    """A workbench over an uploaded model, whose stored zeros count as pruned weights.

    The masks are read off the zeros (``masks_from_zeros``): a checkpoint that is
    90 % zeros (the app's own sparse checkpoint, or any pruned state dict) shows
    90 % pruned, and ``reset`` comes back to those masks. Without zeros it is a
    plain dense workbench, ``origin`` "dense (uploaded <file>)". ``card`` adds to its card (an uploaded
    architecture's spec, ``own_card``).
    """
    bench = new_workbench(name, dataset, model, origin=f"dense (uploaded {filename})",
                          dense_accuracy=dense_accuracy, card={"uploaded": filename, **(card or {})})
    masks = masks_from_zeros(bench.dense)
    bench = replace(bench, recipe=None)  # a link cannot carry an uploaded checkpoint
    zeros = sparsity(masks)
    if zeros == 0.0:
        return bench
    origin = f"uploaded {filename} ({100 * zeros:.1f} % of weights stored as zeros)"
    return replace(bench, masks=masks, dense_masks=masks, origin=origin)


def replace_current(
    bench: Workbench, model: nn.Module, masks: Masks | None, origin: str, prune_config: PruneConfig | None = None,
    recipe: Any = None,
) -> Workbench:
    """A workbench whose current model is ``model`` (owned from now on) under ``masks``.

    Without masks they are read off the zeros of the weights. ``recipe`` (a ``model_recipe.ModelRecipe``)
    says how to make ``model`` again from ``bench.dense``; None: it cannot be made again (a link cannot carry it).
    """
    model = model.eval()
    masks = masks_from_zeros(model) if masks is None else {k: v.detach().to("cpu", torch.bool) for k, v in masks.items()}
    return replace(
        bench,
        current=model,
        masks=masks,
        origin=origin,
        prune_config=prune_config,
        history=(*bench.history, bench.origin)[-20:],
        recipe=recipe if bench.linkable else None,
    )


def reset(bench: Workbench) -> Workbench:
    """Back to the dense model (with its own masks: an upload's stored zeros stay pruned)."""
    from .model_recipe import ModelRecipe  # noqa: PLC0415

    return replace(
        bench,
        current=bench.dense,
        masks=full_masks(bench.dense) if bench.dense_masks is None else bench.dense_masks,
        origin="dense (reset)",
        prune_config=None,
        history=(*bench.history, bench.origin)[-20:],
        recipe=ModelRecipe() if bench.linkable else None,
    )


def own_card(spec: Any, datasets: list[str]) -> dict[str, Any]:
    """The card of a model built from an uploaded architecture spec (``arch_spec.ArchSpec``).

    ``spec`` is what rebuilds it (a fresh initialisation for the lottery lab), ``datasets`` the ones
    it may be evaluated on (an uploaded one first), ``description`` its one-line summary.
    """
    return {"own": True, "spec": spec.to_dict(), "description": spec.describe(), "datasets": list(datasets),
            "parameters": spec.parameters}


def own_model_name(spec_name: str, *files: bytes) -> str:
    """The session-wide name of an uploaded model: the spec's name and a hash of the uploaded files.

    Never a bundled name (those carry no hash), and a different upload never reuses one.
    """
    h = hashlib.sha1()
    for data in files:
        h.update(hashlib.sha1(data).digest())
    return f"{spec_name}_{h.hexdigest()[:6]}"
