"""Activations: how many hidden activations are exactly zero, per input, layer and class; dense vs current; k-WTA."""

import streamlit as st

import app_state
from sparsity_viz import figures

app_state.sidebar()
st.title("Activations")
st.markdown(
    "A ReLU outputs **exactly zero** for every negative input, so on any one input many hidden units are silent: "
    "that is **activation sparsity**, and it comes for free. A unit that is zero on *every* input is **dead**. "
    "Pruning, L1 and dropout change which units fire, sometimes raising, sometimes lowering the zero share; "
    "**k-winners-take-all** (Ahmad & Scheinkman 2019) makes it exact by keeping only the k largest activations "
    "of each layer on each input. Compare the dense model with the current one (pruned on the Prune page, if you did)."
)

wb = app_state.bench()
stored = app_state.stored_activations()

k = None
if app_state.kwinners_available(wb):
    base = app_state.activation_result(None, wb)
    sizes = [int(row.elements) for row in base.current.layers]
    k1, k2 = st.columns([1, 2])
    kwta = k1.toggle("k-winners-take-all", value=bool(stored["kwta"]), key="act_kwta",
                     help="Replace the current model's ReLU by k-WTA on a copy: each hidden layer keeps its k largest "
                          "activations per input and zeroes the rest.")
    if kwta:
        wanted_k = int(stored["k"] or max(1, round(0.3 * min(sizes))))
        shown_k = min(wanted_k, max(sizes))  # clamped to this model
        app_state.follow_model("activations_k", {"act_k": shown_k})
        k = int(k2.number_input("k (activations kept per layer and input)", 1, max(sizes), shown_k, step=1, key="act_k",
                                help=f"Hidden layer sizes: {', '.join(f'{s:,}' for s in sizes)}. A layer with at most "
                                     "k activations keeps them all."))
    app_state.store_activations(kwta=bool(kwta), **({"k": app_state.kept_value(wanted_k, k, max(sizes))}
                                                     if k is not None else {}))

try:
    result = app_state.activation_result(k, wb)
except ValueError as exc:
    st.error(f"Could not measure the activations: {exc}")
    st.stop()

dense, current = result.dense, result.current
m1, m2, m3, m4 = st.columns(4)
m1.metric(f"Exactly zero ({result.label})", f"{100 * current.zero_fraction:.1f} %",
          delta=f"{100 * (current.zero_fraction - dense.zero_fraction):+.1f} points vs dense", delta_color="off")
m2.metric("Exactly zero (dense)", f"{100 * dense.zero_fraction:.1f} %")
m3.metric(f"Dead units ({result.label})", f"{current.never_active_units} of {current.units}",
          delta=f"dense: {dense.never_active_units}", delta_color="off", delta_arrow="off")
m4.metric(f"Accuracy ({result.label})", f"{100 * result.current_accuracy:.1f} %",
          delta=f"{100 * (result.current_accuracy - result.dense_accuracy):+.1f} points vs dense")

table = result.table
change = (table["current_zero_pct"] - table["dense_zero_pct"]).abs()
moved = table.loc[change.idxmax()]
sentence = (f"Over the {current.count:,} test inputs, **{100 * dense.zero_fraction:.1f} %** of the dense model's hidden "
            f"activations are exactly zero")
if result.same:
    sentence += " (the current model is the dense one: prune it on the Prune page, or turn on k-WTA, to compare)."
else:
    what = f"current model ({wb.origin})" + (f" with k-WTA, k = {k}" if k is not None else "")
    sentence += (f"; for the {what} it is **{100 * current.zero_fraction:.1f} %**. "
                 f"The largest change is in **{moved['layer']}**: {moved['dense_zero_pct']:.1f} % → "
                 f"{moved['current_zero_pct']:.1f} %.")
sentence += (f" {current.never_active_units} of {current.units} hidden units never fire on any test input "
             f"(dense: {dense.never_active_units}).")
if k is not None:
    exact = ", ".join(f"{row.name} {100 * (1 - min(k, row.elements) / row.elements):.1f} %" for row in current.layers)
    sentence += f" With k = {k}, every input keeps exactly min(k, layer size) activations: zero share {exact} " \
                "when every kept value is non-zero."
st.markdown(sentence)

st.subheader("One input, layer by layer")
n = app_state.split_size(wb)
left, right = st.columns([1, 3])
with left:
    shown_index = min(int(stored["index"]), n - 1)
    app_state.follow_model("activations_index", {"act_index": shown_index})
    index = int(st.number_input(f"Test input (0 to {n - 1})", 0, n - 1, shown_index, step=1,
                                key="act_index", help="Which test input's activations the heatmap shows."))
    app_state.store_activations(index=app_state.kept_value(int(stored["index"]), index, n - 1))
    info = app_state.input_info(result, index, wb)
    if info.image is not None:
        st.image(info.image, width=180, clamp=True, caption=f"input {index}")
    elif app_state.dataset(wb).is_plane:
        x, y, names = app_state.split_points(wb)
        app_state.show_figure(figures.input_point(x, y, index, class_names=names), "activations_input", png=False)
    pred = f"dense predicts **{info.predicted_dense}**"
    if not result.same:
        pred += f", {result.label} predicts **{info.predicted_current}**"
    st.markdown(f"Class **{info.label}**; {pred}.")
with right:
    rows = app_state.input_activations(result, index, wb)
    app_state.show_figure(figures.activation_heatmaps(rows, title=f"Test input {index}"),
                          "activations_heatmap")
    st.caption("Each square is one unit (a fully connected layer's units folded into a grid, row by row) or one "
               "position of a conv channel map (channels tiled as small multiples). Grey squares are exactly 0; "
               "hover for the unit and its value.")

st.subheader("Every test input")
c1, c2 = st.columns([3, 2])
with c1:
    app_state.show_figure(figures.zero_share_bars(table, title="Exact zeros per layer"),
                          "activations_bars")
with c2:
    app_state.show_table(table, f"activations_{wb.name}", column_config={
        "dense_zero_pct": st.column_config.NumberColumn("dense zero (%)", format="%.2f"),
        "current_zero_pct": st.column_config.NumberColumn(f"{result.label} zero (%)", format="%.2f"),
        "dense_dead": st.column_config.NumberColumn("dense dead", help="Units zero on every test input."),
        "current_dead": st.column_config.NumberColumn("dead"),
        "dense_always_on": st.column_config.NumberColumn("dense always on", help="Units non-zero on every input."),
        "current_always_on": st.column_config.NumberColumn("always on"),
    })
    st.caption("A conv layer's unit is a channel: active on an input if any position of its map is non-zero.")

layers = [row.name for row in dense.layers]
layer = st.selectbox("Histogram of layer", layers, key="act_layer",
                     index=layers.index(stored["layer"]) if stored["layer"] in layers else len(layers) - 1)
app_state.store_activations(layer=layer)
hists = app_state.layer_histograms(result, layer, wb)
app_state.show_figure(figures.activation_histogram(hists, title=f"{layer}: activation values, test split"), "activations_histogram")

with st.expander("Zero share per class"):
    st.markdown("The share of exactly-zero activations over the test inputs of each class, per layer.")
    app_state.show_table(app_state.class_table(result, wb), f"activations_per_class_{wb.name}")
