"""Home: what the app is, the model picker with each model's card, a first path for a class, and uploads."""

import streamlit as st

import app_state
from sparsity_viz.models import describe_architecture, get_spec

app_state.sidebar()
st.title("Watch a neural network lose its weights")
st.markdown(
    "This app takes a small **trained** network and removes (prunes) its connections while you watch: "
    "which weights survive, which neurons die, what the model still looks at, and how much accuracy it keeps. "
    "Pick a model below (or in the sidebar), then follow *Try this first*. "
    "Everything you do works on your own copy of the model, so a whole class can use the app at once."
)

names = app_state.sample_names()
current = app_state.selected_model()
cols = st.columns(min(4, len(names)))
for i, name in enumerate(names):
    card = app_state.sample_card(name)
    spec = get_spec(name)
    with cols[i % len(cols)].container(border=True):
        st.subheader(name)
        st.caption(spec.description)
        st.markdown(
            f"- **Architecture:** {describe_architecture(app_state.shared_model(name)).rsplit(' (', 1)[0]}\n"
            f"- **Dataset:** {spec.dataset}\n"
            f"- **Dense test accuracy:** {100 * card.get('test_accuracy', float('nan')):.1f} %\n"
            f"- **Parameters:** {card.get('parameters', 0):,}"
        )
        if name == current:
            st.success("In use", icon=":material/check:")
        else:
            st.button("Use this model", key=f"home_use_{name}", on_click=app_state.choose_model, args=(name,))

wb = app_state.bench()
st.caption(f"Selected: **{wb.name}** · {describe_architecture(wb.dense)}")

st.header("Try this first (10 minutes with a class)")
st.markdown(
    "1. **Prune**: keep *Magnitude (per layer)* and drag the slider to 50 %, then 90 %, then 99 %. "
    "Accuracy barely moves until very late: most weights were not needed.\n"
    "2. Switch the strategy to **Random** at the same sparsity: the gap to magnitude is what *choosing* the weights buys.\n"
    "3. **Weights**: with `lenet300` at 90 %, the first layer's heatmap shows bands: weights from the centre pixels survive, "
    "the border dies (as in Han et al. 2015).\n"
    "4. **Connections**: the same story as a graph, and the 28×28 picture of how many connections leave each pixel.\n"
    "5. **Regularize**: instead of cutting, let L1 training push weights to exactly zero, and compare.\n"
    "6. **Share & export**: copy the link; it reopens the app with the same model, strategy and sparsity."
)

st.header("Your own checkpoint")
st.markdown(
    f"Load weights you trained yourself for the selected architecture (**{wb.name}**): a `.safetensors` file, "
    "or a PyTorch state dict (`.pt`), which is read with `weights_only=True`, so nothing in it can run code "
    "(at most 64 MiB)."
)
upload = st.file_uploader("Checkpoint", type=["safetensors", "pt", "pth", "bin"], key="home_upload")
if upload is not None:
    app_state.load_upload_once(upload.getvalue(), upload.name)
msg = app_state.upload_message()
if msg:
    app_state.show_message(*msg)
