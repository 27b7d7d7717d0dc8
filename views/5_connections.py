"""Connections: the surviving-connection graph, dead neurons, layer collapse; pixel fan-out or decision boundary."""

import streamlit as st

import app_state
from sparsity_viz import figures
from sparsity_viz.connectivity import (
    collapse_warnings, describe_fanout, effective_sparsity, input_fanout, layer_collapse,
)

app_state.sidebar()
st.title("Connections")
st.markdown(
    "The network as a graph: every line is a surviving connection, **blue positive, red negative, thicker = larger |w|**; "
    "grey nodes are dead neurons (nothing left in or out). Large layers are grouped and only the strongest edges drawn. "
    "Push the pruning to 99 % and watch for *layer collapse*: a layer with no path left from input to output."
)

wb = app_state.bench()
ds = app_state.dataset(wb)
effective = (f" · effective sparsity {100 * effective_sparsity(wb.masks):.1f} % (weights on no input → output path "
             "count as removed)") if wb.masks else ""
st.caption(f"Current model: {wb.origin} · {100 * wb.sparsity:.1f} % pruned{effective}")
SETTINGS = {"edges": 200}  # this page's settings (kept, and in the URL)
s = app_state.page_settings("connections", SETTINGS, ranges={"edges": (20, 800)})
max_edges = st.slider("Edges drawn per layer (strongest first)", 20, 800, int(s["edges"]), step=20,
                      key="conn_max_edges",
                      help="Big layers have thousands of connections; only the strongest are drawn.")
app_state.keep_page_settings("connections", SETTINGS, edges=int(max_edges))

collapse = layer_collapse(wb.current, wb.masks)
if collapse.pruned_layers:
    st.error(f"Layer collapse: {', '.join(collapse.pruned_layers)} lost every weight; the model can only guess.")
elif not collapse.path_exists:
    st.error("Layer collapse: no path of surviving weights leads from the input to the output.")
else:
    alive = ", ".join(f"{k} {v}/{collapse.total_units[k]}" for k, v in collapse.alive_units.items())
    st.success(f"No layer collapse. Units on some input-to-output path: {alive}.")
    for warning in collapse_warnings(wb.masks) if wb.masks else []:  # e.g. effective > nominal sparsity
        st.warning(warning)

graph_fig = figures.model_graph(wb.current, wb.masks, max_edges_per_layer=int(max_edges),
                                input_shape=ds.input_shape, class_names=ds.class_names)
if ds.is_image:
    app_state.show_figure(graph_fig, "connections_graph")
    st.subheader("Input fan-out")
    fan = input_fanout(wb.current, wb.masks, input_shape=ds.input_shape)
    st.markdown(f"How many surviving connections leave each input pixel. {describe_fanout(fan)}".strip())
    fan_fig = figures.fanout_map(fan)
    fan_fig.update_layout(height=560, width=620)
    app_state.show_figure(fan_fig, "connections_fanout")
elif ds.is_plane:
    left, right = st.columns([3, 2])
    with left:
        app_state.show_figure(graph_fig, "connections_graph")
    with right:
        boundary = figures.decision_boundary(wb.current, ds.x_test, ds.y_test, class_names=ds.class_names,
                                             title="Current model", compact=True)
        boundary.update_layout(height=560)
        app_state.show_figure(boundary, "connections_boundary")
else:  # an uploaded table with more than 2 features: no plane to draw
    app_state.show_figure(graph_fig, "connections_graph")
