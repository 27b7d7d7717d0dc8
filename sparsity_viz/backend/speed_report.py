"""One speed report of a pruned model: every format timed per batch size, a plan per batch, a crossover sweep.

``measure_speed`` is what the app's *Speed & memory* page runs when **Measure** is
pressed; it reports progress through ``progress(fraction, text)``. ``measurement_key``
names one report (the model's weights, its masks and every setting), so a caller can
keep reports and show one again without measuring.

The int8 formats (``int8.INT8_FORMATS``: int8 sparse kernel, dense int8 weight-only and
dynamic) are timed in the same interleaved rounds as the others (``bench.benchmark_model``) and
get the same ratio columns and intervals; while the int8 kernel is not built yet its row is
``skipped`` and the build starts in the background (a page never waits for it).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..masks import Masks, masks_to_bytes
from ..session import model_key
from .bench import REFERENCE_FORMATS, STABLE_IQR, benchmark_model, crossovers, speedup_curves
from .compiled import compile_model

CURVE_SPARSITIES = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)  # the crossover sweep of one random layer
CPU_CURVE_FORMATS = ("dense", "csr-torch", "csr-native")
CUDA_CURVE_FORMATS = ("dense-cuda", "csr-cuda")

Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class SpeedSettings:
    """What to measure: batch sizes, formats (``dense`` is the reference), rounds, device, the curve's layer.

    Each batch size's formats are timed interleaved for at least ``repeats`` rounds, and on until
    every ratio to dense has its interquartile range within ``±rel_iqr`` of its median or
    ``time_cap_s`` has passed (``bench.interleaved_ratios``); each crossover point gets a third of the cap.
    """

    batches: tuple[int, ...]
    formats: tuple[str, ...]
    repeats: int = 10
    device: str = "cpu"
    layer: str = ""  # the Linear layer whose shape the crossover sweep uses ("": no sweep, e.g. a conv-only model)
    time_cap_s: float = 5.0  # per batch size
    rel_iqr: float = STABLE_IQR


@dataclass(frozen=True)
class SpeedReport:
    """The measurements of one ``measure_speed`` call.

    Attributes:
        bench: ``benchmark_model`` rows for every batch size.
        plans: per batch size, ``{"table", "explain", "notices"}`` of the measured plan.
        curves: ``speedup_curves`` rows of a random layer of ``shape`` over ``CURVE_SPARSITIES``.
        crossovers: ``crossovers(curves)``.
        layer: the layer whose shape was swept; shape: its weight shape.
    """

    bench: pd.DataFrame
    plans: dict[int, dict]
    curves: pd.DataFrame
    crossovers: pd.DataFrame
    layer: str
    shape: tuple[int, ...]


def masks_digest(masks: Masks) -> str:
    """A short hash of the masks' names, shapes and bits (their safetensors bytes)."""
    return hashlib.sha1(masks_to_bytes(masks)).hexdigest()[:16]


def measurement_key(model: nn.Module, masks: Masks, settings: SpeedSettings) -> tuple[str, str, SpeedSettings]:
    """The name of one report: the model (weights and architecture), its masks and every setting."""
    return model_key(model), masks_digest(masks), settings


def measure_speed(model: nn.Module, settings: SpeedSettings, progress: Progress | None = None,
                  calibration: torch.Tensor | None = None) -> SpeedReport:
    """Time ``model`` in every format per batch size, plan it per batch size, and sweep one layer's speed-up.

    Args:
        model: the (pruned) model; a copy is measured, the argument is not modified.
        settings: batch sizes, formats, repeats, device and the layer for the crossover sweep.
        progress: ``progress(fraction, text)`` after each step.
        calibration: real inputs (e.g. test images): the model is timed on them and the plan times
            activation-sparse kernels on their activations (``compile_model(calibration=...)``).
    """
    model = copy.deepcopy(model).eval()
    batches = tuple(settings.batches)
    sweep = CURVE_SPARSITIES if settings.layer else ()  # a model without a Linear layer is still measured
    steps = 2 * len(batches) + len(sweep)
    done = 0

    def tick(text: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(1.0, done / steps), f"{text} ({done}/{steps})")

    frames, plans = [], {}
    for b in batches:
        frames.append(benchmark_model(model, [b], device=settings.device, formats=settings.formats,
                                      repeats=settings.repeats, calibration=calibration, rel_iqr=settings.rel_iqr,
                                      time_cap_s=settings.time_cap_s))
        tick(f"Timed every format at batch {b}")
        compiled = compile_model(model, batch_size=b, device=settings.device, policy="measure",
                                 calibration=calibration)
        plans[b] = {"table": compiled.plan_table(), "explain": compiled.explain(), "notices": list(compiled.notices)}
        tick(f"Chose a format per layer for batch {b}")
    shape = tuple(dict(model.named_modules())[settings.layer].weight.shape) if settings.layer else ()
    curve_formats = CUDA_CURVE_FORMATS if settings.device.startswith("cuda") else CPU_CURVE_FORMATS
    curve_frames = []
    for s in sweep:
        curve_frames.append(speedup_curves(shape, (s,), batches, formats=curve_formats, device=settings.device,
                                           repeats=max(3, settings.repeats // 3), rel_iqr=settings.rel_iqr,
                                           time_cap_s=settings.time_cap_s / 3))
        tick(f"Random {shape[0]}x{shape[1]} layer at {100 * s:.0f} % sparsity")
    curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame()
    return SpeedReport(bench=pd.concat(frames, ignore_index=True), plans=plans, curves=curves,
                       crossovers=crossovers(curves) if curve_frames else pd.DataFrame(), layer=settings.layer,
                       shape=shape)


def ratio_intervals(bench: pd.DataFrame) -> pd.DataFrame:
    """Each timed format's ratio to dense with its interquartile interval, rounds and whether it settled.

    Columns: batch, format, ratio_dense, ratio_q25, ratio_q75, rounds, stable, capped. Dense (the
    reference), skipped formats and rows timed apart from dense (no interval) are left out.
    """
    cols = ["batch", "format", "ratio_dense", "ratio_q25", "ratio_q75", "rounds", "stable", "capped"]
    if "ratio_q25" not in bench:
        return pd.DataFrame(columns=cols)
    rows = bench[~bench["format"].isin(REFERENCE_FORMATS) & bench["ratio_q25"].notna()]
    return rows[cols].reset_index(drop=True)


def unsettled(bench: pd.DataFrame) -> list[str]:
    """``"<format> at batch <b>"`` for every ratio whose interval did not settle before the time cap."""
    iv = ratio_intervals(bench)
    return [f"{r.format} at batch {r.batch}" for r in iv.itertuples() if not bool(r.stable)]


def interval_words(bench: pd.DataFrame, batch: int, fmt: str) -> str:
    """``"interquartile range 0.41–0.43×, 9 rounds"`` for one row, or "" when it has no interval."""
    iv = ratio_intervals(bench)
    hit = iv[(iv["batch"] == batch) & (iv["format"] == fmt)]
    if hit.empty:
        return ""
    r = hit.iloc[0]
    return f"interquartile range {r['ratio_q25']:.2f}–{r['ratio_q75']:.2f}×, {int(r['rounds'])} rounds"


def unsettled_points(curves: pd.DataFrame, batch: int) -> tuple[int, int]:
    """(points that did not settle before the time cap, points with an interval) of the crossover sweep at ``batch``."""
    if "stable" not in curves:
        return 0, 0
    rows = curves[(curves["batch"] == batch) & ~curves["format"].isin(REFERENCE_FORMATS) & curves["ratio_q25"].notna()]
    return int((~rows["stable"].astype(bool)).sum()), len(rows)
