"""Weights: heatmap per layer, histogram of survivors against the dense weights, and the zeros table."""

import streamlit as st

import app_state
from sparsity_viz import figures
from sparsity_viz.models import prunable_parameters
from sparsity_viz.reports import sparsity_report

app_state.sidebar()
st.title("Weights")
st.markdown(
    "Each cell of the heatmap is one weight: blue positive, red negative, **grey pruned**. Conv layers are drawn as a "
    "grid of small kernels. The histogram puts the surviving weights over the dense ones: magnitude pruning cuts a "
    "hole around zero, L1 training piles weights up at exactly zero. Try `lenet300` at 90 % and look at layer fc1."
)

wb = app_state.bench()
st.caption(f"Current model: {wb.origin} · {100 * wb.sparsity:.1f} % pruned")
params = prunable_parameters(wb.current)
layers = [k.removesuffix(".weight") for k in params]
SETTINGS = {"layer": None, "logy": False, "hist": "this layer"}  # this page's settings (kept, and in the URL)
s = app_state.page_settings("weights", SETTINGS, choices={"hist": ("this layer", "all layers"), "layer": layers})
c1, c2 = st.columns([1, 1])
layer = c1.selectbox("Layer", layers, index=layers.index(s["layer"]) if s["layer"] in layers else 0,
                     key="weights_layer")
log_y = c2.toggle("Logarithmic count axis", value=bool(s["logy"]), key="weights_logy",
                  help="Shows the few large weights in the tails.")
full = c2.toggle("Full-resolution heatmap", key="weights_full_res",
                 help="The preview draws every few rows and columns of a large layer; this draws every weight.")
height = 560 if params[f"{layer}.weight"].dim() == 2 else 700
app_state.show_figure(app_state.layer_heatmap(wb, layer, full=full, height=height), f"weights_heatmap_{layer}")

scope = st.radio("Histogram of", ["this layer", "all layers"], index=["this layer", "all layers"].index(s["hist"]),
                 horizontal=True, key="weights_hist_scope")
app_state.keep_page_settings("weights", SETTINGS, layer=layer, logy=bool(log_y), hist=scope)
dense_params = prunable_parameters(wb.dense)
if scope == "this layer":
    key = f"{layer}.weight"
    hist = figures.weight_histogram(dense_params[key], params[key], wb.masks.get(key), log_y=log_y,
                                    title=f"{layer}: weights before and after")
else:
    hist = figures.weight_histogram(dict(dense_params), dict(params), wb.masks, log_y=log_y,
                                    title="All layers: weights before and after")
hist.update_layout(height=460)
app_state.show_figure(hist, "weights_histogram")

st.subheader("Where are the zeros?")
st.markdown("Per layer: weights left, the share pruned, what the layer would take stored densely (float32) and as CSR, "
            "and dead neurons (no surviving input or output). CSR only pays off above ~50 % sparsity.")
report = sparsity_report(wb.current, wb.masks)
report["sparsity"] = 100 * report["sparsity"]
app_state.show_table(report, "where_are_the_zeros", column_config={
    "sparsity": st.column_config.NumberColumn("pruned (%)", format="%.1f"),
    "dense_bytes": st.column_config.NumberColumn("dense bytes"),
    "csr_bytes": st.column_config.NumberColumn("CSR bytes"),
})
