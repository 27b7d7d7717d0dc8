"""A pruned model as files for elsewhere: the ``torch.nn.utils.prune`` form as ``.pt`` bytes, and file names."""

from __future__ import annotations

import io
from collections.abc import Mapping

import torch
from torch import nn

from .masks import to_torch_prune


def torch_prune_bytes(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> bytes:
    """``model`` under ``masks`` in ``torch.nn.utils.prune`` form (``weight_orig`` + ``weight_mask``) as .pt bytes.

    Load it with ``torch.load(..., weights_only=True)`` and ``prune.custom_from_mask``.
    """
    buf = io.BytesIO()
    torch.save(to_torch_prune(model, masks).state_dict(), buf)
    return buf.getvalue()


def export_stem(model_name: str, sparsity: float) -> str:
    """A file-name stem such as ``lenet300_90pct``."""
    return f"{model_name}_{int(round(100 * sparsity))}pct"
