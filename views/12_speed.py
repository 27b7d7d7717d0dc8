"""Speed & memory: the current pruned model timed in every sparse format against dense, bytes, crossovers, the plan."""

import streamlit as st

import app_state
from sparsity_viz import figures
from sparsity_viz.backend import speed_findings
from sparsity_viz.backend.bench import STABLE_IQR
from sparsity_viz.backend.speed_report import SpeedSettings, ratio_intervals, unsettled, unsettled_points
from sparsity_viz.models import prunable_layers

app_state.sidebar()
st.title("Speed & memory")
st.markdown(
    "Zeros only save time if the computer skips them. Press **Measure** to time the current model in each sparse "
    "format (CSR stores just the surviving weights and their positions) against the dense model, at several batch "
    "sizes. Sparse formats pay for every index they read, so they only win past a *crossover* sparsity, and "
    "the dispatcher keeps a layer dense wherever sparse loses."
)

for level, text in app_state.backend_notices():
    app_state.show_message(level, text)

wb = app_state.bench()
dev = app_state.device()
cuda = dev.startswith("cuda")
format_options = app_state.speed_format_options(cuda)
linear = [(n, m) for n, m in prunable_layers(wb.current) if hasattr(m, "in_features")]

stored = app_state.stored_speed()
c1, c2, c3, c5, c4 = st.columns([2, 3, 1, 1, 2])
batches = c1.multiselect("Batch sizes", [1, 8, 32, 128, 256, 1024], default=stored["batches"], key="speed_batches",
                         help="Samples per forward call. Batch 1 is one user at a time; 256 is how accuracy is evaluated.")
formats = c2.multiselect("Formats", format_options,
                         default=[f for f in stored["formats"] if f in format_options],
                         format_func=figures.format_label, key="speed_formats",
                         help="'auto' is the compiled model: the fastest format per layer. Block CSR is slow on "
                              "unstructured masks (seconds at batch 1). The int8 formats store each weight as an "
                              "8-bit code with one scale per output row (MLPs only): CSR on the int8 kernel, and "
                              "dense int8 references from torch (weight-only, and dynamic that also rounds inputs).")
repeats = c3.number_input("Rounds", 3, 50, int(stored["repeats"]), key="speed_repeats",
                          help="At least this many rounds; each round times every format once, one after the "
                               f"other. More rounds follow until each ratio to dense has its interquartile range "
                               f"within ±{100 * STABLE_IQR:.0f} % of its median, or the time cap is reached.")
time_cap = c5.number_input("Time cap (s)", 1.0, 60.0, float(stored["time_cap_s"]), step=1.0, key="speed_time_cap",
                           help="Per batch size: stop repeating after this long even if a ratio has not settled "
                                "(the page then says which). Each point of the crossover curve gets a third of it.")
layer_names = [n for n, _ in linear]
layer = c4.selectbox("Layer for the crossover curve", layer_names, key="speed_layer",
                     index=layer_names.index(stored["layer"]) if stored.get("layer") in layer_names else 0,
                     format_func=lambda n: f"{n} ({dict(linear)[n].out_features}x{dict(linear)[n].in_features})",
                     help="A random layer of this shape is timed over a sparsity sweep.",
                     disabled=not layer_names) or ""  # no Linear layer (a conv-only upload): measured, no curve
formats = tuple(["dense", *[f for f in format_options if f in formats and f != "dense"]])  # dense is the reference
batches = tuple(sorted(int(b) for b in batches))
app_state.store_speed(batches=list(batches), formats=list(formats), repeats=int(repeats), layer=layer,
                      time_cap_s=float(time_cap))

settings = SpeedSettings(batches, formats, int(repeats), dev, layer, float(time_cap))
key = app_state.speed_key(wb, settings) if batches else None
result = app_state.speed_result(key) if key else None
building = app_state.native_kernel_building()
st.caption(f"Current model: {wb.origin} · {100 * wb.sparsity:.1f} % of weights pruned · measured on {dev}, "
           "with the app's thread setting. Formats are timed in interleaved rounds, so a busy machine slows all "
           f"alike; each ratio to dense is repeated until its interquartile range is within ±{100 * STABLE_IQR:.0f} % "
           "of its median, or the time cap.")
if building:
    app_state.kernel_notice("The sparse C++ kernel is being built in the background (once per machine, about a "
                            "minute): **Measure** is ready as soon as it is.")
if st.button("Measure", key="speed_measure", type="primary", icon=":material/timer:", disabled=key is None or building):
    result = app_state.measure(key, wb)

