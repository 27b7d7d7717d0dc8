"""The sidebar workbench drawn on every page: model, dataset, device, reset, and the current model in one line."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from sparsity_viz.backend.live import kernel_building
from sparsity_viz.devices import cuda_available
from sparsity_viz.session import Workbench

from . import keys
from .evaluation import accuracy, dense_accuracy
from .settings import store_display, stored_display, stored_prune, stored_reg
from .links import link_carries, link_message
from .url import set_recipe, set_url
from .widgets import show_carried_messages, show_message
from .workbench import (DEVICES, bench, dataset_options, model_description, model_names, on_model_change, reset_bench,
                        selected_model)

KERNEL_NOTICE = ("The sparse C++ kernel is being built in the background (once per machine, about a minute). "
                 "Until it is ready, accuracies are computed with the dense model: the same numbers, a little slower.")
KERNEL_POLL_S = 5  # how often a waiting page checks whether the build finished


def sidebar() -> Workbench:
    """Draw the workbench widgets and return this session's workbench."""
    show_carried_messages()  # what the run before said, when it ended by redrawing the page (a long run's result)
    names = model_names()
    labels = {n: f"{n} · {model_description(n)}" for n in names}  # read now: AppTest formats outside the run
    # Re-assign the sidebar widgets' values every run: each page draws its own copy of
    # these widgets, and Streamlit would otherwise reset them on a page change.
    st.session_state[keys.MODEL] = st.session_state[keys.STORED_MODEL] = selected_model()
    display = stored_display()  # a reload or a link may carry projector mode (display.projector=1)
    for key, default in ((keys.DATASET, None), (keys.DEVICE, "auto"), (keys.PROJECTOR, display["projector"]),
                         (keys.ACCURACY_AXIS, display["axes"])):
        value = st.session_state.get(key, default)
        if value is not None:
            st.session_state[key] = value
    with st.sidebar:
        st.header("Workbench")
        st.selectbox(
            "Sample model", names, key=keys.MODEL, on_change=on_model_change,
            format_func=labels.__getitem__,
            help="Every page works on your own copy of this trained model.",
        )
        options = dataset_options(st.session_state[keys.MODEL])
        if st.session_state.get(keys.DATASET) not in options:
            st.session_state[keys.DATASET] = options[0]
        st.selectbox("Dataset", options, key=keys.DATASET, disabled=len(options) == 1,
                     help="The test split every accuracy is measured on. 2-D toy models can be tried on other toys.")
        st.selectbox("Device", DEVICES, key=keys.DEVICE,
                     help="Where training and sweeps run. 'auto' picks a GPU when there is one.")
        if st.session_state.get(keys.DEVICE) == "cuda" and not cuda_available():
            st.warning("No CUDA GPU on this machine: running on the CPU instead.")
        wb = bench()
        st.button("Reset to the dense model", key=keys.RESET, on_click=reset_bench, width="stretch")
        display_toggles()
        message = link_message()
        if message is not None:
            show_message(*message)
    # Streamlit drops query parameters on page changes: write the whole shareable state every run.
    # the pruning of the model shown (the Prune page's settings apply only when it is visited): a switch of model
    # rebuilt the workbench dense while the link still said sparsity=90 (an audit)
    cfg = wb.prune_config or replace(stored_prune(), sparsity=0.0)
    set_url(model=wb.name, dataset=wb.dataset, strategy=cfg.strategy, scope=cfg.scope,
            sparsity=int(round(100 * cfg.sparsity)), seed=cfg.seed, lam=float(stored_reg(wb.name)["strength"]))
    set_recipe(wb.recipe)
    return wb


def display_toggles() -> None:
    """The *Display* toggles: projector mode and fixed accuracy axes (applied by ``widgets.display_figure``)."""
    st.toggle("Projector mode", key=keys.PROJECTOR,
              help="Larger fonts and thicker lines in every figure, for the back row of a lecture hall.")
    st.toggle("Accuracy axes 0–100 %", key=keys.ACCURACY_AXIS,
              help="Every accuracy axis spans 0–100 %, so a drop looks as large on every page.")
    store_display(st.session_state[keys.PROJECTOR], st.session_state[keys.ACCURACY_AXIS])


def sidebar_summary() -> None:
    """The current model in one caption, drawn after the page ran (so it shows the page's result)."""
    wb = st.session_state.get(keys.BENCH)
    if wb is None:
        return
    acc = accuracy(wb.current, wb)
    st.sidebar.caption(
        f"**Current model:** {wb.origin}  \n"
        f"{100 * wb.sparsity:.1f} % of weights pruned · test accuracy {100 * acc:.1f} % "
        f"(dense {100 * dense_accuracy(wb):.1f} %) on {wb.dataset}"
    )
    carried = link_carries(wb)
    if carried is not None and carried[0] == "warning":
        st.sidebar.caption(carried[1].replace(" below", " on Share & export"))
    if kernel_building():
        with st.sidebar:
            kernel_notice()


def kernel_notice(text: str = KERNEL_NOTICE) -> None:
    """Say that the sparse kernel is being built; rerun the page once it is ready."""
    st.info(text, icon=":material/build:")
    _rerun_when_built()


@st.fragment(run_every=KERNEL_POLL_S)
def _rerun_when_built() -> None:
    if not kernel_building():
        st.rerun(scope="app")
