"""The live slider's pruner: one model and strategy sorted once, then any level cut, copied and compiled in ~ms.

``LivePruner`` keeps a copy of the dense model and the strategy's ``Ranking`` (the one
sort). ``step(sparsity)`` cuts the masks by one comparison per entry (``Ranking.cut``),
makes the pruned copy without a second copy of the weights, and, on demand, its
evaluation model: the MLP's layers as backend operators, where the native CSR of each
sparse layer is read off a per-row sorted copy of the layer instead of being encoded
from the dense weight. Within a row the entries are kept most important first, so the
survivors at any level are a prefix of the row: the CSR is a gather of ``nnz`` entries
(columns in rank order, which the kernel accepts; the predictions equal the dense
model's, ``tests/backend/test_ranked.py``).

Which layers go sparse follows the backend's ``policy="heuristic"`` rule
(``dispatch.HEURISTIC_DENSITY``), as ``live.fast_plan`` does; the rest run dense.

For a ReLU MLP whose first bias is not ranked, the evaluation model is an ``AnchoredMLP`` at
every level: for an input seen before (the test set, step after step) the first layer's
pre-activations are the nearest anchor level's plus a small correction (``anchored.py``),
and only the later, small layers run.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..masks import Masks, require_finite, validate_masks
from ..models import MLP
from ..pruning.base import Ranking, ScoreStrategy, Strategy
from . import kernels
from .anchored import SPARSE_DENSITY, FirstLayerAnchors, RankedCSROp, feature_major, input_key
from .dispatch import make_op
from .formats import CSR, INT16_MAX_COLS
from .ops import LinearOp, run_chain


MIN_SPARSE_ROWS = 16  # a live layer with fewer outputs runs dense: its CSR call costs more than the product


def is_cut_of_scores(strategy: Strategy) -> bool:
    """True when the strategy's masks are a cut of one ranking of its scores (``ScoreStrategy.compute_masks``)."""
    return (isinstance(strategy, ScoreStrategy) and type(strategy).compute_masks is ScoreStrategy.compute_masks
            and strategy.kind == "one_shot" and strategy.ranking.__func__ is ScoreStrategy.ranking)


class RankedLayer:
    """One Linear layer's entries sorted per row by rank, most important first (built once)."""

    def __init__(self, weight: torch.Tensor, positions: torch.Tensor):
        out, inp = weight.shape
        perm = torch.argsort(positions, dim=1, descending=True)  # (out, in): per row, last pruned first
        self.shape = (int(out), int(inp))
        dtype = np.int16 if inp <= INT16_MAX_COLS else np.int32
        self.cols = perm.numpy().astype(dtype).ravel()  # (out*in,)
        self.vals = weight.detach().float().gather(1, perm).contiguous().numpy().ravel()  # (out*in,)
        self.row_start = np.arange(out, dtype=np.int64) * inp
        self.ascending = positions.gather(1, perm.flip(1)).contiguous()  # (out, in): per row, first pruned first
        # the rows one after another, row r shifted by r * span: one sorted array, so one searchsorted
        # answers every row at once (numpy: ~10x faster than torch's batched search on this size)
        self._span = int(positions.max()) + 1 if positions.numel() else 1
        key_dtype = np.int32 if out * self._span < 2**31 else np.int64  # the needles get the same dtype: no cast
        self._row_base = np.arange(out, dtype=key_dtype) * key_dtype(self._span)  # (out,)
        self._keyed = (self.ascending.numpy().astype(key_dtype) + self._row_base[:, None]).ravel()  # (out*in,)
        self._row_end = self.row_start + inp  # (out,)

    def counts(self, k: int) -> np.ndarray:
        """Survivors per row (out,) at a cut of ``k`` (entries at positions >= k survive): a search per row."""
        k = min(max(int(k), 0), self._span)
        return self._row_end - np.searchsorted(self._keyed, self._row_base + self._row_base.dtype.type(k))

    def csr(self, counts: np.ndarray, skip: np.ndarray | None = None, sign: float = 1.0) -> CSR:
        """The CSR of entries ``skip[r] .. skip[r] + counts[r]`` of each row ``r`` in rank order (out,) each.

        ``skip=None``: the survivors of one cut (``counts = self.counts(k)``, a prefix of each row); the
        entries at positions in ``[lo, hi)`` are ``skip = counts(hi)``, ``counts = counts(lo) - counts(hi)``.
        ``sign=-1``: the values negated.
        """
        rowptr = np.zeros(self.shape[0] + 1, dtype=np.int32)
        np.cumsum(counts, out=rowptr[1:])
        nnz = int(rowptr[-1])
        start = self.row_start if skip is None else self.row_start + skip
        idx = np.arange(nnz, dtype=np.int64) + np.repeat(start - rowptr[:-1], counts)  # (nnz,) flat
        vals = self.vals.take(idx)
        if sign == -1.0:
            np.negative(vals, out=vals)
        elif sign != 1.0:
            raise ValueError("sign must be 1 or -1")
        return CSR(torch.from_numpy(rowptr), torch.from_numpy(self.cols.take(idx)), torch.from_numpy(vals), self.shape)

    def between(self, lo: int, hi: int) -> CSR:
        """The CSR of the entries at positions ``lo <= position < hi`` (what moving a cut from lo to hi prunes)."""
        return self.span(self.counts(lo), self.counts(hi))

    def span(self, at_lo: np.ndarray, at_hi: np.ndarray, sign: float = 1.0) -> CSR:
        """``between`` from the survivors per row at both cuts (``counts(lo)``, ``counts(hi)``, (out,) each):
        the entries surviving ``lo`` but not ``hi``, the first ``at_hi[r]`` of each row skipped; ``sign=-1`` negated."""
        return self.csr(at_lo - at_hi, at_hi, sign)


