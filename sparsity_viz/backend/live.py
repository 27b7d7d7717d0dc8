"""The live path: which model to evaluate for a pruned model, without ever waiting for a build.

An interactive caller (the app's accuracy after every slider move, the Curves sweep)
evaluates a pruned MLP through the backend's compiled sparse model when the
``policy="heuristic"`` plan puts at least one layer on a sparse format; otherwise it
evaluates the model as is. The compiled model gives the dense model's predictions
(``tests/app/test_live_path.py``). While the native kernel is not built yet,
``fast_plan`` starts the build on a background thread and answers "dense" at once.
"""

from __future__ import annotations

from torch import nn

from ..models import MLP, prunable_layers
from . import kernels
from .compiled import compile_model
from .dispatch import HEURISTIC_DENSITY

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
    """``fast_plan(model)`` when there is one, else ``model``; a backend failure falls back to ``model``.

    Fits ``experiments.sweep(evaluator=...)``.
    """
    try:
        return fast_plan(model) or model
    except Exception:  # noqa: BLE001 - a backend failure must never cost an evaluation: run densely
        return model
