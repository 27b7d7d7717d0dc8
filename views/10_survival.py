"""Survival maps: which connections two strategies (or two seeds) keep, and when each connection died."""

import streamlit as st

import app_state
from sparsity_viz import figures
from sparsity_viz.comparison import compare_masks
from sparsity_viz.connectivity import collapse_warnings, effective_sparsity, nominal_sparsity
from sparsity_viz.pruning import STRATEGIES
from sparsity_viz.recipes import finetune_lr, schedule_epochs
from sparsity_viz.strategy_lab import ScheduleConfig, SurvivalConfig

app_state.sidebar()
st.title("Survival maps")
st.markdown(
    "Prune the same trained model twice, with two strategies (or one strategy with two seeds), to the same sparsity, "
    "and colour every connection: **kept by both**, **only by A**, **only by B**, or by neither. The Jaccard overlap "
    "says how much the two agree; the diamonds show how much two *random* masks would share by chance. "
    "Below, a strategy that prunes while training lets you slide through time and see when each connection died."
)

wb = app_state.bench()
ds = app_state.dataset(wb)
names = list(STRATEGIES)
LEVELS = [50, 70, 80, 90, 95, 98, 99]
SETTINGS = {"a": "magnitude", "seed_a": 0, "b": "snip", "seed_b": 0, "level": 90, "layer": None, "sched": None,
            "epochs": None}  # this page's settings (kept, and in the URL)
s = app_state.page_settings("survival", SETTINGS, ranges={"seed_a": (0, 9), "seed_b": (0, 9), "epochs": (1, 30)},
                            choices={"a": names, "b": names, "level": LEVELS})
c1, c2, c3, c4, c5 = st.columns([3, 1, 3, 1, 3])
a = c1.selectbox("Strategy A", names, index=names.index(s["a"]), key="surv_a",
                 format_func=lambda n: app_state.strategy_label(n, wb.name))  # slow ones marked (measured)
seed_a = c2.number_input("Seed A", 0, 9, int(s["seed_a"]), key="surv_seed_a")
b = c3.selectbox("Strategy B", names, index=names.index(s["b"]), key="surv_b",
                 format_func=lambda n: app_state.strategy_label(n, wb.name))  # slow ones marked (measured)
seed_b = c4.number_input("Seed B", 0, 9, int(s["seed_b"]), key="surv_seed_b",
                         help="Pick the same strategy as A with another seed to see how much a seed changes.")
level = c5.select_slider("Sparsity (% pruned)", LEVELS, value=s["level"], key="surv_sparsity")
app_state.keep_page_settings("survival", SETTINGS, a=a, seed_a=int(seed_a), b=b, seed_b=int(seed_b), level=level)

config = SurvivalConfig((a, int(seed_a)), (b, int(seed_b)), level / 100)
result = app_state.lab_quick(config, lambda: compare_masks(wb.dense, config.a, config.b, config.sparsity,
                                                           batch=app_state.lab_batch()), text="Pruning twice...")
label_a, label_b = f"A: {a} (seed {seed_a})", f"B: {b} (seed {seed_b})"

m = st.columns(4)
for col, (label, masks) in zip((m[:2], m[2:]), ((label_a, result["masks_a"]), (label_b, result["masks_b"]))):
    nominal, eff = nominal_sparsity(masks), effective_sparsity(masks)
    col[0].metric(f"{label}: nominal sparsity", f"{100 * nominal:.1f} %")
    col[1].metric("effective sparsity", f"{100 * eff:.1f} %", delta=f"{100 * (eff - nominal):+.1f} points",
                  delta_color="off", help="Weights with no path from the input to the output count as removed.")
    for w in collapse_warnings(masks):
        st.warning(f"{label}: {w}")

layers = list(result["categories"])
layer = st.selectbox("Layer", layers, index=layers.index(s["layer"]) if s["layer"] in layers else 0, key="surv_layer",
                     format_func=lambda n: n.removesuffix(".weight"))
app_state.keep_page_settings("survival", SETTINGS, layer=layer)
heat = figures.survival_heatmap(result["categories"][layer], label_a="A", label_b="B",
                                title=f"{layer.removesuffix('.weight')}: {label_a} vs {label_b}")