class RankedMLP(nn.Module):
    """A pruned MLP as a chain of backend operators (batch-major in, logits out); for evaluation only."""

    def __init__(self, ops: list[LinearOp]):
        super().__init__()
        self.ops = ops

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, ...) -> (N, classes)
        return run_chain(self.ops, feature_major(x)).t().contiguous()  # row-major logits: argmax/loss 5x faster

    def formats(self) -> list[str]:
        return [op.format for op in self.ops]


class AnchoredMLP(RankedMLP):
    """A ``RankedMLP`` whose first layer, for an input seen before, comes from ``FirstLayerAnchors``.

    The first time an input is evaluated (``FirstLayerAnchors.seen``) the whole chain runs (its
    first operator built then); from the second time on the first layer's pre-activations are the
    nearest anchor plus a small correction, and only the later layers run.
    """

    def __init__(self, anchors: FirstLayerAnchors, cut: int, first: Callable[[], LinearOp], rest: list[LinearOp]):
        nn.Module.__init__(self)
        # plain attributes (none is a Module or Parameter): skip nn.Module.__setattr__'s checks, once per step
        self.__dict__.update(anchors=anchors, cut=int(cut), rest=rest, _first=first, _ops=None)

    @property
    def ops(self) -> list[LinearOp]:  # the whole chain, built on first use
        if self._ops is None:
            self._ops = [self._first(), *self.rest]
        return self._ops

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, ...) -> (N, classes)
        key = input_key(x)
        if x.dim() < 2 or not self.anchors.seen(key):
            return super().forward(x)
        if not self.rest:
            return self.anchors.preact(self.cut, x, key).t().contiguous()
        h = self.anchors.preact(self.cut, x, key, relu=True)  # (hidden, N), a new tensor
        return run_chain(self.rest, h).t().contiguous()

    def formats(self) -> list[str]:
        return ["anchored", *(op.format for op in self.rest)]


class LiveStep(NamedTuple):
    """One slider position: the masks, the pruned copy and the cut (``live.evaluation_model`` evaluates it)."""

    sparsity: float
    masks: Masks
    model: nn.Module
    cut: dict[str, int]  # per parameter: entries at positions below this are pruned (``Ranking.cut``)


