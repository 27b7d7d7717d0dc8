"""Layer sensitivity: prune one layer at a time (the rest dense), accuracy per layer and level; guided targets."""

import streamlit as st

import app_state
from sparsity_viz import figures

app_state.sidebar()
st.title("Layer sensitivity")
st.markdown(
    "Not every layer minds pruning equally. A **sensitivity scan** prunes **one layer at a time** to each level, "
    "keeps every other layer dense, and measures test accuracy (Han et al. 2015 did this to choose per-layer "
    "pruning rates; Distiller and NNI automate it). Layers whose line stays flat can be pruned hard; steep ones "
    "should be spared. The scan runs on the **dense** model; your current (pruned) model is left as it is."
)

wb = app_state.bench()
stored = app_state.stored_sensitivity()
strategies = app_state.scan_strategies()
names = list(strategies)

c1, c2, c3 = st.columns([2, 3, 1])
strategy = c1.selectbox("Prune each layer with", names, format_func=strategies.get, key="sens_strategy",
                        index=names.index(stored["strategy"]) if stored["strategy"] in names else 0,
                        help="A one-shot registry strategy with a per-layer scope: it ranks each layer once, and "
                             "every level is a cut of that ranking.")
levels = c2.multiselect("Levels (% of the layer's weights pruned)", list(app_state.LEVEL_OPTIONS), key="sens_levels",
                        default=[v for v in stored["levels"] if v in app_state.LEVEL_OPTIONS])
seeds = int(c3.number_input("Seeds", 1, 5, int(stored["seeds"]), step=1, key="sens_seeds",
                            help="Seeds 0..n-1 of the strategy: random and data-driven strategies differ per seed "
                                 "(a mean ± std band); magnitude gives the same mask for every seed."))
app_state.store_sensitivity(strategy=strategy, levels=list(levels), seeds=seeds)
cfg = app_state.ScanConfig(strategy, tuple(sorted(v / 100 for v in levels)), tuple(range(seeds)))
scan = app_state.scan_result(cfg)

if not levels:
    st.info("Choose at least one level to scan.")
elif scan is None or scan.attrs.get("cancelled"):
    if scan is None:
        st.info(f"Press **Scan** to prune each layer of {wb.name} on its own ({cfg.describe()}).")
    if st.button("Scan" if scan is None else "Scan again", key="sens_scan_run", type="primary",
                 icon=":material/play_arrow:"):
        app_state.scan_run(cfg)
if scan is not None and scan.attrs.get("cancelled"):
    st.warning(f"Stopped: showing the {len(scan)} rows finished so far.")

if scan is not None and len(scan):
    dense = scan.attrs["dense_accuracy"]
    app_state.show_figure(figures.sensitivity_curves(scan, title=f"{wb.name}: accuracy with one layer pruned"),
                          "sensitivity_curves")
    st.markdown(app_state.scan_reading(scan) + f" (Dense model: {100 * dense:.1f} %.)")
    with st.expander("Accuracy drop per layer and level (heatmap)"):
        app_state.show_figure(figures.sensitivity_heatmap(scan, title=f"{wb.name}: accuracy drop (points)"),
                              "sensitivity_heatmap")
    with st.expander("The numbers"):
        app_state.show_run_table(scan.assign(level=100 * scan["level"], accuracy=100 * scan["accuracy"],
                                             accuracy_drop=100 * scan["accuracy_drop"]),
                                 f"sensitivity_{wb.name}_{strategy}", scan, column_config={
                                 "level": st.column_config.NumberColumn("level (%)"),
                                 "accuracy": st.column_config.NumberColumn("accuracy (%)", format="%.2f"),
                                 "accuracy_drop": st.column_config.NumberColumn("drop (points)", format="%.2f"),
                                 "zeros": st.column_config.NumberColumn("weights pruned"),
                             })

    st.subheader("Per-layer targets for an overall sparsity")
    target = st.slider("Overall sparsity (%)", 10, 99, int(stored["target"]), step=1, key="sens_target",
                       help="The sensitivity-guided strategy spends this sparsity on the least sensitive layers "
                            "first (see sparsity_viz/pruning/sensitivity_guided.py).")
    app_state.store_sensitivity(target=int(target))
    try:
        targets = app_state.guided_targets(scan, target / 100)
    except ValueError as exc:
        st.error(f"Could not pick per-layer targets: {exc}")
        st.stop()
    app_state.show_table(targets.assign(level=100 * targets["level"], drop_at_level=100 * targets["drop_at_level"]),
                         f"sensitivity_targets_{wb.name}", column_config={
                             "level": st.column_config.NumberColumn("level (%)", format="%.2f"),
                             "zeros": st.column_config.NumberColumn("weights pruned"),
                             "drop_at_level": st.column_config.NumberColumn(
                                 "scanned drop (points)", format="%.2f",
                                 help="The layer's largest scanned drop at or below its level (+inf: beyond "
                                      "the scanned levels)."),
                         })
    total, pruned = int(targets["weights"].sum()), int(targets["zeros"].sum())
    st.caption(f"{pruned:,} of {total:,} weights pruned = {100 * pruned / total:.2f} % overall, exactly "
               f"round({target} % × {total:,}). The `sensitivity_guided` strategy applies the same rule (on the Prune "
               "page it scans a training batch of its own; the CLI's `sensitivity --target` prints these targets).")
