"""Which parameters of any ``nn.Module`` are prunable (by type), and whether the model is a chain.

**Discovery by type, never by name.** ``PRUNABLE`` is the one explicit table of module types
and the parameters of theirs that are pruned: ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d``
(``weight``) and ``nn.MultiheadAttention`` (its packed ``in_proj_weight``, or ``q/k/v_proj_weight``
when the three differ in size; its ``out_proj`` is an ``nn.Linear`` and found as one). A custom
layer opts in with one class attribute naming its prunable parameters::

    class MyLayer(nn.Module):
        sparsity_viz_prunable = ("weight",)

and a subclass of a listed type opts out with ``sparsity_viz_prunable = ()``. The MoE router
(``moe.routing.Router``) is deliberately none of these, so it is never pruned.

**Tied weights.** One ``nn.Parameter`` reachable under several module names is one entry, named
as ``model.named_parameters()`` names it (its first name), so it gets one mask, is pruned once
and counted once.

**Forward order.** ``named_modules()`` is registration order, not forward order. Where order
matters (connectivity, the graph), ``chain_layers`` traces the model with ``torch.fx`` and
returns the prunable layers in the order the forward pass calls them, or raises a
``ValueError`` saying where the model branches (a residual, an attention block, ...).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

DECLARATION = "sparsity_viz_prunable"  # class attribute: names of a module's prunable parameters

PRUNABLE: dict[type[nn.Module], tuple[str, ...]] = {
    nn.Linear: ("weight",),
    nn.Conv1d: ("weight",),
    nn.Conv2d: ("weight",),
    # only the names set on the instance count: packed in_proj_weight, or q/k/v_proj_weight
    nn.MultiheadAttention: ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"),
}

CHAIN_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)  # layers whose units connectivity can follow


@dataclass(frozen=True, eq=False)
class PrunableWeight:
    """One prunable parameter: where it lives and the one name masks use for it."""

    key: str  # the parameter's name in model.named_parameters(), e.g. "encoder.0.weight"
    module_name: str  # the module holding it, e.g. "encoder.0"
    module: nn.Module
    attr: str  # the parameter's attribute on the module: "weight", "in_proj_weight", ...
    bias_key: str | None  # the matching bias's name in named_parameters(), if any

    @property
    def param(self) -> nn.Parameter:
        return getattr(self.module, self.attr)

    @property
    def bias(self) -> nn.Parameter | None:
        """The matching bias (``bias`` / ``in_proj_bias``), or None."""
        attr = _bias_attr(self.module, self.attr)
        return getattr(self.module, attr) if attr else None

    @property
    def label(self) -> str:
        """The name reports show: ``"fc1"`` for ``fc1.weight``, the full key otherwise."""
        return self.key.removesuffix(".weight")


def prunable_names(module: nn.Module) -> tuple[str, ...]:
    """Names of ``module``'s own prunable parameters (a declaration wins over ``PRUNABLE``).

    Raises:
        ValueError: the module declares a name that is not one of its parameters.
    """
    declared = getattr(type(module), DECLARATION, None)
    if declared is not None:
        names = (declared,) if isinstance(declared, str) else tuple(declared)
        missing = [n for n in names if not _is_tensor(module, n)]
        if missing:
            raise ValueError(f"{type(module).__name__} declares {DECLARATION} = {names!r}, but "
                             f"{', '.join(map(repr, missing))} is not a parameter (tensor) of it.")
        return names
    for kind, names in PRUNABLE.items():
        if isinstance(module, kind):
            return tuple(n for n in names if _is_tensor(module, n))
    return ()


def _is_tensor(module: nn.Module, name: str) -> bool:
    """A parameter, or the tensor ``torch.nn.utils.prune`` leaves in its place (``weight_orig * weight_mask``)."""
    return isinstance(getattr(module, name, None), torch.Tensor)


def _bias_attr(module: nn.Module, attr: str) -> str | None:
    """``bias`` for ``weight``, ``in_proj_bias`` for ``in_proj_weight``; None when there is none."""
    if not attr.endswith("weight"):
        return None
    bias = attr[: -len("weight")] + "bias"
    return bias if _is_tensor(module, bias) else None


def prunable_weights(model: nn.Module) -> list[PrunableWeight]:
    """Every prunable parameter of ``model``, once per distinct ``Parameter``, in registration order."""
    names = {id(p): n for n, p in model.named_parameters()}  # the first name of each (tied) parameter
    seen: set[int] = set()
    out: list[PrunableWeight] = []
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for attr in prunable_names(module):
            p = getattr(module, attr)
            if id(p) in seen:
                continue  # a tied weight: already listed under its first name
            seen.add(id(p))
            bias = _bias_attr(module, attr)
            bias_key = names.get(id(getattr(module, bias)), prefix + bias) if bias else None
            out.append(PrunableWeight(names.get(id(p), prefix + attr), module_name, module, attr, bias_key))
    return out


# --- forward order: is the model a chain? ------------------------------------------------


@dataclass(frozen=True, eq=False)
class ChainLayer:
    """One layer of a chain, in forward order; ``key`` names its (possibly tied) weight's mask."""

    name: str  # module name, e.g. "fc1"
    module: nn.Module
    key: str  # the mask key of its weight (the tied-to name for a tied weight)


