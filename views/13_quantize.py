"""Quantize: fewer bits per weight on the current (pruned) model; zeros created, sizes, accuracy by sparsity x bits."""

import streamlit as st

import app_state
from sparsity_viz import figures
from sparsity_viz.models import prunable_parameters

app_state.sidebar()
st.title("Quantize")
st.markdown(
    "Quantization stores every weight in fewer bits: each one is replaced by one of a few **levels** (the vertical "
    "lines in the histogram). The uniform and ternary methods round small weights to the zero level, creating exact "
    "zeros on top of pruning; k-means weight sharing (Deep Compression, Han et al. 2016) keeps zero for the pruned "
    "weights and lets the survivors share the other levels. Move the **bits** slider to quantize the current model "
    "(pruned on the Prune page, if you did) and watch accuracy, zeros and bytes follow."
)

wb = app_state.bench()
stored = app_state.stored_quant(list(prunable_parameters(wb.current)))
methods = app_state.quantizers()
names = list(methods)

c1, c2, c3 = st.columns([2, 2, 3])
method = c1.selectbox("Method", names, index=names.index(stored["method"]) if stored["method"] in names else 0,
                      format_func=lambda n: methods[n].label, key="quant_method",
                      help="Every method in the library's quantizer registry.")
cls = methods[method]
GRAN = {"tensor": "per tensor", "channel": "per channel"}
if cls.per_channel_ok:
    granularity = c2.radio("Granularity", list(GRAN), index=int(bool(stored["per_channel"])), format_func=GRAN.get,
                           key="quant_granularity", horizontal=True,
                           help="Per channel: every output channel (row) gets its own scale and levels.")
else:
    granularity = c2.radio("Granularity", list(GRAN), index=0, format_func=GRAN.get, key="quant_granularity_fixed",
                           horizontal=True, disabled=True, help=f"{cls.label} has one codebook per tensor.")
per_channel = granularity == "channel" and cls.per_channel_ok
if cls.min_bits < cls.max_bits:
    bits = c3.slider("Bits per weight", cls.min_bits, cls.max_bits,
                     value=min(max(int(stored["bits"]), cls.min_bits), cls.max_bits), step=1, key="quant_bits",
                     help="2^bits levels per tensor (or per channel).")
else:
    bits = cls.min_bits
    c3.markdown(f"**{bits} bits per weight**: {cls.label} has one bit width.")
app_state.store_quant(method=method, per_channel=per_channel,
                      **({"bits": int(bits)} if cls.min_bits < cls.max_bits else {}))  # ternary keeps the last width

try:
    result = app_state.quantize_current(app_state.QuantizeConfig(method, int(bits), per_channel))
except ValueError as exc:
    st.error(f"Could not quantize the current model: {exc}")
    st.stop()

weights, created = result.weights, result.zeros_created
acc0, acc1 = result.accuracy_before, result.accuracy_after
m1, m2, m3, m4 = st.columns(4)
m1.metric("Accuracy after quantization", f"{100 * acc1:.1f} %", delta=f"{100 * (acc1 - acc0):+.1f} points")
m2.metric("Accuracy before", f"{100 * acc0:.1f} %")
m3.metric("Zeros created", f"{created:,}", delta=f"{100 * created / weights:.2f} % of weights", delta_color="off",
          delta_arrow="off")
m4.metric("Weights exactly zero", f"{100 * result.zeros_after / weights:.1f} %",
          delta=f"from {100 * result.zeros_before / weights:.1f} %", delta_color="off", delta_arrow="off")
st.markdown(app_state.quantize_summary(result, wb.origin))

left, right = st.columns([3, 2])
with right:
    st.subheader("Zeros per layer")
    table = result.report.copy()
    table["created (%)"] = 100 * table["zeros_created"] / table["weights"]
    app_state.show_table(table, f"quantize_layers_{wb.name}", column_config={
        "zeros_before": st.column_config.NumberColumn("zero before", help="Pruned or exactly zero already."),
        "zeros_after": st.column_config.NumberColumn("zero after"),
        "zeros_created": st.column_config.NumberColumn("zeros created"),
        "created (%)": st.column_config.NumberColumn(format="%.2f"),
        "levels": st.column_config.NumberColumn("distinct values", help="Distinct dequantized values in the layer."),
    })
