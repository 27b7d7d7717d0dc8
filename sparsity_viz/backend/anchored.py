"""Incremental evaluation of a live slider step: the first layer's pre-activations from the nearest anchor level.

The ranking of a ``LivePruner`` is fixed, so moving its cut from ``a`` to ``k`` prunes (``k > a``) or
restores (``k < a``) exactly the first layer's entries at positions in ``[min, max)``: per row, a
contiguous run of the row sorted by rank (``RankedLayer.between``). For an input ``X`` (the test set,
step after step)

    Z1(k) = X W1(k)^T + b1 = Z1(a) -/+ X W1[a, k)^T        (a small CSR times X)

``FirstLayerAnchors`` keeps ``Z1`` at ``ANCHORS + 1`` cuts, one every 2.5 % of the first layer's entries,
all built the first time a step needs one (when they fit in half the store): from a built neighbour one
interval away by one correction
(2.5 % of the layer's entries, with the native kernel), or from scratch (dense matmul, or the CSR
kernel at <= 30 % density). An anchor is at most ``MAX_DEPTH`` corrections from one computed from
scratch, and a level one more (at most 1.25 % of the entries) from its anchor, so rounding cannot pile
up: first-layer pre-activations stay within 2e-5 of a float64 product (``tests/backend/test_anchored.py``).
The anchors live in one store shared by every pruner (``STORE``, least recently used dropped first,
bounded in bytes, thread-safe) and only for an input seen before (a one-off input is evaluated the plain way).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np
import torch

from . import kernels
from .dispatch import HEURISTIC_DENSITY
from .formats import CSR, quiet_sparse
from .ops import EMPTY_F32, EMPTY_I32, NativeCSROp, NativeOp

SPARSE_DENSITY = HEURISTIC_DENSITY["large"]  # the live path's rule: a layer at or below this density runs on CSR
ANCHORS = 40  # anchor intervals over the first layer's entries (an anchor every 2.5 %)
ANCHOR_BYTES = 128 << 20  # the shared store: two strategies' anchors on LeNet-300-100 x 1,000 digits (50 MB each)
SEEN_INPUTS = 8  # input keys each pruner remembers (a second look at one builds its anchors)
MAX_DEPTH = 4  # corrections between an anchor built from a neighbour and the one computed from scratch

_TRANSPOSED: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # the last input and its transpose


def input_key(x: torch.Tensor) -> tuple:
    """The identity of an input's values: memory, shape, strides, version, dtype (a cache holding it holds ``x``)."""
    return x.data_ptr(), tuple(x.shape), tuple(x.stride()), x._version, x.dtype


def feature_major(x: torch.Tensor) -> torch.Tensor:
    """``x.flatten(1)`` as a contiguous ``(features, N)`` tensor; the last one is kept (the test set, step after step).

    Keyed by ``input_key``; the entry holds ``x`` itself, so its memory cannot be freed and reused
    by another tensor while the key is kept.
    """
    key = input_key(x)
    hit = _TRANSPOSED.get(key)
    if hit is None:
        hit = (x, x.flatten(1).float().t().contiguous())  # (F, N)
        _TRANSPOSED.clear()
        _TRANSPOSED[key] = hit
    return hit[1]


NO_PANELS = (EMPTY_I32, EMPTY_I32, EMPTY_F32, 0)


class RankedCSROp(NativeCSROp):
    """The native CSR operator over a CSR cut from a ``RankedLayer`` (no dense-to-CSR encoding).

    ``panels=False``: no column panels (the plain CSR rows; ``panels=True`` regroups the CSR on first use,
    ~5 ns per nonzero, which at batch 1,000 pays back within the same call).
    """

    def __init__(self, bias: torch.Tensor | None, relu: bool, csr: CSR, panels: bool = True):
        # LinearOp counts nonzeros by scanning a dense weight; the CSR knows them: give it a zero-width one
        NativeOp.__init__(self, torch.empty(csr.shape[0], 0), bias, relu)
        self.in_features, self.nnz = csr.shape[1], csr.nnz
        self.csr, self.nbytes, self._panels = csr, csr.nbytes, None if panels else NO_PANELS