if result is None:
    st.info("Choose batch sizes and formats, then press **Measure** (a few seconds). Results are kept per model, "
            "masks and settings for this session.")
    st.stop()

bench = result.bench
plans = result.plans

st.subheader("Latency: sparse formats against dense")
app_state.show_figure(figures.latency_bars(bench, title=f"{wb.name}: time per forward call"), "speed_latency")
lines = speed_findings.findings(result, batches)
st.markdown("\n".join(f"- {t}" for t in lines))

not_settled = unsettled(bench)
if not_settled:
    app_state.show_message("warning", f"Hit the {settings.time_cap_s:g} s time cap before the ratio settled within "
                                      f"±{100 * settings.rel_iqr:.0f} % for {', '.join(not_settled)}: its interval "
                                      "below is wider. Measure again on a quieter machine, or raise the time cap.")
with st.expander("How sure is each ratio? (interquartile range over the rounds)", expanded=bool(not_settled)):
    app_state.show_table(ratio_intervals(bench), f"speed_intervals_{wb.name}", column_config={
        "ratio_dense": st.column_config.NumberColumn("× dense (median)", format="%.2f"),
        "ratio_q25": st.column_config.NumberColumn("lower quartile", format="%.2f"),
        "ratio_q75": st.column_config.NumberColumn("upper quartile", format="%.2f"),
        "stable": st.column_config.CheckboxColumn(f"within ±{100 * settings.rel_iqr:.0f} %"),
        "capped": st.column_config.CheckboxColumn("stopped by the time cap"),
    })

st.subheader("Which format did each layer get, and why?")
plan_batch = st.selectbox("Plan for batch size", list(plans), index=len(plans) - 1, key="speed_plan_batch",
                          help="The dispatcher times every candidate format per layer at this batch size.")
plan = plans[plan_batch]
plan_table = plan["table"].copy()
plan_table["density"] = 100 * plan_table["density"]
if "input_zeros" in plan_table:
    plan_table["input_zeros"] = 100 * plan_table["input_zeros"]
app_state.show_table(plan_table, f"speed_plan_{wb.name}_b{plan_batch}", column_config={
    "density": st.column_config.NumberColumn("weights left (%)", format="%.1f"),
    "input_zeros": st.column_config.NumberColumn("inputs exactly zero (%)", format="%.1f",
                                                 help="Share of the layer's input activations that are exactly 0 "
                                                      "on the test inputs (activation-sparse kernels skip them)."),
    "compiled_shape": st.column_config.TextColumn("after compaction", help="Dead neurons removed first."),
})
with st.expander("The dispatcher's explanation (explain())"):
    st.code(plan["explain"], language=None)

st.subheader("Memory: bytes of weights per format")
saved, _ = app_state.sparse_checkpoint(wb)
app_state.show_figure(figures.bytes_bars(bench, checkpoint_bytes=saved.nbytes), "speed_bytes")
st.caption(f"Sparse checkpoint file (all tensors, layout included): {figures.human_bytes(saved.nbytes)} vs "
           f"{figures.human_bytes(saved.dense_nbytes)} dense ({saved.nbytes / saved.dense_nbytes:.2f}×). "
           "Download it on *Share & export*.")

st.subheader("When does sparse start to win?")
if not result.layer:
    st.info("This model has no fully connected layer, whose shape the crossover curve sweeps: no curve.")
else:
    rl, sl = result.layer, result.shape
    curve_batch = st.radio("Batch size", list(batches), index=len(batches) - 1, horizontal=True,
                           key="speed_curve_batch")
    sparsity_now = speed_findings.layer_sparsity(wb.current, rl)
    fig = figures.speedup_curve_figure(result.curves, result.crossovers, batch=curve_batch,
                                       mark_sparsity=sparsity_now,
                                       title=f"Random {sl[0]}x{sl[1]} layer ({rl}'s shape), batch {curve_batch}")
    app_state.show_figure(fig, "speed_curves")
    bad, points = unsettled_points(result.curves, curve_batch)
    st.caption(f"At batch {curve_batch}: " + speed_findings.crossover_words(result.crossovers, curve_batch)
               + f". {rl} is {100 * sparsity_now:.0f} % sparse now. "
               + (f"{bad} of these {points} points hit the time cap before their ratio settled within "
                  f"±{100 * settings.rel_iqr:.0f} %: read them as rough." if bad else
                  f"Every point's ratio settled within ±{100 * settings.rel_iqr:.0f} %." if points else ""))

with st.expander("All measurements (table)"):
    app_state.show_table(bench, f"speed_{wb.name}")