_SHAPE_METHODS = {"size", "dim", "numel", "type", "device", "dtype"}


def _is_shape_op(node: torch.fx.Node) -> bool:
    """Nodes that read only a tensor's shape / type (``x.size(0)``, ``x.shape``): no data flows on."""
    if node.op == "call_method":
        return node.target in _SHAPE_METHODS
    return node.op == "call_function" and node.target in (getattr, len)


def chain_problem(model: nn.Module) -> str | None:
    """Why connectivity cannot read ``model`` as a chain of layers, or None when it can."""
    try:
        chain_layers(model)
    except ValueError as e:
        return str(e)
    return None


def chain_layers(model: nn.Module) -> list[ChainLayer]:
    """The prunable layers of a chain model in forward order (traced with ``torch.fx``).

    A chain: one input, every operation's data comes from one earlier operation and goes on
    to one (no residual, no branch, no concatenation), every prunable parameter belongs to a
    Linear / Conv1d / Conv2d (groups 1) layer called exactly once. A tied weight may appear in
    several layers (each is listed, with the tied key).

    Raises:
        ValueError: naming where the model is not a chain (or why it cannot be traced).
    """
    def trace(model: nn.Module) -> list[tuple[str, str]] | str:
        try:
            return [(layer.name, layer.key) for layer in _chain(model)]
        except ValueError as e:
            return str(e)

    cached = once_per_architecture(model, "chain", trace)
    if isinstance(cached, str):
        raise ValueError(cached)
    modules = dict(model.named_modules())
    return [ChainLayer(name, modules[name], key) for name, key in cached]


# One trace per architecture and process, not per model object: a pruned copy has the structure of its dense
# model, so the live path never traces (a trace in one app session would break another session's forward pass:
# torch.fx patches nn.Module globally while it traces).
_TRACED: dict = {}  # (what, structure) -> what ``trace`` returned
_TRACE_LOCK = threading.Lock()
_MAX_TRACED = 512


def once_per_architecture(model: nn.Module, what: str, trace: Callable[[nn.Module], Any]) -> Any:
    """``trace(model)`` (anything that runs ``torch.fx``), run once per architecture (``_structure``) and
    ``what`` in this process, under one lock; later models of the same architecture get the cached result.
    ``trace`` must not depend on the weights' values, and its result is shared: never change it."""
    structure = _structure(model)
    if structure is None:  # an attribute the key cannot describe: this model gets its own trace
        with _TRACE_LOCK:
            return trace(model)
    key = (what, structure)
    cached = _TRACED.get(key, _MISSING)
    if cached is _MISSING:
        with _TRACE_LOCK:  # torch.fx patches nn.Module.__call__ for every thread while it traces: one at a time
            cached = _TRACED.get(key, _MISSING)
            if cached is _MISSING:
                cached = trace(model)
                if len(_TRACED) >= _MAX_TRACED:
                    _TRACED.clear()
                _TRACED[key] = cached
    return cached


_MISSING = object()


class _OwnThreadTracer(torch.fx.Tracer):
    """``torch.fx``'s tracer, confined to the thread that traces.

    A trace patches ``nn.Module.__call__`` and ``__getattr__`` for the whole process; the lock above keeps traces
    apart, but another thread's forward pass during a trace ran into the tracer ("module is not installed as a
    submodule": 116 of 417 evaluations failed while another thread traced new layouts; an audit). Calls from any
    other thread go straight through to the module.
    """

    def trace(self, root, concrete_args=None):
        self._owner = threading.get_ident()
        return super().trace(root, concrete_args)

    def call_module(self, m, forward, args, kwargs):
        if threading.get_ident() != self._owner:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if threading.get_ident() != self._owner:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def fx_trace(model: nn.Module) -> torch.fx.GraphModule:
    """``torch.fx.symbolic_trace(model)``, harmless to other threads' forward passes (``_OwnThreadTracer``)."""
    tracer = _OwnThreadTracer()
    graph = tracer.trace(model)
    return torch.fx.GraphModule(tracer.root, graph, type(model).__name__)


