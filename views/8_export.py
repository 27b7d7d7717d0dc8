"""Share and export: a link with the state in the URL, masks, checkpoints and tables as files."""

import streamlit as st

import app_state
from sparsity_viz import figures
from sparsity_viz.checkpoints import state_dict_to_bytes
from sparsity_viz.exports import export_stem, torch_prune_bytes
from sparsity_viz.masks import masks_to_bytes
from sparsity_viz.reports import sparsity_report

app_state.sidebar()
st.title("Share and export")
st.markdown(
    "The link below reopens the app with the same model, strategy, sparsity, seed, λ and page settings, and rebuilds "
    "a model that came from training from its seeded recipe: hand it to the class. The files "
    "take the current model elsewhere: the masks (which weights survive), a checkpoint of the pruned weights, or the "
    "model in `torch.nn.utils.prune` form for your own PyTorch code. Every figure has its own *Prepare PNG* button."
)

wb = app_state.bench()
st.subheader("Link for the class")
st.code(app_state.share_link(), language=None)
st.caption("The URL of every page always carries the state (that page's settings included); copy it from the "
           "address bar too.")
carried = app_state.link_carries(wb)
if carried is not None:
    app_state.show_message(*carried)

st.subheader("Downloads for the current model")
st.caption(f"Current model: {wb.origin} · {100 * wb.sparsity:.1f} % pruned")
stem = export_stem(wb.name, wb.sparsity)
c1, c2, c3 = st.columns(3)
with c1:
    st.markdown("**Masks** (safetensors, bool tensors, True = survives)")
    st.download_button("Masks (.safetensors)", masks_to_bytes(wb.masks), file_name=f"{stem}_masks.safetensors",
                       mime="application/octet-stream", key="export_masks", on_click="ignore",
                       icon=":material/download:")
with c2:
    st.markdown("**Pruned checkpoint** (safetensors state dict, zeros included)")
    st.download_button("Checkpoint (.safetensors)", state_dict_to_bytes(wb.current, {"origin": wb.origin[:500]}),
                       file_name=f"{stem}.safetensors", mime="application/octet-stream", key="export_ckpt",
                       on_click="ignore", icon=":material/download:")
with c3:
    st.markdown("**torch.nn.utils.prune form** (`weight_orig` + `weight_mask`, a .pt state dict)")
    st.download_button("Prune-ready state dict (.pt)", torch_prune_bytes(wb.current, wb.masks),
                       file_name=f"{stem}_torch_prune.pt",
                       mime="application/octet-stream", key="export_torch_prune", on_click="ignore",
                       icon=":material/download:")
st.code(
    "import torch\nfrom torch.nn.utils import prune\n"
    f"model = ...  # the same architecture ({wb.name})\n"
    "state = torch.load('" + f"{stem}_torch_prune.pt" + "', weights_only=True)\n"
    "for name, module in model.named_modules():\n"
    "    if name + '.weight_mask' in state:\n"
    "        prune.custom_from_mask(module, 'weight', state[name + '.weight_mask'])\n"
    "model.load_state_dict(state)",
    language="python",
)

st.subheader("Sparse checkpoint")
st.markdown("Only the surviving weights and where they sit: each weight matrix is stored as CSR (values + column "
            "indices + row starts) or as a bitmap + values, whichever is smaller, in a safetensors file. "
            "`sparsity_viz.backend.load_sparse` reads it back exactly.")
sparse_ckpt, round_trip = app_state.sparse_checkpoint(wb)
s1, s2 = st.columns([1, 2])
with s1:
    st.download_button("Sparse checkpoint (.safetensors)", sparse_ckpt.data, file_name=f"{stem}_sparse.safetensors",
                       mime="application/octet-stream", key="export_sparse", on_click="ignore",
                       icon=":material/download:")
    st.metric("File size", figures.human_bytes(sparse_ckpt.nbytes),
              delta=f"{sparse_ckpt.nbytes / sparse_ckpt.dense_nbytes:.2f}× of {figures.human_bytes(sparse_ckpt.dense_nbytes)} dense",
              delta_color="off")
    size_note = sparse_ckpt.size_note()  # why it is not smaller, or ""
    st.caption(f"{figures.human_bytes(sparse_ckpt.nbytes)} vs {figures.human_bytes(sparse_ckpt.dense_nbytes)} dense "
               f"({sparse_ckpt.nbytes / sparse_ckpt.dense_nbytes:.2f}×)"
               + (f". {size_note}" if size_note else ""))
    if round_trip:
        st.success("Round trip checked: loaded back bit-identical to the current model.")
    else:
        st.error("Round trip failed: the loaded weights differ from the current model.")
with s2:
    report_sparse = sparse_ckpt.report()
    app_state.show_table(report_sparse, f"{stem}_sparse_layout")

st.subheader("Tables")
report = sparsity_report(wb.current, wb.masks)
app_state.show_table(report, f"{stem}_sparsity_report")
