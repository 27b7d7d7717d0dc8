"""Compare: accuracy vs sparsity for any set of strategies (mean ± std over seeds), and per-layer profiles."""

import streamlit as st

import app_state
from sparsity_viz import figures
from sparsity_viz.comparison import strategy_profiles
from sparsity_viz.experiments import summarize
from sparsity_viz.pruning import STRATEGIES
from sparsity_viz.strategy_lab import CompareConfig, ProfileConfig

app_state.sidebar()
st.title("Compare strategies")
st.markdown(
    "Every point prunes the trained model afresh, one-shot, to one sparsity and measures test accuracy; the band is "
    "mean ± std over seeds. The dotted line is the dense model and **Random** the baseline a real strategy should "
    "beat (near chance, at the highest sparsities, it may not). "
    "Add fine-tuning epochs to see how much accuracy retraining wins back (dashed = before, solid = after), and look "
    "at the bar chart below: strategies that remove the same share of weights can hit very different layers."
)

wb = app_state.bench()
names = list(STRATEGIES)
LEVELS, AXES = [0, 10, 30, 50, 70, 80, 90, 95, 98, 99, 99.5], ["sparsity", "compression"]
PROFILE_LEVELS = [50, 70, 80, 90, 95, 98, 99]
SETTINGS = {"strategies": ["magnitude", "global_magnitude", "snip", "erdos_renyi"], "random": True,
            "levels": [0, 50, 70, 80, 90, 95, 98, 99], "seeds": 3, "ft": 0, "axis": "sparsity",
            "profile": 90}  # this page's settings (kept, and in the URL)
s = app_state.page_settings("compare", SETTINGS, ranges={"seeds": (1, 5), "ft": (0, 3)},
                            choices={"strategies": names, "levels": LEVELS, "axis": AXES, "profile": PROFILE_LEVELS})
c1, c2 = st.columns([3, 1])
chosen = c1.multiselect("Strategies", names, default=s["strategies"],
                        format_func=lambda n: app_state.strategy_label(n, wb.name), key="compare_strategies")
random_base = c2.checkbox("Random baseline", value=bool(s["random"]), key="compare_random",
                          help="Adds random pruning: the baseline a strategy should beat.")
SEED_FREE = ", ".join(c.label for c in STRATEGIES.values() if not c.seeded and c.kind == "one_shot")
c3, c4, c5 = st.columns([3, 1, 1])
levels_pct = c3.multiselect("Sparsity levels (%)", LEVELS, default=s["levels"], key="compare_levels")
seeds = c4.number_input("Seeds", 1, 5, int(s["seeds"]), key="compare_seeds",
                        help=f"Random and data-driven strategies differ per seed; the band is mean ± std. "
                             f"Seed-free strategies ({SEED_FREE}) are computed once and copied to the other seeds "
                             "unless the point fine-tunes.")
ft = c5.number_input("Fine-tune epochs", 0, 3, int(s["ft"]), key="compare_ft",
                     help="0 = one-shot only. > 0 adds fine-tuned curves (much slower: every point trains) and "
                          "runs the scheduled strategies, which prune while training, with this budget.")
x_axis = st.radio("x-axis", AXES, index=AXES.index(s["axis"]), horizontal=True, key="compare_axis",
                  format_func=lambda a: {"sparsity": "sparsity (% pruned)", "compression": "compression ratio (×, log)"}[a])

app_state.keep_page_settings("compare", SETTINGS, strategies=list(chosen), random=bool(random_base),
                             levels=list(levels_pct), seeds=int(seeds), ft=int(ft), axis=x_axis)
place = app_state.sweep_place("compare")
config = CompareConfig(tuple(chosen), tuple(sorted(float(v) / 100 for v in levels_pct)), int(seeds),
                       int(ft), bool(random_base))
