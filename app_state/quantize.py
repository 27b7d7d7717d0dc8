"""The Quantize page's state: the live quantization of the current model and the sparsity × bits grid.

The live result (``quantize_model`` on the session's *current* model with its masks,
so a pruned model composes, plus accuracy before/after) is memoised per current
model object and ``QuantizeConfig`` in this session's ``QUANT`` cache; the size table
and the compressed checkpoint are computed on first use and kept beside it. The grid
runs under a progress bar and a Stop button (``runs.run_with_stop``) and is kept per
(dense fingerprint, dataset, ``QuantGridConfig``) in ``QUANT_GRID``. The work itself
is the library's: ``sparsity_viz.quantization``, ``sparsity_viz.compression``,
``sparsity_viz.pruning.prune``, ``sparsity_viz.training.evaluate_dataset``.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
from torch import nn

from sparsity_viz.compression.checkpoint import save_compressed
from sparsity_viz.figures import human_bytes
from sparsity_viz.compression.size import size_table
from sparsity_viz.data import Dataset
from sparsity_viz.pruning import STRATEGIES, one_shot_strategy_names
from sparsity_viz.quantization import QUANTIZERS, quantize_model
from sparsity_viz.quantization.grid import FP32_BITS, QuantGridConfig, accuracy_grid, cheapest_near_dense  # noqa: F401 (re-exported for the page)
from sparsity_viz.session import Workbench
from sparsity_viz.training import evaluate_dataset

from . import keys
from .cache import QUANT, QUANT_GRID, memo_by_object, session_cache
from .evaluation import dense_accuracy
from .runs import Progress, StopFlag, run_with_stop
from .settings import store, stored
from .workbench import bench, dataset

GRID_SPARSITIES = (0, 50, 80, 90, 95)  # % (the page's default rows)
GRID_BITS = (2, 3, 4, 5, 6, 8)  # the page's default columns
GRID_SPARSITY_OPTIONS = (0, 30, 50, 70, 80, 90, 95, 98, 99)  # % the grid's rows can be
QUANT_DEFAULTS = {"method": "uniform_symmetric", "per_channel": False, "bits": 4, "layer": None,
                  "grid_sparsities": list(GRID_SPARSITIES), "grid_bits": list(GRID_BITS),
                  "grid_strategy": "global_magnitude"}


@dataclass(frozen=True)
class QuantizeConfig:
    """What the live widgets say: one quantization of the current model (a cache key)."""

    method: str
    bits: int
    per_channel: bool = False

    def describe(self) -> str:
        label = QUANTIZERS[self.method].label if self.method in QUANTIZERS else self.method
        return f"{label}, {self.bits} bits, {'per channel' if self.per_channel else 'per tensor'}"


@dataclass(frozen=True, eq=False)
class QuantizeResult:
    """One live quantization of the current model."""

    config: QuantizeConfig
    quantized: Any  # sparsity_viz.quantization.QuantizedModel
    report: pd.DataFrame  # per layer + total: weights, zeros_before, zeros_after, zeros_created, levels, bits
    accuracy_before: float
    accuracy_after: float

    @property
    def total(self) -> pd.Series:
        rows = self.report[self.report["layer"] == "total"]
        return rows.iloc[0] if len(rows) else self.report.iloc[-1]

    @property
    def weights(self) -> int:
        return int(self.total["weights"])

    @property
    def zeros_created(self) -> int:
        return int(self.total["zeros_created"])

    @property
    def zeros_before(self) -> int:
        return int(self.total["zeros_before"])

    @property
    def zeros_after(self) -> int:
        return int(self.total["zeros_after"])


# ---------------------------------------------------------------------------
# Settings that survive page changes


def stored_quant(layers: Collection[str]) -> dict:
    """The page's settings; a link's bits outside every quantizer's range, or an unknown method, strategy, grid
    row or layer (one of ``layers``, the current model's weight names), are left out (and said)."""
    q = quantizers()
    bits = (min(c.min_bits for c in q.values()), max(c.max_bits for c in q.values()))
    return stored(keys.STORED_QUANT, QUANT_DEFAULTS, {"bits": bits, "grid_bits": bits},
                  {"method": tuple(q), "grid_sparsities": GRID_SPARSITY_OPTIONS, "grid_strategy": tuple(grid_strategies()),
                   "layer": tuple(layers)})


def store_quant(**settings: Any) -> None:
    store(keys.STORED_QUANT, QUANT_DEFAULTS, **settings)


def quantizers() -> dict[str, Any]:
    """The library's quantizer registry (name -> class with label, min_bits, max_bits, per_channel_ok)."""
    return dict(QUANTIZERS)


def grid_strategies() -> dict[str, str]:
    """Strategies the grid can prune with, name -> label: the one-shot ones (scheduled strategies train)."""
    return {n: STRATEGIES[n].label for n in one_shot_strategy_names()}


# ---------------------------------------------------------------------------
# The live quantization of the current model


def _evaluate(model: nn.Module, ds: Dataset) -> float:
    return float(evaluate_dataset(model, ds, device="cpu").accuracy)


def _memo(wb: Workbench, extra: Hashable, compute) -> Any:
    return memo_by_object(QUANT, wb.current, compute, extra=(wb.dataset, extra))


def quantize_current(cfg: QuantizeConfig, wb: Workbench | None = None) -> QuantizeResult:
    """``quantize_model`` on the current model with its masks, and accuracy before/after (memoised)."""
    wb = wb or bench()
    ds = dataset(wb)

    def compute() -> QuantizeResult:
        before = _memo(wb, "accuracy", lambda: _evaluate(wb.current, ds))
        qm = quantize_model(wb.current, cfg.method, cfg.bits, per_channel=cfg.per_channel, masks=wb.masks)
        return QuantizeResult(cfg, qm, qm.report(), before, _evaluate(qm.model, ds))

    return _memo(wb, cfg, compute)


def layer_inputs(result: QuantizeResult, layer: str, wb: Workbench | None = None) -> tuple:
    """``(weight, quantized tensor, mask)`` of one prunable weight, for ``figures.quantization_histogram``."""
    wb = wb or bench()
    weight = dict(wb.current.named_parameters())[layer].detach()
    return weight, result.quantized.tensors[layer], wb.masks.get(layer)


def size_table_of(result: QuantizeResult, wb: Workbench | None = None) -> pd.DataFrame:
    """``compression.size_table`` of the current model quantized by ``result`` (memoised: Huffman-codes every layer)."""
    wb = wb or bench()
    return _memo(wb, (result.config, "sizes"), lambda: size_table(wb.current, wb.masks, quantized=result.quantized))


def compressed_checkpoint_download(result: QuantizeResult, file_name: str, wb: Workbench | None = None) -> None:
    """The compressed checkpoint's download button, or why there is none (an own model)."""
    data, problem = compressed_checkpoint(result, wb)
    if data is None:
        st.info(problem)
        return
    st.download_button(f"Download the compressed checkpoint ({human_bytes(len(data))})", data, file_name=file_name,
                       mime="application/octet-stream", key="quant_ckpt_download", on_click="ignore",
                       icon=":material/download:")


def compressed_checkpoint(result: QuantizeResult, wb: Workbench | None = None) -> tuple[bytes | None, str]:
    """``(bytes, "")``: the quantized current model as a compressed checkpoint (``compression.save_compressed``;
    memoised), or ``(None, why not)``: it records a bundled architecture, and an own model's spec is none (the
    button raised for every own model, an audit)."""
    wb = wb or bench()
    try:
        return _memo(wb, (result.config, "checkpoint"), lambda: save_compressed(result.quantized)), ""
    except ValueError as exc:
        return None, (f"No compressed checkpoint for this model: {exc} The size table above still counts its "
                      "bytes; the Export page saves its weights.")


# ---------------------------------------------------------------------------
# The accuracy grid over sparsity x bits


def _grid_key(cfg: QuantGridConfig, wb: Workbench) -> tuple:
    return (wb.fingerprint, wb.dataset, cfg)


def grid_result(cfg: QuantGridConfig) -> pd.DataFrame | None:
    """The kept grid of ``cfg`` for the current dense model (``None`` when not run yet)."""
    return session_cache(QUANT_GRID).get(_grid_key(cfg, bench()))


def grid_run(cfg: QuantGridConfig) -> None:  # returns only when training diverged (run_with_stop)
    """Compute the grid under a progress bar and a Stop button; the page is rerun and finds it with ``grid_result``."""
    wb = bench()
    ds = dataset(wb)
    key = _grid_key(cfg, wb)

    def keep(frame: pd.DataFrame) -> None:
        session_cache(QUANT_GRID)[key] = frame

    run_with_stop(lambda progress, stop: accuracy_grid(wb.dense, ds, cfg, dense_masks=wb.dense_masks,
                                                       progress=progress, stop=stop),
                  keep, key="quant_grid", text="Pruning, quantizing and measuring...")


# ---------------------------------------------------------------------------
# What the page says about the numbers


def quantize_summary(result: QuantizeResult, origin: str) -> str:
    """The sentence under the live numbers: zeros quantization created among the survivors, accuracy before/after."""
    created, survivors = result.zeros_created, result.weights - result.zeros_before
    acc0, acc1 = result.accuracy_before, result.accuracy_after
    return (f"At **{result.config.bits} bits** ({result.config.describe()}), quantization rounded **{created:,}** of "
            f"the {survivors:,} weights that were still nonzero to exactly zero "
            f"({100 * created / max(survivors, 1):.2f} % of them); test accuracy went from {100 * acc0:.1f} % to "
            f"{100 * acc1:.1f} %. Current model: {origin}.")


def size_caption(sizes: pd.DataFrame, bits: int) -> str:
    """The Deep Compression stages of ``size_table``'s total row in one sentence."""
    total = sizes[sizes["layer"] == "total"].iloc[0]
    return (f"Dense fp32 {human_bytes(total['dense_fp32_bytes'])} → pruned CSR "
            f"{human_bytes(total['sparse_csr_bytes'])} ({total['csr_ratio']:.1f}×) → {bits}-bit codes "
            f"{human_bytes(total['quantized_bytes'])} ({total['quantized_ratio']:.1f}×) → Huffman-coded "
            f"{human_bytes(total['huffman_bytes'])}: **{total['huffman_ratio']:.1f}×** smaller than dense. "
            "Every size is the length of the bytes the library really encodes (prunable weights; biases stay fp32).")


def grid_reading(grid: pd.DataFrame, wb: Workbench | None = None) -> tuple[float, str]:
    """The dense accuracy the grid is read against (its 0 % fp32 cell, else the dense model's) and the sentence
    naming the cheapest cell within 1 point of it (``cheapest_near_dense``)."""
    fp32 = grid[grid["bits"] == FP32_BITS]
    dense_row = fp32[fp32["sparsity"] == 0]
    if len(dense_row):
        dense_acc = float(dense_row["accuracy"].iloc[0])
    else:
        dense_acc = dense_accuracy(wb or bench())
    best = cheapest_near_dense(grid, dense_acc)
    if best is None:
        return dense_acc, f"No quantized cell stays within 1 point of the dense model's {100 * dense_acc:.1f} %."
    return dense_acc, (f"The fewest bits per original weight within 1 point of the dense model's "
                       f"{100 * dense_acc:.1f} %: **{100 * best['sparsity']:g} % pruned at {int(best['bits'])} bits** "
                       f"({100 * best['accuracy']:.1f} %, about {best['cost']:.2f} bits per original weight before "
                       "indices).")
