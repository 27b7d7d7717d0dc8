"""Pure figure functions: data in, ``plotly.graph_objects.Figure`` out, no global state.

One small module per family; everything public is re-exported here flat.
"""

from .attribution_maps import attribution_maps
from .boundaries import BoundaryGrid, boundary_comparison, boundary_grid, data_range, decision_boundary
from .curves import accuracy_curves, curve_table
from .fanout import fanout_map
from .graphs import connection_graph, edge_count, model_graph
from .heatmaps import heatmap_matrix, layer_heatmap, weight_heatmap
from .histograms import histogram_counts, weight_histogram
from .style import (
    BASE_FONT_SIZE,
    DIVERGING,
    OKABE_ITO,
    PRUNED_COLOR,
    SEQUENTIAL,
    apply_style,
    palette,
    to_png_bytes,
)

__all__ = [
    "BASE_FONT_SIZE",
    "DIVERGING",
    "OKABE_ITO",
    "PRUNED_COLOR",
    "SEQUENTIAL",
    "BoundaryGrid",
    "accuracy_curves",
    "apply_style",
    "attribution_maps",
    "boundary_comparison",
    "boundary_grid",
    "connection_graph",
    "curve_table",
    "data_range",
    "decision_boundary",
    "edge_count",
    "fanout_map",
    "heatmap_matrix",
    "histogram_counts",
    "layer_heatmap",
    "model_graph",
    "palette",
    "to_png_bytes",
    "weight_heatmap",
    "weight_histogram",
]
