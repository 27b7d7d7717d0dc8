"""The current model's sparsity report, effective sparsity and collapse warnings, shared by every session.

They depend only on the weights and masks, so a class at the same model, strategy and level
computes them once: the shared ``REPORTS`` cache is keyed by ``cache.content_key`` of the model
and ``masks_key`` of the masks, and hands out copies (the report is a DataFrame).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from torch import nn

from sparsity_viz.connectivity import collapse_warnings, effective_sparsity
from sparsity_viz.masks import Masks
from sparsity_viz.reports import sparsity_report

from .cache import REPORTS, content_key, shared_cache


@dataclass(frozen=True)
class ModelReport:
    """What the Prune page states about the current model."""

    table: pd.DataFrame  # sparsity_report: one row per layer, then the total
    effective: float | None  # effective_sparsity (None without masks)
    warnings: tuple[str, ...]  # collapse_warnings


def masks_key(masks: Masks) -> str:
    """A short hash of the masks' names, shapes and bits."""
    h = hashlib.sha1()
    for name, m in masks.items():
        h.update(name.encode())
        h.update(str(tuple(m.shape)).encode())
        h.update(np.packbits(m.detach().to("cpu").numpy().astype(bool).ravel()).tobytes())
    return h.hexdigest()[:16]


def model_report(model: nn.Module, masks: Masks) -> ModelReport:
    """``sparsity_report``, ``effective_sparsity`` and ``collapse_warnings`` of ``model`` under ``masks`` (shared)."""
    def compute() -> ModelReport:
        effective = effective_sparsity(masks) if masks else None
        return ModelReport(sparsity_report(model, masks), effective, tuple(collapse_warnings(masks)) if masks else ())

    hit = shared_cache(REPORTS).get_or_compute((content_key(model), masks_key(masks)), compute)
    return replace(hit, table=hit.table.copy())  # the shared frame stays read-only
