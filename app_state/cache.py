"""The app's one cache mechanism: an LRU cache bounded by entries AND by estimated bytes.

``BoundedCache`` is ``cachetools.LRUCache`` measuring each value with ``nbytes`` (tensors,
models, DataFrames, arrays, bytes and containers of them), plus an entry limit and a
lock. Every cache of the app is one ``CacheSpec`` in ``SPECS``:

* per-session caches live in ``st.session_state`` under the spec's key (``session_cache``);
* shared caches are process-wide (``shared_cache``, one ``st.cache_resource`` each) and
  read-only: callers hand out copies, never the stored object.

A value larger than its cache's byte bound is returned but not stored. ``memo_by_object``
entries hold their object weakly: a session's cache never keeps an old model alive, and
an entry leaves as soon as its object is gone.
"""

from __future__ import annotations

import collections
import sys
import threading
import types
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import cachetools
import numpy as np
import pandas as pd
import streamlit as st
import torch
from torch import nn

from sparsity_viz.session import model_key

from . import keys

MiB = 1 << 20
_MAX_DEPTH = 12  # containers nested deeper than this count as their shallow size


def nbytes(value: Any) -> int:
    """An estimate of the memory ``value`` holds: tensor storage, DataFrame memory, and containers of them.

    Objects reached twice count once; modules, classes and functions count nothing, and neither do objects
    whose class sets ``process_shared = True`` (the live slider's anchor store: every session's evaluation
    model refers to it, none owns it).
    """
    return _nbytes(value, {}, 0)


