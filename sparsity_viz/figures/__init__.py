"""Pure figure functions: data in, ``plotly.graph_objects.Figure`` out, no global state.

One small module per family; everything public is re-exported here flat.
"""

from .activations import (
    activation_heatmaps,
    activation_histogram,
    activation_mosaic,
    unit_grid_shape,
    input_point,
    zero_share_bars,
)
from .attribution_maps import attribution_maps, blank_reason as attribution_blank_reason
from .boundaries import BoundaryGrid, boundary_comparison, boundary_grid, data_range, decision_boundary
from .curves import accuracy_curves, curve_table
from .experts import compute_bars, expert_color, expert_load_bars, expert_regions, routing_heatmap, routing_shares
from .fanout import fanout_map
from .graphs import connection_graph, edge_count, model_graph
from .heatmaps import PREVIEW_CELLS, heatmap_matrix, layer_heatmap, preview_stride, weight_heatmap
from .histograms import histogram_counts, weight_histogram
from .receptive_fields import receptive_field_grid, tile_grid, unit_graph
from .playground import (
    handle_positions,
    playground_boundary,
    playground_figures,
    playground_network,
    tile_unit_maps,
    unit_output_maps,
)
from .quantization import grid_matrix, histogram_levels, quantization_grid, quantization_histogram, size_waterfall
from .sensitivity import sensitivity_numbers, sensitivity_curves, sensitivity_heatmap
from .speed import bytes_bars, format_color, format_label, human_bytes, latency_bars, speedup_curve_figure
from .style import (
    BASE_FONT_SIZE,
    DIVERGING,
    OKABE_ITO,
    PRUNED_COLOR,
    SEQUENTIAL,
    LEGEND_BELOW,
    apply_style,
    fixed_accuracy_axis,
    palette,
    projector,
    strategy_color,
    to_png_bytes,
)
from .survival import (
    SURVIVAL_COLORS,
    death_time_heatmap,
    jaccard_bars,
    lottery_curves,
    sparsity_profile_chart,
    survival_heatmap,
    timeline_state,
)
from .training import training_history

__all__ = [
    "BASE_FONT_SIZE",
    "DIVERGING",
    "LEGEND_BELOW",
    "OKABE_ITO",
    "PRUNED_COLOR",
    "SEQUENTIAL",
    "SURVIVAL_COLORS",
    "BoundaryGrid",
    "accuracy_curves",
    "activation_heatmaps",
    "activation_histogram",
    "activation_mosaic",
    "apply_style",
    "fixed_accuracy_axis",
    "projector",
    "strategy_color",
    "attribution_maps",
    "attribution_blank_reason",
    "boundary_comparison",
    "boundary_grid",
    "handle_positions",
    "playground_boundary",
    "playground_figures",
    "playground_network",
    "tile_unit_maps",
    "unit_output_maps",
    "bytes_bars",
    "compute_bars",
    "connection_graph",
    "curve_table",
    "data_range",
    "death_time_heatmap",
    "decision_boundary",
    "edge_count",
    "expert_color",
    "expert_load_bars",
    "expert_regions",
    "unit_grid_shape",
    "fanout_map",
    "format_color",
    "format_label",
    "grid_matrix",
    "heatmap_matrix",
    "histogram_counts",
    "histogram_levels",
    "human_bytes",
    "input_point",
    "jaccard_bars",
    "latency_bars",
    "layer_heatmap",
    "lottery_curves",
    "model_graph",
    "palette",
    "quantization_grid",
    "quantization_histogram",
    "routing_heatmap",
    "routing_shares",
    "sensitivity_numbers",
    "sensitivity_curves",
    "sensitivity_heatmap",
    "size_waterfall",
    "sparsity_profile_chart",
    "speedup_curve_figure",
    "survival_heatmap",
    "timeline_state",
    "to_png_bytes",
    "training_history",
    "weight_heatmap",
    "receptive_field_grid",
    "PREVIEW_CELLS",
    "preview_stride",
    "tile_grid",
    "unit_graph",
    "weight_histogram",
    "zero_share_bars",
]