class LivePruner:
    """``model`` pruned by ``strategy`` at any level, from one sort (see the module docstring).

    Args:
        model: the dense model; a private copy is kept, the argument is never modified.
        strategy: a strategy whose masks are a cut of its scores (``is_cut_of_scores``).
        batch: ``(inputs, labels)`` for strategies that need data.
        current: masks already in force (an upload's zeros); they stay pruned.
    """

    def __init__(self, model: nn.Module, strategy: Strategy, batch=None, current: Masks | None = None):
        if not is_cut_of_scores(strategy):
            raise ValueError(f"Strategy {strategy.name!r} is not a cut of one ranking; prune it with prune().")
        if strategy.needs_data and batch is None:
            raise ValueError(f"Strategy {strategy.name!r} needs a batch of data (inputs, labels).")
        if current is not None:
            validate_masks(model, current)
        require_finite(model, "A live pruner")  # as prune() does
        self.model = copy.deepcopy(model)
        self.strategy = strategy
        self.ranking = Ranking(strategy.scores(self.model, batch), strategy.scope, current)  # the one sort
        self.params = {n: self.model.get_parameter(n) for n in self.ranking.shapes}
        # copy by hand (deepcopy costs ~1 ms of Python), from a plan of the private copy, which nothing modifies
        self.lean = _copy_plan(self.model) if all(_plain(m) for m in self.model.modules()) else None
        positions = self.ranking.positions()
        self._positions = {n: _compact(p) for n, p in positions.items()}  # int32 where it fits: a faster compare
        self.layers: dict[str, RankedLayer] | None = None
        self.anchors: FirstLayerAnchors | None = None  # the first Linear layer's, when its bias is not ranked
        self.linears = [n for n, m in self.model.named_modules() if isinstance(m, nn.Linear)]  # in order
        if isinstance(self.model, MLP) and self.model.activation_name == "relu":
            self.layers = {n: RankedLayer(p.detach(), positions[n]) for n, p in self.params.items()
                           if n.endswith(".weight") and p.dim() == 2 and p.device.type == "cpu"}
            first = self.linears[0] if self.linears else None
            if f"{first}.weight" in self.layers and f"{first}.bias" not in self.params:
                mod = self.model.get_submodule(first)
                self.anchors = FirstLayerAnchors(self.layers[f"{first}.weight"], mod.weight, mod.bias,
                                                 self._positions[f"{first}.weight"])

    def step(self, sparsity: float) -> LiveStep:
        """Masks (exactly ``prune``'s) and the pruned copy at ``sparsity``."""
        cut, pos = self.ranking.cut(sparsity), self._positions
        masks, memo = {}, {}
        for n, p in self.params.items():  # the masks = ranking.masks(sparsity); the weights = p * mask
            masks[n], weight = _cut(pos[n], cut[n], p.detach(), self.ranking.devices[n])
            memo[id(p)] = nn.Parameter(weight, requires_grad=p.requires_grad)
        model = _lean_copy(self.lean, memo) if self.lean is not None else copy.deepcopy(self.model, memo)
        return LiveStep(float(sparsity), masks, model, cut)

    def compiled(self, cut: dict[str, int], model: nn.Module) -> nn.Module:
        """``model`` (this pruner's copy cut at ``cut``) as an ``AnchoredMLP`` (every level) when the first layer
        has anchors, else as a ``RankedMLP`` when a layer runs sparse, else ``model`` itself."""
        if self.layers is None:
            return model
        linears = [(n, model.get_submodule(n)) for n in self.linears]  # the copy has the pruner model's layout
        if len(linears) != len(self.layers) or any(f"{n}.weight" not in self.layers for n, _ in linears):
            return model  # biases pruned too, or an unexpected layout: evaluate as is
        last = len(linears) - 1
        if self.anchors is not None:  # every level: the first layer from its anchors, the rest cut as below
            rest = [self._op(cut, n, m, i < last) for i, (n, m) in enumerate(linears) if i > 0]
            name, mod = linears[0]
            return AnchoredMLP(self.anchors, cut[f"{name}.weight"], lambda: self._op(cut, name, mod, last > 0), rest)
        ops = [self._op(cut, n, m, i < last) for i, (n, m) in enumerate(linears)]
        if all(op.format == "dense" for op in ops):
            return model
        return RankedMLP(ops)

    def _op(self, cut: dict[str, int], name: str, mod: nn.Linear, relu: bool) -> LinearOp:
        """Layer ``name`` (``mod``, of the copy cut at ``cut``) as the CSR kernel when sparse enough, else dense.

        Layers of fewer than ``MIN_SPARSE_ROWS`` outputs stay dense (a 10 x 100 layer at batch 1,000: dense
        23 us, the CSR kernel 40-75 us at any density, ``benchmarks/live_path.py``).
        """
        layer = self.layers[f"{name}.weight"]
        if layer.shape[0] >= MIN_SPARSE_ROWS:
            counts = layer.counts(cut[f"{name}.weight"])  # (out,)
            if counts.sum() <= SPARSE_DENSITY * mod.weight.numel():
                return RankedCSROp(mod.bias, relu, layer.csr(counts))
        return make_op("dense", mod.weight.detach(), mod.bias, relu)


