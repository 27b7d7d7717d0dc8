"""Curves: accuracy against sparsity for chosen strategies, with dense and random baselines, cached and downloadable."""

import streamlit as st

import app_state
from sparsity_viz import figures
from sparsity_viz.pruning import STRATEGIES
from sparsity_viz.session import CurvesConfig

app_state.sidebar()
st.title("Curves: how much can we prune?")
st.markdown(
    "Each point prunes the dense model afresh to one sparsity level and measures test accuracy. The dotted line is the "
    "dense model, **Random** the baseline a real strategy should beat (where accuracy falls toward chance, at the "
    "highest sparsities, it may not). Switch the x-axis to *compression* "
    "(1 / share of weights left, log scale) to read '10× smaller' directly; add fine-tuning epochs to see the recovery."
)


wb = app_state.bench()
ds = app_state.dataset(wb)
names = list(STRATEGIES)
LEVELS, AXES = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5], ["sparsity", "compression"]
SETTINGS = {"strategies": ["magnitude", "global_magnitude"], "random": True,
            "levels": [0, 30, 50, 70, 80, 90, 95, 98, 99], "seeds": 3, "ft": 0, "axis": "sparsity"}  # kept, in the URL
s = app_state.page_settings("curves", SETTINGS, ranges={"seeds": (1, 5), "ft": (0, 5)},
                            choices={"strategies": names, "levels": LEVELS, "axis": AXES})
c1, c2 = st.columns([3, 2])
chosen = c1.multiselect("Strategies", names, default=s["strategies"],
                        format_func=lambda n: app_state.strategy_label(n, wb.name), key="curves_strategies")
random_base = c2.checkbox("Add the random baseline", value=bool(s["random"]), key="curves_random")
SEED_FREE = ", ".join(c.label for c in STRATEGIES.values() if not c.seeded and c.kind == "one_shot")
c3, c4, c5 = st.columns(3)
levels_pct = c3.multiselect("Sparsity levels (%)", LEVELS, default=s["levels"], key="curves_levels")
seeds = c4.number_input("Seeds", 1, 5, int(s["seeds"]), key="curves_seeds",
                        help=f"The band is mean ± std over seeds. Strategies whose masks do not depend on the seed "
                             f"({SEED_FREE}) are computed once and copied to the other seeds (column `replicated`) "
                             "unless the point fine-tunes (its shuffles differ per seed).")
ft = c5.number_input("Fine-tune epochs per point", 0, 5, int(s["ft"]), key="curves_ft",
                     help="0 = one-shot pruning. Fine-tuning makes each point slower. Scheduled strategies "
                          "(they prune while training) use this as their training budget (IMP: per round) and "
                          "are left out at 0.")
x_axis = st.radio("x-axis", AXES, index=AXES.index(s["axis"]), horizontal=True, key="curves_axis",
                  format_func=lambda a: {"sparsity": "sparsity (% pruned)", "compression": "compression (×, log scale)"}[a])

app_state.keep_page_settings("curves", SETTINGS, strategies=list(chosen), random=bool(random_base),
                             levels=list(levels_pct), seeds=int(seeds), ft=int(ft), axis=x_axis)
strategies = tuple(dict.fromkeys([*chosen, *(["random"] if random_base else [])]))
config = CurvesConfig(strategies, tuple(sorted(float(v) / 100 for v in levels_pct)), int(seeds), int(ft), "layer")
place = app_state.sweep_place("curves")
frame = app_state.curves_result(config)  # shared once complete; finished points of a stopped run
if frame is None or frame.attrs.get("cancelled"):
    if st.button("Compute curves" if frame is None else "Compute the rest", key="curves_compute", type="primary",
                 icon=":material/play_arrow:", disabled=not strategies or not levels_pct):
        app_state.curves_run(config, place)  # reruns the page; returns only after saying why it failed
        frame = app_state.curves_result(config)
if frame is not None and frame.attrs.get("cancelled"):
    st.warning(f"Showing the {len(frame)} points finished so far (a run was stopped, or is still running in "
               "another session). Press **Compute the rest** to finish.")
if frame is None:
    st.info("Choose strategies and levels, then press **Compute curves**. Results are kept per configuration, "
            "on disk too: a reload shows them again, a stopped run resumes where it stopped.")
else:
    fig = figures.accuracy_curves(frame, x_axis=x_axis, band="std", dense_accuracy=frame.attrs.get("dense_accuracy"),
                                  labels={n: c.label for n, c in STRATEGIES.items()},
                                  title=f"{wb.name} on {ds.name}: accuracy after pruning<br><sup>mean ± std "
                                        f"over {frame['seed'].nunique()} seeds</sup>")
    fig.update_layout(height=520)
    app_state.show_figure(fig, "curves")
    app_state.show_sweep_notes(frame)
    app_state.show_run_table(frame, f"curves_{wb.name}", frame)
