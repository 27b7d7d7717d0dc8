"""Experts (MoE): routing by class, expert load and the balance loss, compute per input, pruning experts."""

import streamlit as st

import app_state
from sparsity_viz import figures

app_state.sidebar()
st.title("Experts (MoE)")
st.markdown(
    "A **mixture of experts** has N small expert networks and a learned **router**: for each input the router picks "
    "its top-k experts, and only those run, so an input uses a fraction of the parameters. That is sparsity in "
    "*computation* (conditional computation) rather than in the weights. A **load-balancing loss** during training "
    "keeps the router from sending everything to one expert. Prune a whole expert below and watch the inputs it "
    "was given lose their prediction: the router still sends them there until it is fine-tuned. These two bundled "
    "MoE models are separate from the sidebar's model, which this page leaves untouched."
)

names = app_state.moe_names()
if not names:
    st.error("No bundled MoE model found: run `python -m sparsity_viz train-samples --only moe_moons,moe_mnist`.")
    st.stop()

strategies = app_state.moe_strategies()
SETTINGS = {"model": None, "top_k": None, "experts": [], "sparsity": 0, "strategy": "global_magnitude"}  # in the URL
s = app_state.page_settings("experts", SETTINGS, ranges={"top_k": (1, 64), "experts": (0, 63), "sparsity": (0, 95)},
                            choices={"model": names, "strategy": strategies})
c1, c2, c3 = st.columns([2, 2, 3])
name = c1.selectbox("MoE model", names, key="moe_model", index=names.index(s["model"]) if s["model"] in names else 0,
                    help="moe_moons: 4 tiny experts on two moons (top-1); moe_mnist: 4 LeNet-300-100 experts on "
                         "MNIST-5k (top-2).")
spec = app_state.spec_of(name)
if s["model"] not in (None, name):  # another MoE: its experts and k are its own (expert 2 there is not expert 2 here)
    s = {**s, "top_k": None, "experts": []}
top_k = c2.slider("Experts per input (top-k)", 1, spec.num_experts,
                  min(int(s["top_k"] or spec.top_k), spec.num_experts), key=f"moe_top_k_{name}",
                  help=f"Trained with top-{spec.top_k}; changing k at inference reuses the same router and experts.")
pruned = c3.multiselect("Prune whole experts", list(range(spec.num_experts)), key=f"moe_prune_{name}",
                        default=[e for e in s["experts"] if e in range(spec.num_experts)],
                        format_func=lambda e: f"expert {e}",
                        help="Every weight of these experts becomes zero; the router is not told.")
c4, c5 = st.columns([3, 2])
sparsity = c4.slider("Prune the experts' weights (%)", 0, 95, int(s["sparsity"]), step=5, key="moe_sparsity",
                     help="This share of the experts' weights is pruned by the strategy; the router stays dense.")
strategy = c5.selectbox("Pruning strategy", strategies, index=strategies.index(s["strategy"]),
                        key="moe_strategy", disabled=sparsity == 0)
app_state.keep_page_settings("experts", SETTINGS, model=name, top_k=None if top_k == spec.top_k else int(top_k),
                             experts=sorted(int(e) for e in pruned), sparsity=int(sparsity), strategy=strategy)

config = app_state.ExpertsConfig(name, int(top_k), tuple(sorted(int(e) for e in pruned)), sparsity / 100, strategy)
tuned = app_state.tuned_config(config)
try:
    view = app_state.experts_view(tuned or config)
except ValueError as exc:
    st.error(f"Could not prepare this MoE: {exc}")
    st.stop()

report, bundled = view.report, view.bundled
n, k = report["num_experts"], report["top_k"]
if tuned is not None:
    stopped = ", stopped early (the last one may be cut short)" if tuned.stopped_early else ""
    st.info(f"Showing the model fine-tuned {tuned.finetune_epochs} epoch{'s' if tuned.finetune_epochs != 1 else ''}"
            f" after pruning (balance weight {tuned.balance_weight:g}){stopped}.", icon=":material/model_training:")
    if st.button("Show it without the fine-tune", key="moe_untune"):
        app_state.forget_finetune()
        st.rerun()

m1, m2, m3, m4 = st.columns(4)
m1.metric("Test accuracy now", f"{100 * report['accuracy']:.1f} %",
          delta=f"{100 * (report['accuracy'] - bundled['accuracy']):+.1f} points")