class AnchorStore:
    """Tensors by key, least recently used dropped first once their bytes pass ``budget`` (thread-safe).

    ``process_shared``: one store serves every pruner and session of the process, so a session's cache
    does not count it as that session's memory (``app_state.cache.nbytes``).

    Each entry also holds the input it was computed from (``keep``), so the input's memory cannot be
    reused by another tensor while its ``input_key`` is in use here. The store never hands out an
    entry for writing: callers get the stored tensor and must not modify it.
    """

    process_shared = True

    def __init__(self, budget: int = ANCHOR_BYTES):
        self.budget = int(budget)
        self.nbytes = 0
        self._entries: OrderedDict[tuple, tuple[torch.Tensor, object]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> torch.Tensor | None:
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            self._entries.move_to_end(key)
            return hit[0]

    def put(self, key: tuple, value: torch.Tensor, keep: object) -> None:
        size = value.numel() * value.element_size()
        if size > self.budget:
            return  # never kept: the caller recomputes it when needed
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old[0].numel() * old[0].element_size()
            self._entries[key] = (value, keep)
            self.nbytes += size
            while self.nbytes > self.budget:
                _, (dropped, _) = self._entries.popitem(last=False)
                self.nbytes -= dropped.numel() * dropped.element_size()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.nbytes = 0


STORE = AnchorStore()


class FirstLayerAnchors:
    """One pruner's first Linear layer: ``Z1 = X W1(k)^T + b1`` at any cut ``k`` from the nearest anchor.

    Args:
        layer: the layer's ``RankedLayer`` (rows sorted by rank; ``span`` gives a correction's CSR).
        weight: its dense weight (out, in), never modified; bias: its bias (out,) or None (not ranked).
        positions: each entry's place in the ranking (out, in) (``Ranking.positions()``).
    """

    process_shared = True  # one per pruner, which every session at these weights shares (app_state.cache.nbytes)

    def __init__(self, layer, weight: torch.Tensor, bias: torch.Tensor | None, positions: torch.Tensor,
                 store: AnchorStore = STORE):
        self.layer, self.store = layer, store
        self.weight = weight.detach().float()  # (out, in)
        self.bias = None if bias is None else bias.detach().float().contiguous()  # (out,)
        self.positions = positions  # (out, in)
        self.sorted = np.sort(positions.flatten().numpy().astype(np.int64))  # (n,) its positions, ascending
        n = self.sorted.size
        self.pruned = [round(j * n / ANCHORS) for j in range(ANCHORS + 1)]  # entries pruned at anchor j
        self.cuts = [int(self.sorted[m]) if m < n else int(self.sorted[-1]) + 1 for m in self.pruned]
        self._anchor_counts: list[np.ndarray | None] = [None] * (ANCHORS + 1)
        self.token = object()  # this pruner's part of the shared store
        self._seen: OrderedDict[tuple, None] = OrderedDict()
        self._depth: OrderedDict[tuple, dict[int, int]] = OrderedDict()  # per input: anchor -> corrections deep
        self._lock = threading.Lock()

    def seen(self, key: tuple) -> bool:
        """True from the second time an input with this ``input_key`` is evaluated (the first is remembered)."""
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                return True
            self._seen[key] = None
            while len(self._seen) > SEEN_INPUTS:
                self._seen.popitem(last=False)
            return False

    def nearest(self, k: int) -> int:
        """The anchor whose cut prunes the closest number of this layer's entries to cut ``k``."""
        m = int(np.searchsorted(self.sorted, k))  # entries of this layer pruned at cut k
        return round(m * ANCHORS / max(1, self.sorted.size))

    def features(self, x: torch.Tensor, key: tuple) -> torch.Tensor:
        """``x`` feature-major (F, N), kept in the store with the anchors."""
        hit = self.store.get((self.token, key, "x"))
        if hit is None:
            hit = x.flatten(1).float().t().contiguous()  # (F, N)
            self.store.put((self.token, key, "x"), hit, x)
        return hit

    def anchor(self, j: int, x: torch.Tensor, key: tuple, xf: torch.Tensor) -> torch.Tensor:
        """``Z1`` (out, N) at anchor ``j``, built the first time (read-only: never modify it).

        The first anchor an input needs brings every other one with it, built outward from ``j`` (each from a
        neighbour, a fresh one from scratch every ``MAX_DEPTH + 1``), when all of them fit in half the store:
        one step of 60-130 ms on LeNet-300-100 x 1,000 digits (``benchmarks/live_path.py``, "second move")
        instead of ~0.45 ms more on each of 40 later steps. Later misses (an anchor the store dropped) rebuild
        only that anchor.
        """
        hit = self.store.get((self.token, key, j))
        if hit is None:
            with self._lock:
                first = key not in self._depth
            every = first and (ANCHORS + 1) * xf.shape[1] * self.weight.shape[0] * 4 <= self.store.budget // 2
            for i in sorted(range(ANCHORS + 1), key=lambda i: (abs(i - j), i)) if every else [j]:  # j, j - 1, j + 1..
                z = self._add(i, x, key, xf)
                if i == j:
                    hit = z
        return hit

    def _add(self, j: int, x: torch.Tensor, key: tuple, xf: torch.Tensor) -> torch.Tensor:
        """Build anchor ``j`` of input ``key``, put it in the store and record its depth."""
        z, depth = self._build(j, key, xf)
        self.store.put((self.token, key, j), z, x)
        with self._lock:
            self._depth.setdefault(key, {})[j] = depth
            self._depth.move_to_end(key)
            while len(self._depth) > SEEN_INPUTS:
                self._depth.popitem(last=False)
        return z

    def _build(self, j: int, key: tuple, xf: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Anchor ``j`` and its depth: a neighbour's plus one correction when one is built and shallow enough."""
        if kernels.available_now():
            with self._lock:
                depths = dict(self._depth.get(key, {}))
            for i in sorted((i for i in (j - 1, j + 1) if depths.get(i, MAX_DEPTH) < MAX_DEPTH), key=depths.get):
                z = self.store.get((self.token, key, i))
                if z is not None:
                    delta = self._correction(self.cuts[i], self._counts(i), self.cuts[j], self._counts(j))
                    return kernels.csr_onto(z, delta, xf, threads=torch.get_num_threads()), depths[i] + 1
        return self._exact(self.cuts[j], xf), 0

    def _exact(self, k: int, xf: torch.Tensor) -> torch.Tensor:
        """``W1(k) X + b1`` (out, N) from scratch: the CSR kernel when sparse enough, else a dense matmul."""
        counts = self.layer.counts(k)  # (out,)
        if counts.sum() <= SPARSE_DENSITY * self.weight.numel():
            z = RankedCSROp(self.bias, False, self.layer.csr(counts)).forward(xf)
        else:
            if self.positions.dtype == torch.int32 and kernels.available_now():
                _, w = kernels.cut_weight(self.positions, k, self.weight)  # (out, in), the pruned weight exactly
            else:
                w = self.weight * (self.positions >= k)
            z = torch.mm(w, xf) if self.bias is None else torch.addmm(self.bias.unsqueeze(1), w, xf)
        return z.contiguous()

    def _correction(self, a: int, at_a: np.ndarray, k: int, at_k: np.ndarray) -> CSR:
        """What moving the cut from ``a`` to ``k`` changes, signed: the entries it prunes (``k > a``) negated, the
        ones it restores (``k < a``) as they are; empty when ``k == a``. ``at_a``, ``at_k``: survivors per row at
        each cut (``RankedLayer.counts``), so ``RankedLayer.between`` without its two searches."""
        return self.layer.span(at_a, at_k, sign=-1.0) if k > a else self.layer.span(at_k, at_a)

    def _counts(self, j: int) -> np.ndarray:
        """Survivors per row (out,) at anchor ``j``'s cut (``RankedLayer.counts``), computed once per anchor."""
        hit = self._anchor_counts[j]
        if hit is None:
            hit = self._anchor_counts[j] = self.layer.counts(self.cuts[j])
        return hit

    def depth(self, j: int, x: torch.Tensor) -> int | None:
        """How many corrections anchor ``j`` of input ``x`` is from one computed from scratch (None: not built)."""
        with self._lock:
            return self._depth.get(input_key(x), {}).get(j)

    def preact(self, k: int, x: torch.Tensor, key: tuple | None = None, relu: bool = False) -> torch.Tensor:
        """``Z1`` (out, N) at cut ``k`` for the input ``x`` (N, ...): nearest anchor -/+ a small CSR times X.

        ``relu``: ``relu(Z1)`` instead. Returns a new tensor (the caller may modify it in place).
        """
        key = input_key(x) if key is None else key
        xf = self.features(x, key)  # (F, N)
        j = self.nearest(k)
        a, z = self.cuts[j], self.anchor(j, x, key, xf)
        delta = self._correction(a, self._counts(j), k, self.layer.counts(k))  # one search per step
        if kernels.available_now():  # one pass: relu?(anchor + correction @ X), into a new tensor
            return kernels.csr_onto(z, delta, xf, relu=relu, threads=torch.get_num_threads())
        out = z.clone()  # (out, N)
        if delta.nnz:
            with quiet_sparse():
                w = torch.sparse_csr_tensor(delta.rowptr, delta.col.to(torch.int32), delta.val, delta.shape,
                                            check_invariants=False)
                out.addmm_(w, xf)
        return out.relu_() if relu else out
