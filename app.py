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


def _page(file: str, title: str, icon: str, **kw) -> st.Page:
    """One entry of the menu: views/<file>.py under its title."""
    return st.Page(f"views/{file}.py", title=title, icon=f":material/{icon}:", **kw)


PAGES = {  # sections of the sidebar menu, in the order a lesson meets them
    "Start": [
        _page("1_home", "Home", "home", default=True),
        _page("17_lessons", "Lessons", "school"),
        _page("18_playground", "Playground", "sports_esports"),
    ],
    "Prune and train": [
        _page("2_prune", "Prune", "content_cut"),
        _page("3_regularize", "Regularize (L1)", "compress"),
        _page("11_lottery", "Lottery ticket lab", "casino"),
        _page("16_sensitivity", "Layer sensitivity", "tune"),
    ],
    "Look inside": [
        _page("4_weights", "Weights", "grid_on"),
        _page("5_connections", "Connections", "hub"),
        _page("19_units", "What units see", "center_focus_strong"),
        _page("6_attribution", "Attribution", "visibility"),
        _page("14_activations", "Activations", "bolt"),
        _page("15_experts", "Experts (MoE)", "alt_route"),
    ],
    "Compare": [
        _page("7_curves", "Curves", "show_chart"),
        _page("9_compare", "Compare strategies", "stacked_line_chart"),
        _page("10_survival", "Survival maps", "join_inner"),
    ],
    "Deploy": [
        _page("12_speed", "Speed & memory", "speed"),
        _page("13_quantize", "Quantize", "grain"),
        _page("8_export", "Share & export", "share"),
    ],
}

page = st.navigation(PAGES, expanded=True)  # every page listed (more than 12 would collapse to 10)
page.run()
app_state.sidebar_summary()
