"""Conditional computation, counted and timed: active parameters, FLOPs per input, wall-clock.

Counts are per input. An MoE's *active* parameters are the router's plus ``top_k``
experts' (the ones one input actually multiplies by); its *total* (the dense-equivalent
model holding every expert) is router + all N experts. FLOPs count one multiply-add as 2
FLOPs over the Linear layers (biases and activations are not counted), the usual
convention. ``time_forwards`` times callables interleaved (round-robin, one burst each per
round) and reports the median per round, the same method as the sparse backend's bench.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from ..models import MLP, count_parameters
from .model import MoEMLP, dense_gated_forward


def _linear_macs(sizes: tuple[int, ...]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def expert_parameters(model: MoEMLP) -> int:
    """Parameters (weights and biases) of one expert."""
    return count_parameters(model.experts[0])


def active_parameters(model: MoEMLP) -> int:
    """Parameters one input uses: the router plus ``top_k`` experts."""
    return count_parameters(model.router) + model.top_k * expert_parameters(model)


def total_parameters(model: MoEMLP) -> int:
    """Parameters of the whole MoE (the dense-equivalent total: router and every expert)."""
    return count_parameters(model)


def flops_per_input(model: MoEMLP, all_experts: bool = False) -> int:
    """Forward FLOPs (2 per multiply-add) of one input: router plus ``top_k`` experts (or all N)."""
    sizes = (model.in_features, *model.expert_hidden, model.num_classes)
    experts = model.num_experts if all_experts else model.top_k
    return 2 * (model.in_features * model.num_experts + experts * _linear_macs(sizes))


def mlp_flops_per_input(model: MLP) -> int:
    """Forward FLOPs of one input through a ``models.MLP``."""
    return 2 * _linear_macs((model.in_features, *model.hidden, model.num_classes))


def dense_counterpart(model: MoEMLP, seed: int = 0) -> MLP:
    """A dense MLP with about the MoE's active parameter count: the expert shape, hidden widths x ``top_k``.

    For top-1 it is one expert's shape (active = it + the small router); for top-k, widths
    scaled by k make its first layer (which dominates) k experts' first layers. Seeded without touching the
    process's random stream (the Experts page's Measure had reset it for every session's thread; an audit).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLP(model.in_features, tuple(h * model.top_k for h in model.expert_hidden), model.num_classes,
                   model.activation_name)


@dataclass(frozen=True)
class Timing:
    name: str
    batch: int
    median_ms: float  # median over rounds of the mean time of one call in a burst
    rounds: int


def time_forwards(fns: Mapping[str, Callable[[], torch.Tensor]], batch: int, rounds: int = 21,
                  burst: int = 5, warmup: int = 3) -> list[Timing]:
    """Median time per call of each function, interleaved round-robin (one burst each per round)."""
    if rounds < 1 or burst < 1:
        raise ValueError("rounds and burst must be >= 1.")
    samples: dict[str, list[float]] = {name: [] for name in fns}
    with torch.inference_mode():
        for fn in fns.values():
            for _ in range(warmup):
                fn()
        for _ in range(rounds):
            for name, fn in fns.items():
                start = time.perf_counter()
                for _ in range(burst):
                    fn()
                samples[name].append((time.perf_counter() - start) / burst * 1e3)
    return [Timing(name, batch, statistics.median(s), rounds) for name, s in samples.items()]


def compare_compute(model: MoEMLP, batches: tuple[int, ...] = (1, 32, 256), rounds: int = 21,
                    seed: int = 0) -> list[dict]:
    """Sparse-routed vs all-experts (dense-gated) vs a dense MLP of the same active size, per batch.

    Rows: ``batch, path, ms, ms_per_input, flops_per_input, parameters_used, vs_routed`` (time
    relative to the routed path). Inputs are seeded standard-normal. Threads are the caller's
    (the benchmark script sets one). Times in eval mode; the model's mode is restored.
    """
    was_training = model.training
    model.eval()
    try:
        return _compare(model, batches, rounds, seed)
    finally:
        model.train(was_training)


def _compare(model: MoEMLP, batches: tuple[int, ...], rounds: int, seed: int) -> list[dict]:
    dense = dense_counterpart(model, seed).eval()
    flops = {"routed (top-k only)": flops_per_input(model), "all experts (dense-gated)": flops_per_input(model, True),
             "dense MLP, same active size": mlp_flops_per_input(dense)}
    params = {"routed (top-k only)": active_parameters(model), "all experts (dense-gated)": total_parameters(model),
              "dense MLP, same active size": count_parameters(dense)}
    rows = []
    g = torch.Generator().manual_seed(seed)
    for b in batches:
        x = torch.randn(b, model.in_features, generator=g)
        fns: dict[str, Callable[[], torch.Tensor]] = {
            "routed (top-k only)": lambda: model(x),
            "all experts (dense-gated)": lambda: dense_gated_forward(model, x),
            "dense MLP, same active size": lambda: dense(x),
        }
        timings = {t.name: t for t in time_forwards(fns, b, rounds)}
        base = timings["routed (top-k only)"].median_ms
        for name, t in timings.items():
            rows.append({"batch": b, "path": name, "ms": t.median_ms, "ms_per_input": t.median_ms / b,
                         "flops_per_input": flops[name], "parameters_used": params[name],
                         "vs_routed": t.median_ms / base})
    return rows