heat.update_layout(height=620)
app_state.show_figure(heat, "survival_heatmap")
left, right = st.columns([3, 2])
with left:
    bars = figures.jaccard_bars(result["table"], title=f"Jaccard overlap per layer<br><sup>at {level} % sparsity</sup>")
    bars.update_layout(height=500)
    app_state.show_figure(bars, "survival_jaccard")
with right:
    st.markdown("**Connections per layer**")
    app_state.show_table(result["table"], f"survival_{wb.name}", column_config={
        "only_a": st.column_config.NumberColumn("only A"), "only_b": st.column_config.NumberColumn("only B"),
        "jaccard": st.column_config.NumberColumn("Jaccard", format="%.3f")})

if "fanout" in result:
    st.subheader("Input-pixel fan-out of each")
    st.markdown("How many surviving connections leave each pixel under A and under B (grey: none).")
    f1, f2 = st.columns(2)
    top = float(max(result["fanout"]["a"].max(), result["fanout"]["b"].max()))  # one colour scale for both
    for col, key, label in ((f1, "a", label_a), (f2, "b", label_b)):
        fan = figures.fanout_map(result["fanout"][key], title=f"{label}")
        fan.update_traces(zmax=top, selector=dict(name="fan-out"))
        fan.update_xaxes(constrain="domain").update_yaxes(constrain="domain")
        fan.update_layout(height=500)
        with col:
            app_state.show_figure(fan, f"survival_fanout_{key}")

st.subheader("When did each connection die?")
st.markdown(
    "Gradual (AGP), iterative (IMP) and dynamic (SET, RigL) strategies change the mask *during* training. Train one "
    "from this model to the sparsity above, then drag the step slider: dead connections are coloured by the step they "
    "died, alive ones are black, and for SET / RigL the ones that **regrew** are vermilion."
)
schedulers = app_state.scheduled_strategy_names()
s1, s2 = st.columns([3, 1])
sched = s1.selectbox("Strategy over time", schedulers, format_func=lambda n: STRATEGIES[n].label, key="surv_sched",
                     index=schedulers.index(s["sched"]) if s["sched"] in schedulers else 0)
epochs = s2.number_input("Epochs", 1, 30, int(s["epochs"] or schedule_epochs(wb.dataset)), key="surv_epochs",
                         help="SET / RigL update the mask every 50 steps: small datasets need more epochs.")
app_state.keep_page_settings("survival", SETTINGS, sched=sched,
                             epochs=None if epochs == schedule_epochs(wb.dataset) else int(epochs))
scfg = ScheduleConfig(sched, level / 100, int(epochs), finetune_lr(wb.card))
run = app_state.lab_result(scfg)
slow = wb.name == "lenet5"
if slow:
    st.warning("LeNet-5 is a convolutional network, slow to train on a CPU: its schedule waits for the button.")
if run is None:
    failed = app_state.lab_failure(scfg)  # diverged before: shown, and run again only on a click
    note = st.empty()
    if failed:
        note.error(failed)
    if st.button("Train", key="surv_train", type="primary", icon=":material/play_arrow:") or not (slow or failed):
        note.empty()
        run = app_state.schedule_run(scfg)
if run is not None:
    if run.stopped:
        st.warning("Stopped early: the timeline shows the steps finished so far.")
    steps = [0, *[s for s in run.timeline.steps if s > 0]]
    step = st.select_slider("Pruning step (optimizer steps; for iterative: rounds)", steps, value=steps[-1],
                            key="surv_step")
    state = figures.timeline_state(run.timeline, step)
    if layer in state:
        death = figures.death_time_heatmap(state[layer], step=step, last_step=steps[-1],
                                           title=f"{layer.removesuffix('.weight')} under {STRATEGIES[sched].label}")
        death.update_layout(height=560)
        app_state.show_figure(death, "survival_death")
    events = run.timeline.frame()
    with st.expander("Deaths and regrowths per step"):
        app_state.show_table(events, f"survival_timeline_{sched}")
