"""Prune: strategy, scope and a sparsity slider; accuracy, per-layer table and a heatmap preview update live."""

import streamlit as st

import app_state
from sparsity_viz.models import prunable_layers
from sparsity_viz.pruning import STRATEGIES, one_shot_strategy_names, scheduled_strategy_names
from sparsity_viz.recipes import finetune_config
from sparsity_viz.session import PruneConfig

app_state.sidebar()
st.title("Prune")  # the explanation follows the heatmap: at 1280x720 slider, numbers and heatmap fit on one screen

wb = app_state.bench()
stored = app_state.stored_prune()
names = one_shot_strategy_names()  # the slider prunes once; scheduled strategies prune while they train

c1, c2, c3 = st.columns([2, 1, 3])
strategy = c1.selectbox("Strategy", names, index=names.index(stored.strategy) if stored.strategy in names else 0,
                        format_func=lambda n: app_state.strategy_label(n, wb.name), key="prune_strategy",
                        help="Every one-shot strategy of the library's registry; those measured slow for the live "
                             "slider on this model (benchmarks/live_prune.py) say so. "
                             + ", ".join(scheduled_strategy_names()) + " prune while they train: Compare strategies, "
                             "Curves and Survival maps run them with a training budget.")
scopes = STRATEGIES[strategy].scopes
scope = c2.radio("Scope", scopes, index=scopes.index(stored.scope) if stored.scope in scopes else 0, key="prune_scope",
                 format_func=lambda s: {"layer": "layer-wise", "global": "global"}[s], horizontal=True,
                 disabled=len(scopes) == 1,
                 help="Layer-wise: every layer loses the same share. Global: one threshold over all layers.")
level = c3.slider("Sparsity (% of weights pruned)", 0, 100, step=1, key=app_state.prune_slider_key(),
                  help="0 % is the dense model; 100 % removes every weight.")

cfg = PruneConfig(strategy=strategy, scope=scope, sparsity=level / 100, seed=stored.seed)  # a link's seed
if cfg != stored or (wb.prune_config != cfg and wb.origin.startswith("dense")):
    wb = app_state.apply_prune(cfg)
elif wb.prune_config != cfg:
    st.info(f"The current model comes from **{wb.origin}**. Move the slider to prune the dense model instead.")

dense_acc = app_state.dense_accuracy(wb)
acc = app_state.accuracy(wb.current, wb)
numbers, heat = st.columns([1, 2])  # numbers beside the heatmap: both above the fold at 1280x720
numbers.metric("Test accuracy", f"{100 * acc:.1f} %", delta=f"{100 * (acc - dense_acc):+.1f} points vs dense")
numbers.metric("Weights pruned", f"{100 * wb.sparsity:.1f} %")
model_report = app_state.model_report(wb.current, wb.masks)  # shared by every student at the same weights
report = model_report.table
total = report.iloc[-1]
numbers.metric(f"Weights left (of {int(total['parameters']):,})", f"{int(total['nonzeros']):,}")
if wb.masks:  # layer collapse; effective sparsity: weights on no input -> output path count as removed
    numbers.caption(f"effective sparsity {100 * model_report.effective:.1f} % (weights on no input → output path "
                    "count as removed)")
    for warning in model_report.warnings:
        numbers.warning(warning)
layers = [n for n, _ in prunable_layers(wb.current)]
view = app_state.page_settings("prune_view", {"layer": None}, choices={"layer": layers})  # in the URL as prune_view.layer
preview = numbers.selectbox("Heatmap preview of layer", layers, key="prune_preview_layer",
                            index=layers.index(view["layer"]) if view["layer"] in layers else 0)
app_state.keep_page_settings("prune_view", {"layer": None}, layer=preview)
full = numbers.toggle("Full resolution", key="prune_full_res", help="The preview draws every few rows and columns of "
                      "a large layer (light enough for a class on one server); this draws every weight.")
with heat:
    app_state.show_figure(app_state.layer_heatmap(wb, preview, full=full, height=400), "prune_heatmap")
st.markdown(
    "Pruning sets chosen weights to exactly zero. Drag the **sparsity** slider and watch accuracy and the heatmap "
    "follow; compare *Magnitude* (drop the smallest |w|) with *Random* at the same sparsity."
)
st.caption(f"Current model: {wb.origin}. Dense accuracy {100 * dense_acc:.1f} % on the {wb.dataset} test split.")

st.subheader("Where are the zeros?")
table = report[["layer", "shape", "parameters", "nonzeros", "sparsity", "dead_neurons"]].copy()
table["sparsity"] = 100 * table["sparsity"]
app_state.show_table(table, "prune_layers", column_config={  # full width: the "pruned (%)" column shows at 1280x720
    "sparsity": st.column_config.ProgressColumn("pruned (%)", min_value=0, max_value=100, format="%.1f %%"),
    "nonzeros": st.column_config.NumberColumn("weights left"),
    "dead_neurons": st.column_config.NumberColumn("dead neurons", help="Units with no surviving input or output."),
})

st.subheader("Fine-tune the survivors")
st.markdown("Retraining with the pruned weights held at zero can win back lost accuracy; how much depends on the "
            "level, the strategy and the epochs; the training log below shows what it won here (Han et al. used "
            "1/10 of the original learning rate, as here). **Dropout** and **DropConnect** zero a random share of "
            "activations or weights at each step (never at evaluation); on a small share of the training data, "
            "watch whether they narrow the gap between train and test accuracy.")
options = app_state.training_options("prune", app_state.dataset(wb))
f1, f2 = st.columns([1, 3])
epochs = f1.number_input("Epochs", 1, 50, app_state.stored_finetune(), key="prune_ft_epochs")
app_state.store_finetune(epochs)
finetune = finetune_config(wb.card, int(epochs), **options.config_fields())
if f2.button(f"Fine-tune {epochs} epochs", key="prune_finetune", type="primary"):
    extras = options.describe(app_state.dataset(wb))
    app_state.run_training(
        "prune", wb.current, finetune, wb.masks,
        f"{wb.origin} + fine-tuned {epochs} epochs (Adam, lr {finetune.lr:g}{', ' + extras if extras else ''})",
        prune_config=wb.prune_config)
    wb = app_state.bench()
app_state.show_training_log("prune")
