"""Quantize every prunable weight of a model: a copy that runs on the dequantized weights.

``quantize_model`` never touches its input. It reads the pruning masks (default:
the model's own exact zeros, ``masks_from_zeros``), quantizes each prunable weight
(``models.prunable_parameters``: Linear and Conv2d weights; biases stay fp32) with
the masked-out entries held at the zero level, and writes the dequantized weights
into a deep copy. ``QuantizedModel.report`` counts per layer, exactly, how many
weights were zero before and after and how many zeros quantization created.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn

from ..masks import Masks, masks_from_zeros, validate_masks
from ..models import prunable_parameters
from .base import QuantizedTensor
from .registry import get_quantizer

REPORT_COLUMNS = ["layer", "weights", "zeros_before", "zeros_after", "zeros_created", "levels", "bits"]


@dataclass
class QuantizedModel:
    """A quantized copy of a model and the codes/codebooks of its prunable weights.

    ``model``: the copy, every prunable weight replaced by its dequantized value.
    ``tensors``: ``{weight name: QuantizedTensor}``.
    ``masks``: ``{weight name: bool}``, True where the weight was nonzero *before*
    quantization (the pruning mask intersected with the nonzeros); it gives the
    report its ``zeros_before``. Without an entry for a layer the report counts the
    zeros of the weight in ``model`` before quantization as unknown: ``zeros_before``
    is then taken as ``zeros_after`` (no zeros created).
    """

    model: nn.Module
    tensors: dict[str, QuantizedTensor]
    masks: Masks = field(default_factory=dict)

    @property
    def method(self) -> str:
        return next(iter(self.tensors.values())).method if self.tensors else ""

    @property
    def bits(self) -> int:
        return next(iter(self.tensors.values())).bits if self.tensors else 0

    def report(self) -> pd.DataFrame:
        """One row per quantized layer plus a ``total`` row.

        Columns: layer, weights, zeros_before (zero or pruned before quantization),
        zeros_after (dequantized weights exactly 0), zeros_created (after - before,
        exact), levels (distinct values among the layer's dequantized weights; in the
        total row, over the whole model), bits.
        """
        rows = []
        values = []
        for name, qt in self.tensors.items():
            deq = qt.dequantize()
            after = int((deq == 0).sum())
            before = int((~self.masks[name]).sum()) if name in self.masks else after
            uniq = torch.unique(deq)
            values.append(uniq)
            rows.append({
                "layer": name.removesuffix(".weight"),
                "weights": deq.numel(),
                "zeros_before": before,
                "zeros_after": after,
                "zeros_created": after - before,
                "levels": int(uniq.numel()),
                "bits": qt.bits,
            })
        frame = pd.DataFrame(rows, columns=REPORT_COLUMNS)
        total = {
            "layer": "total",
            "weights": int(frame["weights"].sum()),
            "zeros_before": int(frame["zeros_before"].sum()),
            "zeros_after": int(frame["zeros_after"].sum()),
            "zeros_created": int(frame["zeros_created"].sum()),
            "levels": int(torch.unique(torch.cat([v.cpu() for v in values])).numel()) if values else 0,
            "bits": self.bits,
        }
        return pd.concat([frame, pd.DataFrame([total], columns=REPORT_COLUMNS)], ignore_index=True)


@torch.no_grad()
def quantize_model(
    model: nn.Module,
    method: str,
    bits: int,
    *,
    per_channel: bool = False,
    masks: Masks | None = None,
    **params,
) -> QuantizedModel:
    """Quantize a **copy** of ``model``'s prunable weights with a registered method.

    ``masks`` (default ``masks_from_zeros(model)``): False entries get the zero code,
    so a pruned weight stays exactly 0. ``params`` go to the quantizer (``max_iter``
    for k-means, ``delta`` for ternary). Bad method, bits, params, masks or a
    non-finite weight raise one ``ValueError`` naming the layer.
    """
    quantizer = get_quantizer(method, bits, per_channel, **params)
    if masks is None:
        masks = masks_from_zeros(model)
    else:
        validate_masks(model, masks)
    out = copy.deepcopy(model)
    source = prunable_parameters(model)
    target = prunable_parameters(out)
    tensors: dict[str, QuantizedTensor] = {}
    before: Masks = {}
    for name, param in source.items():
        mask = masks.get(name)
        try:
            qt = quantizer.quantize(param, mask)
        except ValueError as exc:
            raise ValueError(f"Layer {name}: {exc}") from None
        tensors[name] = qt
        alive = param.detach() != 0
        if mask is not None:
            alive &= mask.to(device=alive.device, dtype=torch.bool)
        before[name] = alive
        target[name].copy_(qt.dequantize().to(dtype=target[name].dtype, device=target[name].device))
    return QuantizedModel(model=out, tensors=tensors, masks=before)
