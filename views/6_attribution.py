"""Attribution: what the dense and the pruned model look at, side by side, with a similarity number."""

import streamlit as st

import app_state
from sparsity_viz import figures
from sparsity_viz.attribution import METHODS, compare_attributions
from sparsity_viz.inference import predict_classes

app_state.sidebar()
st.title("Attribution")
st.markdown(
    "Attribution methods (from Captum) score how much each input pixel pushed the model towards a class. Here the "
    "**dense** and the **current (pruned)** model explain the same test sample; the difference map and the rank "
    "correlation (1 = same pixels in the same order, 0 = unrelated) show whether pruning changed what the model looks at. "
    "Prune harder and watch the correlation fall before the accuracy does."
)

wb = app_state.bench()
ds = app_state.dataset(wb)
st.caption(f"Current model: {wb.origin} · {100 * wb.sparsity:.1f} % pruned")
methods = list(METHODS)
PICKS = ["by index", "first of a class"]
SETTINGS = {"method": methods[0], "pick": "by index", "index": 0, "cls": 0}  # this page's settings (kept, in the URL)
s = app_state.page_settings("attribution", SETTINGS, ranges={"index": (0, 10**9), "cls": (0, 10**6)},
                            choices={"method": methods, "pick": PICKS})
c1, c2, c3 = st.columns([2, 2, 2])
method = c1.selectbox("Method", methods, index=methods.index(s["method"]), format_func=lambda m: METHODS[m].label,
                      key="attr_method",
                      help="Saliency is the quickest; Integrated Gradients and Occlusion are slower but steadier.")
pick = c2.radio("Pick a test sample", PICKS, index=PICKS.index(s["pick"]), horizontal=True, key="attr_pick")
n = len(ds.y_test)
if pick == "by index":
    index = c3.number_input(f"Test sample (0-{n - 1})", 0, n - 1, min(int(s["index"]), n - 1), key="attr_index")
    app_state.keep_page_settings("attribution", SETTINGS, method=method, pick=pick, index=int(index))
else:
    cls = c3.selectbox("Class", list(range(ds.num_classes)), index=min(int(s["cls"]), ds.num_classes - 1),
                       format_func=lambda c: ds.class_names[c], key="attr_class")
    app_state.keep_page_settings("attribution", SETTINGS, method=method, pick=pick, cls=int(cls))
    hits = (ds.y_test == cls).nonzero().flatten()
    index = int(hits[0]) if len(hits) else 0
index = int(index)
x = ds.x_test[index : index + 1]
label = int(ds.y_test[index])
(pred_dense,), (pred_now,) = predict_classes(wb.dense, x), predict_classes(wb.current, x)
st.markdown(f"Sample **{index}**: true class **{ds.class_names[label]}** · dense model predicts "
            f"**{ds.class_names[pred_dense]}** · current model predicts **{ds.class_names[pred_now]}**. "
            f"Both explain the true class.")

with st.spinner("Computing attributions..."):
    comp = compare_attributions(wb.dense, wb.current, x, label, method)
shown = ds.denormalize(x) if ds.is_image else x
fig = figures.attribution_maps(shown[0], comp.dense[0], comp.pruned[0], similarity=comp.mean_similarity,
                               method=METHODS[method].label,
                               feature_names=None if ds.is_image else [f"x{i}" for i in range(ds.num_features)])
st.metric("Rank correlation dense vs current", "undefined" if comp.mean_similarity != comp.mean_similarity
          else f"{comp.mean_similarity:.2f}")
if ds.num_features == 2:  # an audit: -1.00 for two nearly equal bars read as a total reversal
    st.caption("With two inputs a rank correlation can only be +1 (same order) or −1 (swapped): compare the bars.")
reason = figures.attribution_blank_reason(comp.dense[0], comp.pruned[0])
if reason:  # never a blank map or "nan" without a sentence saying why
    st.info(reason, icon=":material/info:")
app_state.show_figure(fig, "attribution_maps")

if ds.is_plane:
    st.subheader("Gradient field and decision boundary")
    st.markdown("For 2-D points the whole input space is the picture: arrows show where the probability of the "
                "chosen class grows fastest, for the dense and the current model.")
    both = figures.boundary_comparison(wb.dense, wb.current, ds.x_test, ds.y_test, class_names=ds.class_names,
                                       gradient_target=label, subplot_titles=("dense model", "current model"))
    both.update_layout(height=520)
    app_state.show_figure(both, "attribution_field")
