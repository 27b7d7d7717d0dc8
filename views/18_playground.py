"""Playground: a TensorFlow-Playground-style MLP on a 2-D toy, trained live from scratch, dense or sparse."""

import streamlit as st

import app_state
from sparsity_viz.playground import MAX_EPOCHS, MAX_LAYERS, MAX_SEED, MAX_UNITS, PlaygroundSpec
from sparsity_viz.data import TOY_DATASETS
from sparsity_viz.pruning import STRATEGIES

app_state.sidebar()
st.title("Playground")
st.markdown(
    "Build a small network for a 2-D toy and **train it from scratch**, dense or **sparse from the start**, and "
    "watch it learn: edge width is |w|, colour the sign (blue +, red −); connections that were just pruned fade "
    "(dotted) and vanish, connections that (re)appear glow green. Each hidden unit shows its own output over the "
    "input plane. **Click a connection's dot or a unit to cut it by hand** (click again to restore) and see the "
    "boundary change. Changing a setting starts a fresh network. The URL holds the whole state: copy it to share."
)

run = app_state.playground()
spec = run.spec
inits, regimes = app_state.init_labels(), app_state.dynamics_labels()
LR_CHOICES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)  # a link's own value joins these
L1_CHOICES = (0.0, 1e-4, 3e-4, 1e-3, 2e-3, 3e-3)  # the prox steps in Adam's metric: from ~3e-3 every weight dies

c1, c2, c3 = st.columns(3)
with c1:
    st.markdown("**Data**")
    data = st.selectbox("Toy", TOY_DATASETS, index=TOY_DATASETS.index(spec.dataset), key="pg_w_data")
    noise = st.slider("Noise", 0.0, 0.5, float(spec.noise), step=0.01, key="pg_w_noise")
    test = st.slider("Test share (%)", 10, 90, int(round(100 * spec.test_fraction)), step=5, key="pg_w_test",
                     help="Points held out: the test loss is measured on them, never trained on.")
    seed = int(st.number_input("Seed", 0, MAX_SEED, spec.seed, step=1, key="pg_w_seed",
                               help="Seeds the data, the initial weights, the sparse mask and the shuffles."))
with c2:
    st.markdown("**Network**")
    n_layers = st.slider("Hidden layers", 1, MAX_LAYERS, len(spec.hidden), key="pg_w_layers")
    unit_cols = st.columns(n_layers)
    hidden = tuple(int(col.number_input(f"Units {i + 1}", 1, MAX_UNITS,
                                        spec.hidden[i] if i < len(spec.hidden) else spec.hidden[-1],
                                        key=f"pg_w_units_{i}")) for i, col in enumerate(unit_cols))
    activation = st.radio("Activation", ("tanh", "relu"), index=("tanh", "relu").index(spec.activation),
                          horizontal=True, key="pg_w_act")
    lr = st.select_slider("Learning rate (Adam)", sorted({*LR_CHOICES, spec.lr}), value=spec.lr, key="pg_w_lr")
    epochs = st.slider("Epochs (the run's budget)", min(10, spec.epochs), MAX_EPOCHS, int(spec.epochs),
                       step=1 if spec.epochs % 10 else 10, key="pg_w_epochs",
                       help=f"Schedules are laid out over this budget: gradual pruning reaches its target at "
                            f"{100 * STRATEGIES['gradual'].end:g} % of it, SET / RigL stop regrowing at "
                            f"{100 * STRATEGIES['set'].end:g} %.")
with c3:
    st.markdown("**Sparsity**")
    init = st.selectbox("Start", list(inits), index=list(inits).index(spec.init), format_func=inits.get,
                        key="pg_w_init", help="Dense, or sparse at initialisation with a registry strategy.")
    dynamics = st.selectbox("While training", list(regimes), index=list(regimes).index(spec.dynamics),
                            format_func=regimes.get, key="pg_w_dyn",
                            help="Gradual: prune the smallest |w| on a cubic schedule (AGP). SET / RigL: keep the "
                                 "budget fixed, drop weak connections and regrow others (at random / by gradient).")
    sparse = st.slider("Sparsity at the start (%)", 0, 99, int(round(100 * spec.sparsity)), step=1, key="pg_w_s",
                       disabled=init == "dense" and dynamics not in ("set", "rigl"),
                       help="Used by a sparse start, and as SET / RigL's fixed budget (from a dense start they "
                            "begin from an Erdős–Rényi mask).")
    target = st.slider("Gradual target (%)", 0, 99, int(round(100 * spec.target)), step=1, key="pg_w_target",
                       disabled=dynamics != "gradual")
    l1 = st.select_slider("L1 strength", sorted({*L1_CHOICES, spec.l1}), value=spec.l1,
                          key="pg_w_l1", help="Proximal L1 in Adam's own step sizes: weights it drives to exactly zero vanish from the "
                               "graph; too strong, and every weight does.")
    dropout = st.slider("Dropout", 0.0, 0.9, float(spec.dropout), step=0.05, key="pg_w_drop")

try:
    chosen = PlaygroundSpec(dataset=data, noise=round(noise, 2), test_fraction=test / 100, hidden=hidden,
                            activation=activation, lr=lr, batch_size=spec.batch_size, epochs=int(epochs), init=init,
                            sparsity=sparse / 100, dynamics=dynamics, target=target / 100, l1=l1,
                            dropout=round(dropout, 2), seed=seed)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
run = app_state.set_playground_spec(chosen)

b1, b2, b3, b4 = st.columns([1, 1, 1, 3])
train_all = b1.button("Train", type="primary", icon=":material/play_arrow:", key="pg_train_all",
                      disabled=run.epoch >= run.spec.epochs, help="Train to the end of the budget, live.")
step = b2.button("+1 epoch", key="pg_step", disabled=run.epoch >= run.spec.epochs)
if b3.button("Reset", key="pg_reset", icon=":material/restart_alt:", help="Back to the untrained network."):
    app_state.reset_playground()
    st.rerun()
n = app_state.playground_numbers(run)
b4.markdown(f"**Epoch {n['epoch']} / {n['budget']}** · connections alive **{n['alive']} of {n['total']}**"
            + (f" · train loss **{n['train_loss']:.3f}** · test loss **{n['test_loss']:.3f}**"
               f" · test accuracy **{100 * n['test_accuracy']:.1f} %**" if n["test_loss"] is not None else "")
            + (f"  \nSince the previous picture: {n['vanished']} vanished, {n['appeared']} (re)appeared."
               if n["vanished"] or n["appeared"] else ""))

status = st.container()
net_col, maps_col = st.columns([3, 2])
boundary_col, loss_col = st.columns([2, 3])
slots = app_state.PlaygroundSlots(status=status, network=net_col, boundary=boundary_col, maps=maps_col, loss=loss_col)
with status:
    app_state.show_playground_message()
if train_all or step:
    app_state.train_live(slots, 1 if step else run.spec.epochs)
app_state.show_playground(slots)

with st.expander("Cut or restore by name (keyboard alternative to clicking)"):
    choices = app_state.cut_choices(run)
    pick = st.selectbox("Unit or connection", list(choices), key="pg_cut_pick")
    target, cut = choices[pick]
    if st.button("Restore" if cut else "Cut", key="pg_cut_go", help="It is cut now." if cut else "It is alive now."):
        app_state.cut_by_hand(*target)
st.caption(f"This run: {run.spec.describe()}. Every number above is measured on this network as it is now.")
