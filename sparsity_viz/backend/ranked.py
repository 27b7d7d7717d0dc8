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
"""

from __future__ import annotations

import copy
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..masks import Masks, validate_masks
from ..models import MLP
from ..pruning.base import Ranking, ScoreStrategy, Strategy
from .dispatch import HEURISTIC_DENSITY, make_op
from .formats import CSR, INT16_MAX_COLS
from .ops import LinearOp, NativeCSROp, NativeOp, run_chain

SPARSE_DENSITY = HEURISTIC_DENSITY["large"]  # a layer at or below this density runs on the CSR kernel


def is_cut_of_scores(strategy: Strategy) -> bool:
    """True when the strategy's masks are a cut of one ranking of its scores (``ScoreStrategy.compute_masks``)."""
    return (isinstance(strategy, ScoreStrategy) and type(strategy).compute_masks is ScoreStrategy.compute_masks
            and strategy.kind == "one_shot" and strategy.ranking.__func__ is ScoreStrategy.ranking)


class RankedCSROp(NativeCSROp):
    """The native CSR operator over a CSR cut from a ``RankedLayer`` (no dense-to-CSR encoding)."""

    def __init__(self, bias: torch.Tensor | None, relu: bool, csr: CSR):
        # LinearOp counts nonzeros by scanning a dense weight; the CSR knows them: give it a zero-width one
        NativeOp.__init__(self, torch.empty(csr.shape[0], 0), bias, relu)
        self.in_features, self.nnz = csr.shape[1], csr.nnz
        self.csr, self.nbytes, self._panels = csr, csr.nbytes, None


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

    def counts(self, k: int) -> np.ndarray:
        """Survivors per row (out,) at a cut of ``k`` (entries at positions >= k survive): a search per row."""
        first_kept = torch.searchsorted(self.ascending, torch.full((self.shape[0], 1), k, dtype=self.ascending.dtype))
        return (self.shape[1] - first_kept.view(-1)).numpy()

    def csr(self, counts: np.ndarray) -> CSR:
        """The CSR of one cut of the ranking, given its survivors per row ``counts`` (out,) (a prefix of each row)."""
        rowptr = np.zeros(self.shape[0] + 1, dtype=np.int32)
        np.cumsum(counts, out=rowptr[1:])
        nnz = int(rowptr[-1])
        idx = np.arange(nnz, dtype=np.int64) + np.repeat(self.row_start - rowptr[:-1], counts)  # (nnz,) flat
        return CSR(torch.from_numpy(rowptr), torch.from_numpy(self.cols.take(idx)),
                   torch.from_numpy(self.vals.take(idx)), self.shape)


class RankedMLP(nn.Module):
    """A pruned MLP as a chain of backend operators (batch-major in, logits out); for evaluation only."""

    def __init__(self, ops: list[LinearOp]):
        super().__init__()
        self.ops = ops

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (N, ...) -> (N, classes)
        return run_chain(self.ops, feature_major(x)).t()

    def formats(self) -> list[str]:
        return [op.format for op in self.ops]


_TRANSPOSED: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # the last input and its transpose


def feature_major(x: torch.Tensor) -> torch.Tensor:
    """``x.flatten(1)`` as a contiguous ``(features, N)`` tensor; the last one is kept (the test set, step after step).

    Keyed by memory, shape, strides, dtype and version; the entry holds ``x`` itself, so its memory
    cannot be freed and reused by another tensor while the key is kept.
    """
    key = (x.data_ptr(), tuple(x.shape), tuple(x.stride()), x._version, x.dtype)
    hit = _TRANSPOSED.get(key)
    if hit is None:
        hit = (x, x.flatten(1).float().t().contiguous())  # (F, N)
        _TRANSPOSED.clear()
        _TRANSPOSED[key] = hit
    return hit[1]


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
        self.model = copy.deepcopy(model)
        self.strategy = strategy
        self.ranking = Ranking(strategy.scores(self.model, batch), strategy.scope, current)  # the one sort
        self.params = {n: self.model.get_parameter(n) for n in self.ranking.shapes}
        self.lean = all(_plain(m) for m in self.model.modules())  # copy by hand: deepcopy costs ~1 ms of Python
        positions = self.ranking.positions()
        self.layers: dict[str, RankedLayer] | None = None
        if isinstance(self.model, MLP) and self.model.activation_name == "relu":
            self.layers = {n: RankedLayer(p.detach(), positions[n]) for n, p in self.params.items()
                           if n.endswith(".weight") and p.dim() == 2 and p.device.type == "cpu"}

    def step(self, sparsity: float) -> LiveStep:
        """Masks (exactly ``prune``'s) and the pruned copy at ``sparsity``."""
        cut, pos = self.ranking.cut(sparsity), self.ranking.positions()
        masks = {n: (pos[n] >= cut[n]).to(self.ranking.devices[n]) for n in self.params}  # = ranking.masks(s)
        memo = {id(p): nn.Parameter(p.detach() * masks[n], requires_grad=p.requires_grad)
                for n, p in self.params.items()}
        model = _lean_copy(self.model, memo) if self.lean else copy.deepcopy(self.model, memo)
        return LiveStep(float(sparsity), masks, model, cut)

    def compiled(self, cut: dict[str, int], model: nn.Module) -> nn.Module:
        """``model`` (this pruner's copy cut at ``cut``) as a ``RankedMLP`` when a layer runs sparse, else ``model``."""
        if self.layers is None:
            return model
        linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        if len(linears) != len(self.layers) or any(f"{n}.weight" not in self.layers for n, _ in linears):
            return model  # biases pruned too, or an unexpected layout: evaluate as is
        ops: list[LinearOp] = []
        for i, (name, mod) in enumerate(linears):
            layer = self.layers[f"{name}.weight"]
            counts = layer.counts(cut[f"{name}.weight"])  # (out,)
            relu = i < len(linears) - 1
            if counts.sum() <= SPARSE_DENSITY * mod.weight.numel():
                ops.append(RankedCSROp(mod.bias, relu, layer.csr(counts)))
            else:
                ops.append(make_op("dense", mod.weight.detach(), mod.bias, relu))
        if all(op.format == "dense" for op in ops):
            return model
        return RankedMLP(ops)


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


def _lean_copy(module: nn.Module, params: dict[int, nn.Parameter]) -> nn.Module:
    """What ``copy.deepcopy(module, params)`` gives for a ``_plain`` module tree, without deepcopy's generic walk."""
    new = module.__class__.__new__(module.__class__)
    state = dict(vars(module))
    for k, v in state.items():
        if isinstance(v, (dict, set)) and k not in _MODULE_DICTS:
            state[k] = type(v)(v)  # fresh hook dicts and buffer-name set
    state["_parameters"] = {k: None if p is None else params.get(id(p)) if id(p) in params
                            else nn.Parameter(p.detach().clone(), requires_grad=p.requires_grad)
                            for k, p in module._parameters.items()}
    state["_buffers"] = {k: None if b is None else b.clone() for k, b in module._buffers.items()}
    state["_modules"] = {k: None if m is None else _lean_copy(m, params) for k, m in module._modules.items()}
    new.__dict__.update(state)
    return new