with left:
    layers = list(result.quantized.tensors)
    h1, h2 = st.columns([2, 1])
    layer = h1.selectbox("Histogram of layer", layers, key="quant_layer",
                         index=layers.index(stored["layer"]) if stored["layer"] in layers else 0)
    app_state.store_quant(layer=layer)
    weight, qt, mask = app_state.layer_inputs(result, layer)
    channel = None
    if per_channel:
        channel = int(h2.number_input("Output channel", 0, int(weight.shape[0]) - 1, 0, key="quant_channel",
                                      help="Per channel, each row has its own levels: the histogram shows one row."))
    fig = figures.quantization_histogram(
        weight, qt, mask, channel=channel,
        title=f"{layer}" + (f", channel {channel}" if channel is not None else "") + f": {bits}-bit levels")
    app_state.show_figure(fig, "quantize_histogram")

st.subheader("How small does it get?")
sizes = app_state.size_table_of(result)
app_state.show_figure(figures.size_waterfall(sizes, bits=int(bits), title=f"{wb.name}: bytes per stage"),
                      "quantize_sizes")
st.caption(app_state.size_caption(sizes, int(bits)))
with st.expander("Bytes per layer"):
    app_state.show_table(sizes, f"quantize_sizes_{wb.name}")
if st.button("Prepare the compressed checkpoint", key="quant_ckpt", icon=":material/compress:",
             help="Huffman-coded codes, codebooks and relative indices in one file; "
                  "sparsity_viz.compression.load_compressed reads it back."):
    app_state.compressed_checkpoint_download(result, f"{wb.name}_{method}_{bits}bit_compressed.safetensors")

st.subheader("Accuracy over sparsity × bits")
st.markdown("Each cell prunes the **dense** model afresh to a sparsity, quantizes it with the method above and "
            "measures test accuracy; the fp32 column is the pruned model unquantized.")
strategies = app_state.grid_strategies()
bit_options = list(range(cls.min_bits, cls.max_bits + 1))
g1, g2, g3 = st.columns([3, 3, 2])
grid_sparsity = g1.multiselect("Sparsity (%)", list(app_state.GRID_SPARSITY_OPTIONS), key="quant_grid_sparsity",
                               default=[s for s in stored["grid_sparsities"] if s in app_state.GRID_SPARSITY_OPTIONS])
grid_bits = g2.multiselect("Bits", bit_options, key="quant_grid_bits",
                           default=[b for b in stored["grid_bits"] if b in bit_options] or bit_options)
strategy_names = list(strategies)
strategy = g3.selectbox("Pruned with", strategy_names, format_func=strategies.get, key="quant_grid_strategy",
                        index=strategy_names.index(stored["grid_strategy"]) if stored["grid_strategy"] in strategies
                        else 0, help="A one-shot strategy from the registry prunes the dense model to each sparsity.")
app_state.store_quant(grid_sparsities=list(grid_sparsity), grid_bits=list(grid_bits), grid_strategy=strategy)
grid_cfg = app_state.QuantGridConfig(method, per_channel, strategy, tuple(sorted(s / 100 for s in grid_sparsity)),
                                     tuple(sorted(int(b) for b in grid_bits)))
grid = app_state.grid_result(grid_cfg)
if not grid_sparsity or not grid_bits:
    st.info("Choose at least one sparsity and one bit width.")
elif grid is None or grid.attrs.get("cancelled"):
    if st.button("Compute the grid" if grid is None else "Compute again", key="quant_grid_compute", type="primary",
                 icon=":material/play_arrow:"):
        app_state.grid_run(grid_cfg)
if grid is not None and grid.attrs.get("cancelled"):
    st.warning(f"Stopped: showing the {len(grid)} cells finished so far.")
if grid is not None and len(grid):
    dense_acc, reading = app_state.grid_reading(grid)
    app_state.show_figure(figures.quantization_grid(grid, dense_accuracy=dense_acc,
                                                    title=f"{wb.name}: {methods[method].label}, test accuracy (%)"),
                          "quantize_grid")
    st.markdown(reading)
    with st.expander("The numbers"):
        app_state.show_table(grid.assign(sparsity=100 * grid["sparsity"], accuracy=100 * grid["accuracy"]),
                             f"quantize_grid_{wb.name}", column_config={
                                 "sparsity": st.column_config.NumberColumn("sparsity (%)"),
                                 "bits": st.column_config.NumberColumn("bits (32 = fp32)"),
                                 "accuracy": st.column_config.NumberColumn("accuracy (%)", format="%.2f"),
                                 "zeros": st.column_config.NumberColumn("weights exactly zero"),
                             })