m2.metric("Bundled model (top-" + str(bundled["top_k"]) + ")", f"{100 * bundled['accuracy']:.1f} %")
m3.metric("Active parameters per input", f"{report['active_parameters']:,}",
          delta=f"{100 * report['active_parameters'] / report['total_parameters']:.1f} % of {report['total_parameters']:,}",
          delta_color="off", delta_arrow="off",
          help="The router plus the top-k experts an input is sent to, counted by their shapes: weights pruned to "
               "zero inside them still count (routing saves whole experts; pruning saves inside them).")
m4.metric("FLOPs per input", f"{report['flops_per_input']:,}",
          delta=f"all experts: {report['flops_per_input_all_experts']:,}", delta_color="off", delta_arrow="off")
gone = ", ".join(f"expert {e}" for e in config.pruned)
lost = sum(report["load"][e] for e in config.pruned)
st.markdown(
    f"Each input runs **{k} of {n} experts**: {report['active_parameters']:,} of the "
    f"{report['total_parameters']:,} parameters (router {report['router_parameters']:,} + {k} × "
    f"{report['expert_parameters']:,}). "
    + (f"**{gone}** {'is' if len(config.pruned) == 1 else 'are'} pruned, yet the router still sends "
       f"{lost:,} of the {sum(report['load']):,} test assignments there. " if config.pruned else "")
    + f"Balance loss on the test split: **{report['balance_loss']:.2f}** (1.0 = uniform, at most {n / k:g}: the "
      "router certain of one expert)."
)

left, right = st.columns(2)
with left:
    share = st.toggle("Show shares of each class (%)", value=True, key="moe_shares")
    app_state.show_figure(figures.routing_heatmap(report["routing_table"], report["classes"], shares=share,
                                                  pruned=config.pruned, title="Routing by class"),
                          "experts_routing")
with right:
    app_state.show_figure(figures.expert_load_bars(report["load"], report["balance_loss"], pruned=config.pruned),
                          "experts_load")

left, right = st.columns(2)
with left:
    app_state.show_figure(figures.compute_bars(report), "experts_compute")
if view.regions is not None:
    with right:
        data = app_state.moe_dataset(name)
        app_state.show_figure(figures.expert_regions(view.regions, data.x_test, data.y_test, data.class_names,
                                                     pruned=config.pruned, title="The router's chosen expert"),
                              "experts_regions")
        st.caption("Each point of the plane is coloured by the expert the router picks first there, the test points "
                   "on top. Pruning does not move these regions; fine-tuning the router can.")

with st.expander("Routing table (test split)"):
    app_state.show_table(view.routing, f"experts_routing_{name}")

st.subheader("Fine-tune the router and experts")
st.markdown("Trains this pruned copy a few epochs with the pruned weights held at zero, so the router can learn to "
            "avoid what was pruned. The balance loss pushes inputs back toward every expert, a pruned one included; "
            "weight 0 lets the router abandon it.")
f1, f2, f3 = st.columns([2, 2, 3])
epochs = f1.number_input("Epochs", 1, 10, 2, key="moe_ft_epochs")
weight = f2.selectbox("Balance weight", [0.0, 0.01, 0.1], key="moe_ft_weight")
if app_state.finetune_kept_nothing():
    st.info("The fine-tune was stopped before its first epoch ended: nothing was kept.")
if f3.button(f"Fine-tune {int(epochs)} epochs", key="moe_finetune", icon=":material/model_training:"):
    try:
        app_state.finetune_run(config, int(epochs), float(weight))
    except ValueError as exc:
        st.error(f"Could not fine-tune: {exc}")

st.subheader("Conditional compute, measured")
st.markdown("Times this model's routed forward (only the chosen experts run) against running every expert and "
            "against a dense MLP with about the active parameter count, at three batch sizes (median of "
            "interleaved rounds on this server).")
measured = app_state.timing(tuned or config)
if st.button("Measure" if measured is None else "Measure again", key="moe_measure", icon=":material/timer:"):
    with st.spinner("Timing the three forwards..."):
        measured = app_state.measure_timing(tuned or config)
if measured is not None:
    table = measured.assign(us_per_input=1000 * measured["ms_per_input"])
    app_state.show_table(table[["batch", "path", "ms", "us_per_input", "flops_per_input", "parameters_used",
                                "vs_routed"]], f"experts_timing_{name}", column_config={
        "ms": st.column_config.NumberColumn("ms / batch", format="%.3f"),
        "us_per_input": st.column_config.NumberColumn("µs / input", format="%.1f"),
        "flops_per_input": st.column_config.NumberColumn("FLOPs / input", format="%d"),
        "parameters_used": st.column_config.NumberColumn("parameters used", format="%d"),
        "vs_routed": st.column_config.NumberColumn("time vs routed", format="%.2fx"),
    })
