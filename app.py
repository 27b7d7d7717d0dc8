"""sparsity_viz: the Streamlit app. Run with ``streamlit run app.py``.

This file only sets the page up and hands over to the page the user picked;
every page starts with ``app_state.sidebar()``, which draws the shared sidebar
workbench (drawn from inside the page run, so AppTest sees it on every page). All state lives in ``app_state``; all work in
the ``sparsity_viz`` library.
"""

import streamlit as st

import app_state

st.set_page_config(page_title="sparsity_viz · watch pruning happen", page_icon=":material/content_cut:", layout="wide")
app_state.init()

PAGES = [
    st.Page("views/1_home.py", title="Home", icon=":material/home:", default=True),
    st.Page("views/2_prune.py", title="Prune", icon=":material/content_cut:"),
    st.Page("views/3_regularize.py", title="Regularize (L1)", icon=":material/compress:"),
    st.Page("views/4_weights.py", title="Weights", icon=":material/grid_on:"),
    st.Page("views/5_connections.py", title="Connections", icon=":material/hub:"),
    st.Page("views/6_attribution.py", title="Attribution", icon=":material/visibility:"),
    st.Page("views/7_curves.py", title="Curves", icon=":material/show_chart:"),
    st.Page("views/8_export.py", title="Share & export", icon=":material/share:"),
    st.Page("views/9_compare.py", title="Compare strategies", icon=":material/stacked_line_chart:"),
    st.Page("views/10_survival.py", title="Survival maps", icon=":material/join_inner:"),
    st.Page("views/11_lottery.py", title="Lottery ticket lab", icon=":material/casino:"),
    st.Page("views/12_speed.py", title="Speed & memory", icon=":material/speed:"),
    st.Page("views/13_quantize.py", title="Quantize", icon=":material/grain:"),
    st.Page("views/14_activations.py", title="Activations", icon=":material/bolt:"),
    st.Page("views/15_experts.py", title="Experts (MoE)", icon=":material/alt_route:"),
    st.Page("views/16_sensitivity.py", title="Layer sensitivity", icon=":material/tune:"),
]

page = st.navigation(PAGES, expanded=True)  # every page listed (more than 12 would collapse to 10)
page.run()
app_state.sidebar_summary()