slow = [f"{STRATEGIES[s].label} is {note}" for s in chosen if (note := app_state.slow_note(s, wb.name))]
expensive = bool(ft) or bool(slow) or wb.name == "lenet5" or seeds > 3
if slow or wb.name == "lenet5":
    st.caption("Slower settings: " + "; ".join(slow + (["LeNet-5, a convolutional network, evaluates slowly"] if wb.name == "lenet5" else [])) + ".")
frame = app_state.compare_result(config)  # this session's, or read back from the results store
if not chosen or not levels_pct:
    st.info("Choose at least one strategy and one sparsity level.")
elif frame is None or frame.attrs.get("cancelled"):
    pressed = st.button("Compute" if frame is None else "Compute the rest", key="compare_compute", type="primary",
                        icon=":material/play_arrow:")
    if pressed or (frame is None and not expensive):  # quick defaults run at once
        frame = app_state.compare_sweep_run(config, place)

if frame is not None and frame.attrs.get("cancelled"):
    st.warning(f"Stopped: showing the {len(frame)} points finished so far. Press **Compute the rest** to finish.")
if frame is not None and len(frame):
    fig = figures.accuracy_curves(frame, x_axis=x_axis, band="std", dense_accuracy=frame.attrs.get("dense_accuracy"),
                                  labels={n: c.label for n, c in STRATEGIES.items()}, title=f"{wb.name} on {wb.dataset}: accuracy after pruning"
                                                                                   "<br><sup>mean ± std over seeds</sup>")
    fig.update_layout(height=560)
    app_state.show_figure(fig, "compare_curves")
    app_state.show_sweep_notes(frame)
    summary = summarize(frame)
    collapsed = summary[summary["collapsed"]]
    if len(collapsed):
        where = ", ".join(f"{s} at {100 * v:g} %" for s, v in zip(collapsed["strategy"], collapsed["sparsity"]))
        st.warning(f"Layer collapse (some layer lost every weight, so no path from input to output is left): {where}.")
    # every accuracy and sparsity in %, named so in the CSV too: min and max had stayed fractions next to a mean
    # in %, under the same names as the Curves CSV's fractions (an audit)
    pct = ("sparsity", "mean", "std", "min", "max", "effective_sparsity")
    table = summary.assign(**{c: 100 * summary[c] for c in pct}).rename(columns={c: f"{c}_pct" for c in pct})
    with st.expander("The numbers (mean ± std over seeds; effective sparsity counts weights on no input → output path)"):
        app_state.show_run_table(table, f"compare_{wb.name}", frame, column_config={
            "sparsity_pct": st.column_config.NumberColumn("sparsity (%)", format="%.1f"),
            "mean_pct": st.column_config.NumberColumn("accuracy (%)", format="%.2f"),
            "std_pct": st.column_config.NumberColumn("± std", format="%.2f"),
            "min_pct": st.column_config.NumberColumn("min (%)", format="%.2f"),
            "max_pct": st.column_config.NumberColumn("max (%)", format="%.2f"),
            "effective_sparsity_pct": st.column_config.NumberColumn("effective sparsity (%)", format="%.2f"),
            "compression": st.column_config.NumberColumn("compression (×)", format="%.1f"),
        })

st.subheader("Which layers does each strategy hit hardest?")
p1, _ = st.columns([2, 3])
profile_level = p1.select_slider("Profile at sparsity (%)", PROFILE_LEVELS, value=s["profile"],
                                 key="compare_profile_level")
app_state.keep_page_settings("compare", SETTINGS, profile=profile_level)
profile_strategies = tuple(dict.fromkeys([*chosen, *(["random"] if random_base else [])]))
if profile_strategies:
    pcfg = ProfileConfig(profile_strategies, profile_level / 100)
    profile = app_state.lab_quick(pcfg, lambda: strategy_profiles(wb.dense, list(profile_strategies), pcfg.sparsity,
                                                                  batch=app_state.lab_batch()),
                                  text="Pruning once per strategy...")
    pfig = figures.sparsity_profile_chart(
        profile, title=f"Share of each layer pruned at {profile_level} % overall sparsity")
    pfig.update_layout(height=500)
    app_state.show_figure(pfig, "compare_profile")