def _nbytes(value: Any, seen: dict[int, Any], depth: int) -> int:
    # ``seen`` keeps what it saw alive, so a temporary's recycled id never hides another object
    if id(value) in seen or isinstance(value, (types.ModuleType, type, types.FunctionType, types.MethodType)):
        return 0
    if getattr(type(value), "process_shared", False):  # one per process, shared by every session: no one's budget
        return 0
    seen[id(value)] = value
    if isinstance(value, torch.Tensor):
        if value.layout == torch.sparse_coo:
            return sum(_nbytes(t, seen, depth + 1) for t in (value._indices(), value._values()))
        if value.layout in (torch.sparse_csr, torch.sparse_bsr):
            return sum(_nbytes(t, seen, depth + 1) for t in (value.crow_indices(), value.col_indices(), value.values()))
        if value.layout in (torch.sparse_csc, torch.sparse_bsc):
            return sum(_nbytes(t, seen, depth + 1) for t in (value.ccol_indices(), value.row_indices(), value.values()))
        return value.element_size() * value.nelement()
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (pd.DataFrame, pd.Series)):
        usage = value.memory_usage(deep=True, index=True)
        return int(usage.sum() if isinstance(usage, pd.Series) else usage) + _nbytes(dict(value.attrs), seen, depth + 1)
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return sys.getsizeof(value)
    if depth >= _MAX_DEPTH:
        return sys.getsizeof(value)
    if isinstance(value, dict):
        return sys.getsizeof(value) + sum(_nbytes(k, seen, depth + 1) + _nbytes(v, seen, depth + 1)
                                          for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return sys.getsizeof(value) + sum(_nbytes(v, seen, depth + 1) for v in value)
    state = getattr(value, "__dict__", None)
    if state is not None:  # nn.Module (its _parameters / _buffers / _modules), dataclasses, results
        return sys.getsizeof(value) + _nbytes(state, seen, depth + 1)
    slots = getattr(type(value), "__slots__", ())
    if isinstance(slots, str):
        slots = (slots,)
    if slots:
        return sys.getsizeof(value) + sum(_nbytes(getattr(value, s, None), seen, depth + 1) for s in slots)
    return sys.getsizeof(value)


class BoundedCache(cachetools.LRUCache):
    """Least-recently-used entries leave first once either ``max_entries`` or ``max_bytes`` would be exceeded."""

    def __init__(self, max_entries: int, max_bytes: int):
        super().__init__(maxsize=max_bytes, getsizeof=nbytes)
        self.max_entries = max_entries
        self.lock = threading.RLock()

    def __getitem__(self, key: Hashable) -> Any:
        with self.lock:  # a hit reorders the LRU list: sessions of a shared cache run in parallel threads
            return super().__getitem__(key)

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self.lock:  # ``key in self`` then ``self[key]``, atomically
            return super().get(key, default)

    def __delitem__(self, key: Hashable) -> None:
        with self.lock:
            super().__delitem__(key)

    def __setitem__(self, key: Hashable, value: Any) -> None:
        with self.lock:
            try:
                if key not in self:
                    while len(self) >= self.max_entries:
                        self.popitem()
                super().__setitem__(key, value)
            except ValueError:  # larger than the whole byte bound: computed, not kept
                self.pop(key, None)

    @property
    def max_bytes(self) -> int:
        return int(self.maxsize)

    @property
    def nbytes(self) -> int:
        """Estimated bytes held (the sum of the stored values' ``nbytes``)."""
        return int(self.currsize)

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """The stored value of ``key``, else ``compute()`` (stored when it fits)."""
        with self.lock:
            if key in self:
                return self[key]
        value = compute()
        self[key] = value
        return value


@dataclass(frozen=True)
class CacheSpec:
    """One cache: its name (the session key for per-session caches) and its bounds."""

    name: str
    max_entries: int
    max_bytes: int
    shared: bool = False  # process-wide and read-only, else one per session


# Per session: results of this user's models (keyed by model identity or fingerprint + config).
ACCURACY = CacheSpec(keys.ACC_CACHE, max_entries=32, max_bytes=64 * MiB)
FAST_MODELS = CacheSpec(keys.FAST, max_entries=8, max_bytes=128 * MiB)
SPEED = CacheSpec(keys.SPEED, max_entries=8, max_bytes=32 * MiB)
SPARSE_CKPT = CacheSpec(keys.SPARSE_CKPT, max_entries=2, max_bytes=64 * MiB)
LAB = CacheSpec(keys.LAB, max_entries=24, max_bytes=128 * MiB)
QUANT = CacheSpec(keys.QUANT, max_entries=24, max_bytes=128 * MiB)
QUANT_GRID = CacheSpec(keys.QUANT_GRID, max_entries=16, max_bytes=8 * MiB)
ACTIVATIONS = CacheSpec(keys.ACTIVATIONS, max_entries=48, max_bytes=64 * MiB)
EXPERTS = CacheSpec(keys.EXPERTS, max_entries=16, max_bytes=96 * MiB)
SENSITIVITY = CacheSpec(keys.SENSITIVITY, max_entries=16, max_bytes=8 * MiB)
# Shared by every session (keyed by the dense weights' fingerprint): read-only, handed out as copies.
PRUNE_MASKS = CacheSpec("prune_masks", max_entries=512, max_bytes=128 * MiB, shared=True)
CURVES = CacheSpec("curves", max_entries=64, max_bytes=64 * MiB, shared=True)
PNG = CacheSpec("png", max_entries=64, max_bytes=64 * MiB, shared=True)
# Keyed by a model's content (``content_key``): the same weights in 30 sessions are evaluated / drawn once.
SHARED_ACCURACY = CacheSpec("shared_accuracy", max_entries=4096, max_bytes=4 * MiB, shared=True)
UNITS = CacheSpec("units", max_entries=32, max_bytes=96 * MiB, shared=True)
REPORTS = CacheSpec("reports", max_entries=256, max_bytes=16 * MiB, shared=True)
FIGURES = CacheSpec("shared_figures", max_entries=256, max_bytes=64 * MiB, shared=True)  # drawn once, read-only
LESSON_REVEALS = CacheSpec("lesson_reveals", max_entries=64, max_bytes=16 * MiB, shared=True)  # same for every student
REBUILT = CacheSpec("rebuilt_models", max_entries=16, max_bytes=128 * MiB, shared=True)  # models a link's recipe made

SPECS: dict[str, CacheSpec] = {s.name: s for s in (ACCURACY, FAST_MODELS, SPEED, SPARSE_CKPT, LAB, QUANT, QUANT_GRID,
                                                    ACTIVATIONS, EXPERTS, SENSITIVITY, PRUNE_MASKS, CURVES, PNG, REBUILT,
                                                    SHARED_ACCURACY, UNITS, LESSON_REVEALS, REPORTS,
                                                    FIGURES)}


def session_cache(spec: CacheSpec) -> BoundedCache:
    """This session's cache of ``spec`` (created on first use)."""
    if spec.shared:
        raise ValueError(f"{spec.name} is shared: use shared_cache")
    cache = st.session_state.get(spec.name)
    if not isinstance(cache, BoundedCache):
        cache = BoundedCache(spec.max_entries, spec.max_bytes)
        st.session_state[spec.name] = cache
    return cache


def shared_cache(spec: CacheSpec) -> BoundedCache:
    """The process-wide cache of ``spec``; never hand out its values themselves, only copies."""
    if not spec.shared:
        raise ValueError(f"{spec.name} is per session: use session_cache")
    return _shared(spec.name, spec.max_entries, spec.max_bytes)


@st.cache_resource(show_spinner=False)
def _shared(name: str, max_entries: int, max_bytes: int) -> BoundedCache:
    return BoundedCache(max_entries, max_bytes)


class ObjectEntry:
    """A cache entry ``(obj, value)`` holding ``obj`` weakly (unpacks as the pair while ``obj`` lives)."""

    __slots__ = ("ref", "value", "__weakref__")

    def __init__(self, obj: Any, value: Any):
        self.ref, self.value = weakref.ref(obj), value

    def __iter__(self):
        return iter((self.ref(), self.value))

    def __getitem__(self, i: int) -> Any:
        return (self.ref(), self.value)[i]


def remember(cache: BoundedCache, key: Hashable, obj: Any, value: Any) -> None:
    """Store ``value`` for the live object ``obj`` under ``key``; the entry leaves when ``obj`` is collected.

    Objects that cannot be weakly referenced are held strongly (as ``(obj, value)``), bounded by the cache.
    """
    try:
        entry: Any = ObjectEntry(obj, value)
    except TypeError:
        cache[key] = (obj, value)
        return
    cache[key] = entry
    weakref.finalize(obj, _DEAD.append, (weakref.ref(cache), key, weakref.ref(entry)))


# entries whose object was collected; removed at the next remember / recall (a finalizer may run in the middle
# of a cache operation, so it only queues)
_DEAD: collections.deque = collections.deque()


def _drop_dead() -> None:
    while _DEAD:
        try:
            cache_ref, key, entry_ref = _DEAD.popleft()
        except IndexError:
            return
        cache, entry = cache_ref(), entry_ref()
        if cache is not None and entry is not None:
            with cache.lock:
                if cache.get(key) is entry:
                    del cache[key]


def recall(cache: BoundedCache, key: Hashable, obj: Any) -> tuple[bool, Any]:
    """``(True, value)`` when ``cache`` holds a value for this very object under ``key``, else ``(False, None)``."""
    _drop_dead()
    hit = cache.get(key)
    if hit is not None and hit[0] is obj:
        return True, hit[1]
    return False, None


def memo_by_object(spec: CacheSpec, obj: Any, compute: Callable[[], Any], extra: Hashable = None) -> Any:
    """``compute()`` memoised per live object ``obj`` (and ``extra``) in this session's ``spec`` cache.

    The entry refers to ``obj`` (weakly), so a recycled ``id`` never returns another object's value and
    an old model is not kept alive by its cached results.
    """
    cache = session_cache(spec)
    key = id(obj) if extra is None else (id(obj), extra)
    found, value = recall(cache, key, obj)
    if found:
        return value
    value = compute()
    remember(cache, key, obj, value)
    return value


_CONTENT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> fingerprint
_CONTENT_LOCK = threading.Lock()


def content_key(model: nn.Module) -> str:
    """``session.model_key`` of ``model`` (its weights and architecture: equal weights under another activation are
    another model), computed once per model object.

    Models in the app are never changed in place (every change makes a new model), so equal keys
    mean equal weights, whichever session made them: the key of shared, content-addressed caches.
    """
    with _CONTENT_LOCK:
        hit = _CONTENT.get(model)
    if hit is None:
        hit = model_key(model)
        with _CONTENT_LOCK:
            _CONTENT[model] = hit
    return hit
