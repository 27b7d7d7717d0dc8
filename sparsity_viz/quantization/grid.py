"""The accuracy grid over sparsity x bits: prune the dense model to each level, quantize it to each bit width.

Each cell is ``prune`` (a one-shot strategy, from the dense model) then
``quantize_model`` with the pruning masks held, evaluated on the test split. The
column ``bits == FP32_BITS`` is the pruned model itself, not quantized. Long: it
reports ``progress(fraction, text)`` and a stop keeps the rows finished so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from torch import nn

from ..data import Dataset, data_batch
from ..masks import Masks
from ..models import prunable_parameters
from ..pruning import STRATEGIES, prune, wants_batch
from ..training import evaluate_dataset, is_stopped
from .model import quantize_model

FP32_BITS = 32  # the grid's "not quantized" column
GRID_COLUMNS = ["sparsity", "bits", "accuracy", "zeros"]


@dataclass(frozen=True)
class QuantGridConfig:
    """The accuracy grid: prune the dense model to each sparsity, quantize to each bit width, evaluate."""

    method: str
    per_channel: bool
    strategy: str  # a one-shot strategy (scheduled ones train)
    sparsities: tuple[float, ...]  # fractions in [0, 1]
    bits: tuple[int, ...]


def accuracy_grid(model: nn.Module, dataset: Dataset, config: QuantGridConfig, *, dense_masks: Masks | None = None,
                  progress: Callable[[float, str], None] | None = None, stop=None) -> pd.DataFrame:
    """Rows (sparsity, bits, accuracy, zeros) of ``config``'s grid; ``model`` is not modified.

    ``dense_masks`` are zeros the dense model already has (an upload); they stay pruned.
    A stop returns the rows finished so far with ``attrs["cancelled"] = True``.
    """
    if STRATEGIES[config.strategy].kind != "one_shot":
        raise ValueError(f"The grid prunes one-shot; {config.strategy!r} prunes while training.")
    batch = data_batch(dataset) if wants_batch(STRATEGIES[config.strategy]) else None
    total = len(config.sparsities) * (len(config.bits) + 1)
    rows: list[dict] = []

    def add(sparsity: float, bits: int, net: nn.Module, zeros: int, text: str) -> None:
        accuracy = float(evaluate_dataset(net, dataset, device="cpu").accuracy)
        rows.append({"sparsity": sparsity, "bits": bits, "accuracy": accuracy, "zeros": zeros})
        if progress is not None:
            progress(len(rows) / total, text)

    cancelled = False
    for s in config.sparsities:
        if is_stopped(stop):
            cancelled = True
            break
        pruned = prune(model, config.strategy, s, current=dense_masks, batch=batch)
        # exact zeros, as the quantized cells count them (mask entries missed a model's own zeros; an audit)
        add(s, FP32_BITS, pruned.model, sum(int((p == 0).sum()) for p in prunable_parameters(pruned.model).values()),
            f"{100 * s:g} % pruned, fp32")
        for b in config.bits:
            if is_stopped(stop):
                cancelled = True
                break
            qm = quantize_model(pruned.model, config.method, b, per_channel=config.per_channel, masks=pruned.masks)
            add(s, b, qm.model, int(qm.report().iloc[-1]["zeros_after"]), f"{100 * s:g} % pruned, {b} bits")
        if cancelled:
            break
    frame = pd.DataFrame(rows, columns=GRID_COLUMNS)
    frame.attrs["cancelled"] = cancelled
    return frame


def cheapest_near_dense(grid: pd.DataFrame, dense_accuracy: float, tolerance: float = 0.01) -> pd.Series | None:
    """The quantized cell with the fewest bits per original weight (``bits * (1 - sparsity)``, indices aside)
    whose accuracy is within ``tolerance`` of ``dense_accuracy``; ties go to the more accurate; None if none is."""
    near = grid[(grid["bits"] != FP32_BITS) & (grid["accuracy"] >= dense_accuracy - tolerance)]
    if not len(near):
        return None
    ranked = near.assign(cost=near["bits"] * (1 - near["sparsity"]))
    return ranked.sort_values(["cost", "accuracy"], ascending=[True, False]).iloc[0]
