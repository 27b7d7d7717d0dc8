"""The live path: which model to evaluate for a pruned model, without ever waiting for a build.

An interactive caller (the app's accuracy after every slider move, the Curves sweep)
evaluates a pruned MLP through the backend's compiled sparse model when the
``policy="heuristic"`` plan puts at least one layer on a sparse format; otherwise it
evaluates the model as is. The compiled model gives the dense model's predictions
(``tests/app/test_live_path.py``). While the native kernel is not built yet,
``fast_plan`` starts the build on a background thread and answers "dense" at once.

A slider step (``live_step``) does not prune from scratch: ``live_pruner`` keeps one
``ranked.LivePruner`` per model weights, strategy, scope and seed (the strategy's scores
sorted once), and each new level is a cut of it; the evaluation model of a step's pruned
copy is read off the same sorted layers (``evaluation_model`` finds it): the first layer
incrementally from anchor levels (``anchored.py``), the later layers cut from the ranking;
measured by ``benchmarks/live_path.py``.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..masks import Masks, masks_to_bytes
from ..models import MLP, prunable_layers
from ..pruning import Batch, Strategy, get_one_shot_strategy
from . import kernels
from .compiled import compile_model
from .dispatch import HEURISTIC_DENSITY
from .ranked import LivePruner, LiveStep, is_cut_of_scores

EVAL_BATCH = 256  # evaluation batch the plan is made for (evaluate() uses 2048-sample chunks)
ACTIVATIONS = ("relu", "tanh")  # the activations the compiled MLP chain implements

_requested = False  # a caller asked for the native kernel while it was not built yet (this process)


def kernel_pending() -> bool:
    """True while the native kernel is being built (the build is started here if needed).

    Never blocks: when the kernel is already built, disabled or failed, this is False.
    """
    global _requested
    if kernels.ready():
        return False
    _requested = True
    kernels.build_in_background()
    return True


def kernel_building() -> bool:
    """True while a build that ``kernel_pending`` started has not finished (never starts one)."""
    return _requested and not kernels.ready()


def fast_plan(model: nn.Module, batch_size: int = EVAL_BATCH) -> nn.Module | None:
    """The compiled sparse model for evaluating ``model``, or None when dense is as fast.

    Uses the backend's ``policy="heuristic"`` plan (density thresholds measured by
    ``benchmarks/sparse_crossover.py``: native CSR from about 70 % sparsity at batch >= 16),
    so it costs a few ms and no timing runs. Only MLPs on the CPU: the heuristic is
    calibrated on Linear layers (it would send LeNet-5's convs to im2col CSR, measured
    2x slower). Returns None while the native kernel is still being built.
    """
    if not isinstance(model, MLP) or model.activation_name not in ACTIVATIONS:
        return None
    if any(p.device.type != "cpu" for p in model.parameters()):
        return None
    layers = prunable_layers(model)
    limit = HEURISTIC_DENSITY["large"]
    if not layers or not any(float((m.weight != 0).float().mean()) <= limit for _, m in layers):
        return None  # nothing sparse enough: skip even the compile
    if kernel_pending():  # never make a slider move wait for the first C++ build (~30 s)
        return None
    compiled = compile_model(model, batch_size=batch_size, device="cpu", policy="heuristic")
    if all(p.format.startswith("dense") for p in compiled.plans):
        return None
    return compiled


def evaluation_model(model: nn.Module) -> nn.Module:
    """What to evaluate ``model`` with; a backend failure falls back to ``model``.

    A pruned copy made by ``live_step`` gets its step's evaluation model (read off the sorted
    layers, no compile; for a ReLU MLP an ``AnchoredMLP`` at every level), any other model
    ``fast_plan(model)`` when there is one.
    Fits ``experiments.sweep(evaluator=...)``.
    """
    try:
        step = _STEPS.get(model)
        if step is None or weights_token(model) != step.token:  # not a step's copy, or edited since
            return fast_plan(model) or model
        if kernel_pending() or not kernels.available_now():  # the step's models run the native kernels only
            return model  # (disabled or failed: the anchored model raised later, in its forward; an audit)
        if step.fast is _UNSET:
            fast = step.pruner.compiled(step.cut, model)
            step.fast = None if fast is model else fast  # never a reference back to the key
        return step.fast or model
    except Exception:  # noqa: BLE001 - a backend failure must never cost an evaluation: run densely
        return model


MAX_PRUNERS = 8  # LivePruners kept (LeNet-300-100: ~9 MB each, anchors apart: anchored.STORE); LRU dropped first
_PRUNERS: OrderedDict[tuple, tuple[weakref.ref | None, LivePruner]] = OrderedDict()
_UNSET = object()


@dataclass
class _Registered:
    """What ``evaluation_model`` needs for a ``live_step`` copy (no reference to the copy itself)."""

    cut: dict[str, int]
    pruner: LivePruner
    token: tuple  # weights_token of the copy when it was made: its CSR is read off the pruner's dense values
    fast: object = _UNSET  # the RankedMLP once built; None: evaluate the copy as is


_STEPS: weakref.WeakKeyDictionary[nn.Module, _Registered] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def weights_token(model: nn.Module) -> tuple:
    """The identity and version of ``model``'s weights: changes when a parameter is replaced or edited in place.

    Walks the module tree's parameter dicts directly (``model.parameters()`` costs ~0.1 ms, run 3x a step).
    """
    found, stack = [], [model]
    while stack:
        m = stack.pop()
        found.extend((p.data_ptr(), p._version) for p in m._parameters.values() if p is not None)
        stack.extend(c for c in reversed(m._modules.values()) if c is not None)
    return id(model), tuple(found)


def _masks_token(masks: Masks | None) -> str | None:
    return None if masks is None else hashlib.sha1(masks_to_bytes(masks)).hexdigest()


def live_pruner(model: nn.Module, strategy: str | Strategy, *, scope: str | None = None, seed: int = 0,
                batch: Batch | Callable[[], Batch] | None = None, current: Masks | None = None,
                key: object = None) -> LivePruner | None:
    """The cached ``LivePruner`` of ``model`` and ``strategy`` (built, i.e. sorted, on the first call).

    Kept per ``key`` (default: ``weights_token(model)``, checked against the model object),
    strategy, scope, seed (where the masks depend on it) and ``current``. ``batch`` may be a
    callable, called only when a pruner is built. None when the strategy's masks are not a
    cut of one ranking (prune those with ``prune``).
    """
    strat = (get_one_shot_strategy(strategy, "a live slider", scope=scope, seed=seed) if isinstance(strategy, str)
             else strategy)
    if not is_cut_of_scores(strat):
        return None
    ident = weights_token(model) if key is None else key
    k = (ident, strat.name, strat.scope, strat.seed if strat.seeded else None, strat.include_bias,
         _masks_token(current))
    with _LOCK:
        hit = _PRUNERS.get(k)
        if hit is not None and (hit[0] is None or hit[0]() is model):
            _PRUNERS.move_to_end(k)
            return hit[1]
    pruner = LivePruner(model, strat, batch() if callable(batch) else batch, current)
    with _LOCK:
        _PRUNERS[k] = (weakref.ref(model) if key is None else None, pruner)
        while len(_PRUNERS) > MAX_PRUNERS:
            _PRUNERS.popitem(last=False)
    return pruner


def live_step(model: nn.Module, strategy: str | Strategy, sparsity: float, **kw) -> LiveStep | None:
    """One slider position: ``live_pruner(model, strategy, **kw).step(sparsity)``, or None (see there).

    The step's pruned copy is registered, so ``evaluation_model(step.model)`` is its fast evaluation model.
    """
    pruner = live_pruner(model, strategy, **kw)
    if pruner is None:
        return None
    step = pruner.step(sparsity)
    _STEPS[step.model] = _Registered(step.cut, pruner, weights_token(step.model))
    return step
