"""Structured compaction: physically remove dead neurons, giving smaller dense layers.

In a chain ``y_i = act(W_i y_{i-1} + b_i)`` a hidden neuron ``j`` of layer ``i`` is
removable when
  * its row of ``W_i`` is all zero: it always outputs the constant ``act(b_i[j])``,
    which is folded into the next bias (``b_{i+1} += W_{i+1}[:, j] * act(b_i[j])``), or
  * its column of ``W_{i+1}`` is all zero: nothing reads it.
Inputs whose column of ``W_1`` is all zero are dropped by an index_select on the
input. The logits keep every output. The result computes the same function (up
to float rounding of the folded bias).

``compact_conv_chain`` does the same for any chain model of Conv2d / Linear layers
(LeNet-5): a whole dead conv filter (structured pruning) is removed from its conv and
its input channel from the next conv (or its ``S`` flattened features from the next
Linear), so the layers become physically smaller dense ones.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import fx_trace, once_per_architecture


@dataclass
class Compacted:
    """Compacted chain: weights/biases per layer, kept input features, kept rows per layer."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    input_keep: torch.Tensor | None  # (in',) int64 indices into the input, None = all
    kept_rows: list[torch.Tensor]  # per layer: original indices of the surviving outputs

    def removed(self, original: list[torch.Tensor]) -> list[tuple[int, int]]:
        """``(rows removed, cols removed)`` per layer relative to ``original`` shapes."""
        return [(o.shape[0] - w.shape[0], o.shape[1] - w.shape[1]) for o, w in zip(original, self.weights)]


def compact_chain(weights: list[torch.Tensor], biases: list[torch.Tensor | None],
                  act: Callable[[torch.Tensor], torch.Tensor]) -> Compacted:
    """Remove dead hidden neurons and unused inputs from a Linear chain (see module doc)."""
    W = [w.detach().float().clone() for w in weights]
    b = [bb.detach().float().clone() if bb is not None else torch.zeros(w.shape[0]) for bb, w in zip(biases, W)]
    rows = [torch.arange(w.shape[0]) for w in W]
    n = len(W)
    changed = True
    while changed:
        changed = False
        for i in range(n - 1):  # hidden layers only
            dead_row = (W[i] == 0).all(1)  # constant output act(b)
            unused = (W[i + 1] == 0).all(0)  # never read
            drop = dead_row | unused
            if not drop.any():
                continue
            const = act(b[i][dead_row & ~unused])  # (k,)
            if const.numel():
                b[i + 1] = b[i + 1] + W[i + 1][:, dead_row & ~unused] @ const
            keep = ~drop
            W[i], b[i], rows[i] = W[i][keep], b[i][keep], rows[i][keep]
            W[i + 1] = W[i + 1][:, keep]
            changed = True
    in_keep = (W[0] != 0).any(0)
    input_keep = None
    if not in_keep.all():
        input_keep = in_keep.nonzero().flatten()
        W[0] = W[0][:, in_keep]
    return Compacted([w.contiguous() for w in W], b, input_keep, rows)


# --- whole conv filters / neurons of any chain model (LeNet-5): physically smaller layers ----------

ELEMENTWISE = {nn.ReLU: torch.relu, nn.Tanh: torch.tanh, nn.Sigmoid: torch.sigmoid}
ELEMENTWISE_FN = {torch.relu: torch.relu, F.relu: torch.relu, torch.tanh: torch.tanh, torch.sigmoid: torch.sigmoid}
SHAPE_FNS = {torch.flatten}
SHAPE_METHODS = {"flatten", "view", "reshape"}
PASS_MODULES = (nn.Dropout, nn.Identity, nn.Flatten)


@dataclass
class ChainCompaction:
    """A compacted copy of a chain model: ``model`` (smaller layers, same function), ``shapes`` per layer
    ``(original weight shape, compacted weight shape)`` for the layers that shrank, and ``problem``:
    why nothing (more) was compacted, or None."""

    model: nn.Module
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    problem: str | None = None


def _between(model: nn.Module, names: list[str]) -> list[list[Callable] | None]:
    """For each consecutive pair of chain layers, the maps a constant channel goes through between them
    (elementwise activations; pools, dropout, flatten keep a constant), or None where an op could change
    a constant plane (anything else: BatchNorm, padding pools, residual adds...). Traced once per architecture
    (``layers.once_per_architecture``)."""
    return once_per_architecture(model, "between:" + ",".join(names), lambda m: _trace_between(m, names))


def _trace_between(model: nn.Module, names: list[str]) -> list[list[Callable] | None]:
    gm = fx_trace(model)
    modules = dict(gm.named_modules())
    node_of = {n.target: n for n in gm.graph.nodes if n.op == "call_module" and n.target in names}
    out: list[list[Callable] | None] = []
    for a, b in zip(names, names[1:]):
        fns: list[Callable] | None = []
        node = node_of[a]
        while fns is not None:
            users = [u for u in node.users if u.op != "output"]
            if len(users) != 1:
                fns = None
                break
            node = users[0]
            if node.op == "call_module" and node.target == b:
                break
            m = modules.get(node.target) if node.op == "call_module" else None
            keeps_constant = (isinstance(m, PASS_MODULES)
                              or (isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) and m.padding in (0, (0, 0)))
                              or (node.op == "call_function" and node.target in SHAPE_FNS)
                              or (node.op == "call_method" and node.target in SHAPE_METHODS))
            if m is not None and type(m) in ELEMENTWISE:
                fns.append(ELEMENTWISE[type(m)])
            elif node.op == "call_function" and node.target in ELEMENTWISE_FN:
                fns.append(ELEMENTWISE_FN[node.target])
            elif node.op == "call_method" and node.target == "relu":
                fns.append(torch.relu)
            elif not keeps_constant:
                fns = None
        out.append(fns)
    return out


