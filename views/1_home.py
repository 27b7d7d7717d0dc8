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
with st.spinner("Measuring the numbers below..."):
    first = app_state.home_steps()  # every number measured by the library now, shared by every session
st.markdown(first.text)
st.page_link(app_state.page_path("17_lessons"), label="Open the guided lessons", icon=":material/school:")

st.header("Your own checkpoint")
st.markdown(
    f"Load weights you trained yourself for the selected architecture (**{wb.name}**): a `.safetensors` file, "
    "or a PyTorch state dict (`.pt`), which is read with `weights_only=True`, so nothing in it can run code "
    "(at most 64 MiB)."
)
upload = st.file_uploader("Checkpoint", type=["safetensors", "pt", "pth", "bin"], key="home_upload")
app_state.load_upload_once(upload)
msg = app_state.upload_message()
if msg:
    app_state.show_message(*msg)

st.header("Your own model and data")
st.markdown(
    "Bring a model the app has never seen: its **architecture as data** (a JSON or YAML list of layers, "
    "never code), its **checkpoint** (`.safetensors` or a `weights_only` `.pt` state dict, checked against the "
    "architecture), and optionally your **dataset** (a CSV with a header row and a `label` column, or an NPZ with "
    "arrays `x` and `y`), split 80/20 and normalised with training statistics. Without a dataset the model must "
    "take one of the bundled datasets. Nothing you upload is ever run; a file with a problem gets one message and "
    "the current model stays. Start from a bundled model's spec:"
)
cols_t = st.columns([2, 3])
template_name = cols_t[0].selectbox("Spec of", names, index=names.index(current) if current in names else 0,
                                    key="home_spec_template")
cols_t[1].download_button(f"Download {template_name}.spec.json", app_state.spec_template(template_name),
                          file_name=f"{template_name}.spec.json", mime="application/json", key="home_spec_download")
c1, c2, c3 = st.columns(3)
c1.file_uploader("Architecture spec", type=["json", "yaml", "yml"], key=app_state.keys.OWN_SPEC_FILE,
                 help="input shape and an ordered list of named layers (linear, conv1d/2d, batchnorm, pooling, "
                      "dropout, activations, flatten); at most 64 layers and 50 M parameters")
c2.file_uploader("Checkpoint", type=["safetensors", "pt", "pth", "bin"], key=app_state.keys.OWN_CKPT_FILE,
                 help="parameter names are the layer names: fc1.weight, fc1.bias, ...")
c3.file_uploader("Dataset (optional)", type=["csv", "npz"], key=app_state.keys.OWN_DATA_FILE,
                 help="CSV: header row, numeric features, labels 0..C-1 or class names. NPZ: x (N, F), (N, H, W) or "
                      "(N, C, H, W) and y (N,). At most 100,000 samples and 100 classes, 5 samples per class.")
st.button("Load my model", key="home_own_load", on_click=app_state.load_own_model, type="primary")
own_msg = app_state.own_message()
if own_msg:
    app_state.show_message(*own_msg)
