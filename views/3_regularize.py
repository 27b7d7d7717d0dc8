"""Regularize: train with an L1 (or group-lasso / L2) penalty live and watch weights reach exact zeros."""

import streamlit as st

import app_state
from sparsity_viz.regularizers import REGULARIZERS
from sparsity_viz.training import TrainConfig

app_state.sidebar()
st.title("Regularize: let training make the zeros")
st.markdown(
    "Instead of cutting weights after training, an **L1 penalty** (strength λ) pulls every weight towards zero while "
    "the model trains; a proximal step lands the small ones on exactly 0. Press **Train** and watch loss, accuracy and "
    "sparsity per epoch. Try a larger λ for more zeros, and a huge learning rate to see what divergence looks like. "
    "**Dropout** (zero a random share of hidden activations) and **DropConnect** (zero a random share of weights) "
    "act at every training step and are off at evaluation: train on 10 % of the data and compare the train/test "
    "accuracy gap with and without them."
)

wb = app_state.bench()
s = app_state.stored_reg(wb.name)
regs = list(REGULARIZERS)
c1, c2, c3 = st.columns(3)
reg = c1.selectbox("Penalty", regs, index=regs.index(s["regularizer"]), format_func=lambda n: REGULARIZERS[n].label,
                   key="reg_kind", help="L1 zeroes single weights, group lasso whole neurons, L2 only shrinks.")
lam_options = list(app_state.LAMBDAS)
lam = c2.select_slider("Strength λ", lam_options, value=min(lam_options, key=lambda v: abs(v - s["strength"])),
                       format_func=lambda v: f"{v:g}", key="reg_lambda",
                       help=f"Each SGD step also {REGULARIZERS[reg].step}.")
thr_options = list(app_state.THRESHOLDS)
thr = c3.select_slider("Zero threshold |w| <", thr_options,
                       value=min(thr_options, key=lambda v: abs(v - s["zero_threshold"])),
                       format_func=lambda v: f"{v:g}", key="reg_threshold",
                       help="After each epoch, weights smaller than this become exact zeros (and stay zero).")
c4, c5, c6 = st.columns(3)
epochs = c4.number_input("Epochs", 1, 200, int(s["epochs"]), key="reg_epochs")
lr = c5.number_input("Learning rate (SGD, momentum 0.9)", min_value=1e-5, max_value=1e4, value=float(s["lr"]),
                     format="%g", key="reg_lr")
start = c6.radio("Start from", ["dense", "current"], index=["dense", "current"].index(s["start"]), horizontal=True,
                 format_func=lambda v: {"dense": "the dense model", "current": "the current model"}[v], key="reg_start",
                 help=f"Current model: {wb.origin}.")
options = app_state.training_options("regularize", app_state.dataset(wb))
settings = {"regularizer": reg, "strength": lam, "zero_threshold": thr, "epochs": int(epochs), "lr": float(lr),
            "start": start}
app_state.store_reg(settings)

config = TrainConfig(epochs=int(epochs), lr=float(lr), optimizer="sgd", momentum=0.9, batch_size=64,
                     regularizer=reg if lam > 0 else None, strength=float(lam), zero_threshold=float(thr),
                     **options.config_fields())
if st.button("Train", key="reg_train", type="primary", icon=":material/play_arrow:"):
    model, masks = (wb.dense, None) if start == "dense" else (wb.current, wb.masks)
    penalty = f"{REGULARIZERS[reg].name} λ={lam:g}" if lam > 0 else "no penalty"
    extras = options.describe(app_state.dataset(wb))
    origin = (f"{penalty}, threshold {thr:g}, {epochs} epochs SGD lr {lr:g}{', ' + extras if extras else ''} "
              f"from {'the dense model' if start == 'dense' else wb.origin}")
    app_state.run_training("regularize", model, config, masks, origin)
app_state.show_training_log("regularize")
wb = app_state.bench()
st.caption(f"Current model: {wb.origin} · {100 * wb.sparsity:.1f} % of weights are zero. "
           "Weights, Connections, Attribution and Export now show this model.")
