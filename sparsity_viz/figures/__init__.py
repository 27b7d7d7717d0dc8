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

# speed & memory (sparse backend) figures
from .speed import bytes_bars, format_color, format_label, human_bytes, latency_bars, speedup_curve_figure  # noqa: E402

__all__ += ["bytes_bars", "format_color", "format_label", "human_bytes", "latency_bars", "speedup_curve_figure"]

# Strategy lab (Compare, Survival maps, Lottery ticket lab)
from .survival import (  # noqa: E402
    SURVIVAL_COLORS,
    death_time_heatmap,
    jaccard_bars,
    lottery_curves,
    sparsity_profile_chart,
    survival_heatmap,
    timeline_state,
)

__all__ += [
    "SURVIVAL_COLORS",
    "death_time_heatmap",
    "jaccard_bars",
    "lottery_curves",
    "sparsity_profile_chart",
    "survival_heatmap",
    "timeline_state",
]