_NUMPY_DTYPES = (torch.float32, torch.float64)


def _compact(positions: torch.Tensor) -> torch.Tensor:
    """``positions`` as int32 when every value fits (a cut compares 4 bytes per entry instead of 8)."""
    if positions.numel() and int(positions.max()) < 2**31 - 1 and int(positions.min()) >= 0:
        return positions.to(torch.int32)
    return positions


def _cut(pos: torch.Tensor, k: int, weight: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(keep mask ``pos >= k``, ``weight * mask``) of one parameter: ``prune``'s mask and values, bit for bit.

    On the CPU in one native pass (int32 positions, float32 weight), else through numpy (its compare is ~5x
    torch's bool-output one on this size, its product ~1.5x); elsewhere torch, the weight times the mask's
    bytes (a uint8 view: 3x faster than a bool operand).
    """
    cpu = pos.device.type == "cpu" and weight.device.type == "cpu"
    if cpu and pos.dtype == torch.int32 and weight.dtype == torch.float32 and kernels.available_now():
        keep, pruned = kernels.cut_weight(pos, k, weight)
        return keep.to(device), pruned
    if cpu and weight.dtype in _NUMPY_DTYPES:
        p = pos.numpy()
        keep = p >= p.dtype.type(min(max(k, -1), np.iinfo(p.dtype).max))
        return torch.from_numpy(keep).to(device), torch.from_numpy(weight.numpy() * keep)
    keep = (pos >= k).to(device)
    return keep, weight * keep.view(torch.uint8)


_IMMUTABLE = (int, float, str, bool, type(None), tuple, frozenset)
_MODULE_DICTS = ("_parameters", "_buffers", "_modules")


def _plain(module: nn.Module) -> bool:
    """True when ``module`` holds only tensors, submodules, no hooks, and otherwise immutable values."""
    if hasattr(type(module), "__deepcopy__"):
        return False
    for k, v in vars(module).items():
        if k in _MODULE_DICTS:
            continue
        if isinstance(v, (dict, set)):  # hook dicts (must be empty), the non-persistent buffer names
            if "hook" in k and len(v):
                return False
            continue
        if not isinstance(v, _IMMUTABLE) or (isinstance(v, tuple) and not all(isinstance(e, _IMMUTABLE) for e in v)):
            return False
    return True


class _CopyPlan(NamedTuple):
    """What ``_lean_copy`` needs of one module: its class, plain state, hook containers, tensors and children."""

    cls: type
    state: dict  # vars(module) without the parameter, buffer and module dicts
    fresh: tuple[str, ...]  # keys of the hook dicts and buffer-name sets: each copy gets its own
    params: dict
    buffers: dict
    children: dict


def _copy_plan(module: nn.Module) -> _CopyPlan:
    """The plan of a ``_plain`` module tree (made once per pruner)."""
    state = {k: v for k, v in vars(module).items() if k not in _MODULE_DICTS}
    fresh = tuple(k for k, v in state.items() if isinstance(v, (dict, set)))
    children = {k: None if m is None else _copy_plan(m) for k, m in module._modules.items()}
    return _CopyPlan(module.__class__, state, fresh, dict(module._parameters), dict(module._buffers), children)


def _lean_copy(plan: _CopyPlan, params: dict[int, nn.Parameter]) -> nn.Module:
    """What ``copy.deepcopy(module, params)`` gives for a ``_plain`` module tree, without deepcopy's generic walk."""
    new = plan.cls.__new__(plan.cls)
    state = dict(plan.state)
    for k in plan.fresh:
        state[k] = type(state[k])(state[k])  # fresh hook dicts and buffer-name set
    state["_parameters"] = {k: None if p is None else params[id(p)] if id(p) in params
                            else nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
                            for k, p in plan.params.items()}
    state["_buffers"] = {k: None if b is None else b.clone() for k, b in plan.buffers.items()}
    state["_modules"] = {k: None if c is None else _lean_copy(c, params) for k, c in plan.children.items()}
    new.__dict__.update(state)
    return new