_PLAIN = (bool, int, float, str, bytes, type(None), torch.dtype, torch.device)


def _plain(value: Any) -> Any:
    """``value`` as a hashable constant (lists as tuples), or ``_MISSING`` where it is not a plain constant."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (tuple, list)):
        items = tuple(_plain(v) for v in value)
        return _MISSING if any(v is _MISSING for v in items) else items
    return _MISSING


def _structure(model: nn.Module) -> tuple | None:
    """What the traced chain depends on: the model's class, every module's name, type, forward and plain
    attributes (a forward may branch on a flag or scale by a constant: an audit found a second model of one class
    running the first one's graph), and its parameters' names, shapes and sharing (tied weights), never their
    values or identities. None where a module holds a public attribute that is not a plain constant (a tensor,
    an object): a trace may have baked it in, so such a model is not shared."""
    first: dict[int, int] = {}
    parts = []
    for name, m in model.named_modules():
        params = tuple((pn, tuple(p.shape), first.setdefault(id(p), len(first)))
                       for pn, p in m._parameters.items() if p is not None)
        attrs = tuple(sorted((k, _plain(v)) for k, v in vars(m).items() if not k.startswith("_")))
        if any(v is _MISSING for _, v in attrs):
            return None
        parts.append((name, type(m), getattr(m.forward, "__func__", m.forward), params, attrs))
    return (type(model), tuple(parts))


def _chain(model: nn.Module) -> list[ChainLayer]:
    model_name = type(model).__name__
    prefix = f"connectivity needs a chain of layers; {model_name}"
    weights = prunable_weights(model)
    keys = {id(w.param): w.key for w in weights}
    for w in weights:
        if not isinstance(w.module, CHAIN_TYPES) or w.attr != "weight":
            raise ValueError(f"{prefix} has {w.key!r} in a {type(w.module).__name__}, which is not a Linear / Conv "
                             "layer whose units connectivity can follow.")
        if isinstance(w.module, (nn.Conv1d, nn.Conv2d)) and w.module.groups != 1:
            raise ValueError(f"Grouped convolution {w.module_name!r} is not supported by connectivity.")
    try:
        graph = fx_trace(model).graph
    except Exception as e:  # data-dependent control flow etc.
        raise ValueError(f"{prefix} could not be traced with torch.fx to check that it is one "
                         f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}).") from None
    modules = dict(model.named_modules())
    kind: dict[torch.fx.Node, str] = {}  # "data" (carries the input), "shape" or "const"
    layers: list[ChainLayer] = []
    called: set[str] = set()
    for node in graph.nodes:
        if node.op == "output":
            continue
        inputs = node.all_input_nodes
        data_in = [i for i in inputs if kind.get(i) == "data"]
        if node.op == "placeholder":
            kind[node] = "data"
        elif data_in and _is_shape_op(node):
            kind[node] = "shape"
        elif data_in:
            kind[node] = "data"
        else:
            kind[node] = "shape" if any(kind.get(i) == "shape" for i in inputs) else "const"
        if kind[node] != "data":
            continue
        if len(data_in) > 1:
            raise ValueError(f"{prefix} has a residual/branch: {node.name!r} joins "
                             f"{' and '.join(repr(i.name) for i in data_in)}.")
        data_users = [u for u in node.users if u.op != "output" and not _is_shape_op(u)]
        if len(data_users) > 1:
            raise ValueError(f"{prefix} has a residual/branch at {node.name!r}: its output feeds "
                             f"{' and '.join(repr(u.name) for u in data_users)}.")
        if node.op == "call_module" and isinstance(modules.get(node.target), CHAIN_TYPES):
            module = modules[node.target]
            if node.target in called:
                raise ValueError(f"{prefix} calls {node.target!r} more than once.")
            called.add(node.target)
            if id(module.weight) in keys:
                layers.append(ChainLayer(node.target, module, keys[id(module.weight)]))
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) > 1:
        raise ValueError(f"{prefix} takes {len(placeholders)} inputs.")
    reached = {id(layer.module.weight) for layer in layers}
    missing = [w.key for w in weights if id(w.param) not in reached]
    if missing:
        raise ValueError(f"{prefix} never calls the layer of {', '.join(map(repr, missing))} on the data path.")
    return layers


def is_chain(model: nn.Module) -> bool:
    """Whether ``chain_layers(model)`` succeeds: the model is a chain of prunable layers (cached like it)."""
    try:
        chain_layers(model)
    except ValueError:
        return False
    return True