def compact_conv_chain(model: nn.Module, example: torch.Tensor) -> ChainCompaction:
    """Remove whole dead conv filters / Linear rows of a chain model and the inputs of the next layer that
    read them (the next layer's input channels, or for a Linear after a conv its ``S`` features per
    channel), folding a dead unit's constant output ``act(bias)`` into the next bias, as
    ``compact_chain`` does for MLPs. A unit nothing reads is removed too. The copy is checked on
    ``example`` against ``model``; on any doubt the original comes back with ``problem`` saying why.
    The last layer keeps every output.
    """
    from ..layers import chain_layers

    try:
        layers = chain_layers(model)
        between = _between(model, [layer.name for layer in layers])
    except Exception as exc:  # not a chain, not traceable
        return ChainCompaction(model, {}, f"not compacted: {str(exc).splitlines()[0] if str(exc) else exc!r}")
    if any(not isinstance(layer.module, (nn.Linear, nn.Conv2d)) for layer in layers) or \
            len({id(layer.module) for layer in layers}) != len(layers):
        return ChainCompaction(model, {}, "not compacted: only chains of distinct Linear / Conv2d layers")
    new = copy.deepcopy(model)
    mods = [new.get_submodule(layer.name) for layer in layers]
    W = [m.weight.detach().clone() for m in mods]
    b = [m.bias.detach().clone() if m.bias is not None else torch.zeros(m.weight.shape[0]) for m in mods]
    changed = True
    while changed:  # removing units of one layer can leave units of the layer before unread
        changed = False
        for i in range(len(mods) - 1):
            fns, nxt = between[i], mods[i + 1]
            units = W[i].shape[0]
            if fns is None or (isinstance(nxt, nn.Conv2d) and nxt.groups != 1) or units == 0 \
                    or W[i + 1].shape[1] % units:
                continue
            w3 = W[i + 1].reshape(W[i + 1].shape[0], units, -1)  # (out, units, taps or features per unit)
            dead = (W[i] == 0).flatten(1).all(1)  # constant output act(bias)
            unused = (w3 == 0).all(2).all(0)  # never read
            keep = ~(dead | unused)
            if not keep.any():
                keep[0] = True  # never an empty layer: one (dead) unit stays as it is
            if keep.all():
                continue
            fold = dead & ~unused & ~keep
            const = b[i][fold]
            for fn in fns:
                const = fn(const)
            if fold.any() and isinstance(nxt, nn.Conv2d) and nxt.padding not in (0, (0, 0)) \
                    and bool((const != 0).any()):
                continue  # zero padding: the border would not see the constant
            b[i + 1] = b[i + 1] + w3[:, fold, :].sum(2) @ const
            W[i], b[i] = W[i][keep], b[i][keep]
            W[i + 1] = w3[:, keep, :].reshape(w3.shape[0], -1, *W[i + 1].shape[2:])
            changed = True
    shapes = {}
    for layer, m, w, bb in zip(layers, mods, W, b):
        if tuple(w.shape) == tuple(m.weight.shape) and (m.bias is None or torch.equal(bb, m.bias.detach())):
            continue
        shapes[layer.name] = (tuple(m.weight.shape), tuple(w.shape))
        _resize(m, w, bb, had_bias=m.bias is not None or bool((bb != 0).any()))
    if not shapes:
        return ChainCompaction(model, {}, None)
    try:
        with torch.no_grad():
            want, got = model(example), new(example)
        ok = got.shape == want.shape and float((got - want).abs().max()) <= 1e-4 * float(want.abs().max()) + 1e-5
    except Exception as exc:  # e.g. a forward with a hard-coded view(-1, 800)
        ok, shapes = False, {"error": str(exc).splitlines()[0] if str(exc) else repr(exc)}
    if not ok:
        return ChainCompaction(model, {}, f"not compacted: the compacted copy computes something else ({shapes})")
    return ChainCompaction(new, shapes, None)


def _resize(m: nn.Module, w: torch.Tensor, b: torch.Tensor, had_bias: bool) -> None:
    """Give Linear / Conv2d ``m`` the weight ``w`` (and bias ``b``), updating its size attributes."""
    m.weight = nn.Parameter(w.contiguous(), requires_grad=m.weight.requires_grad)
    if had_bias:
        m.bias = nn.Parameter(b.contiguous(), requires_grad=True)
    if isinstance(m, nn.Linear):
        m.out_features, m.in_features = w.shape
    else:
        m.out_channels, m.in_channels = w.shape[0], w.shape[1]
