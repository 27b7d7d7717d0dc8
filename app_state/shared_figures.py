"""Figures that depend only on the weights, built once for the whole class and shared read-only.

Thirty students at the same model, strategy and level draw the same heatmap; the shared
``FIGURES`` cache is keyed by the model's content (``cache.content_key``), the masks
(``reports.masks_key``) and the figure's arguments. A shared figure is handed to
``show_figure`` as it is and must never be changed: ``st.plotly_chart`` only reads it
(it serialises a copy), and the *Display* toggles work on a copy (``widgets.display_figure``).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import plotly.graph_objects as go
from torch import nn

from sparsity_viz import figures
from sparsity_viz.masks import Masks
from sparsity_viz.session import Workbench

from .cache import FIGURES, content_key, shared_cache
from .reports import masks_key


def shared_figure(model: nn.Module, masks: Masks, what: Hashable, build: Callable[[], go.Figure]) -> go.Figure:
    """``build()`` for these weights and masks, once per process; ``what`` names the figure and its arguments."""
    return shared_cache(FIGURES).get_or_compute((content_key(model), masks_key(masks), what), build)


def layer_heatmap(wb: Workbench, layer: str, *, full: bool = False, height: int | None = None) -> go.Figure:
    """``figures.layer_heatmap`` of the current model's ``layer``: a preview unless ``full`` (shared, read-only)."""
    max_cells = None if full else figures.PREVIEW_CELLS
    key = layer if layer.endswith(".weight") else f"{layer}.weight"
    layer_masks = {key: wb.masks[key]} if wb.masks and key in wb.masks else {}
    return shared_figure(wb.current, layer_masks, ("layer_heatmap", layer, max_cells, height),
                         lambda: figures.layer_heatmap(wb.current, wb.masks, layer, max_cells=max_cells,
                                                       height=height))
