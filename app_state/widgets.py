"""Figures and tables with their downloads: a plotly chart with an on-demand PNG, a table with its CSV."""

from __future__ import annotations

import hashlib

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import streamlit as st

from sparsity_viz import figures
from sparsity_viz.pruning import STRATEGIES
from sparsity_viz.table_csv import table_csv

from . import keys
from .cache import PNG, shared_cache

PNG_WIDTH = 1200
MESSAGES = {"success": st.success, "info": st.info, "warning": st.warning, "error": st.error}  # level -> element


def show_message(level: str, text: str) -> None:
    """``st.success`` / ``st.info`` / ``st.warning`` / ``st.error`` by name."""
    MESSAGES[level](text)


def show_lasting(level: str, text: str) -> None:
    """``show_message``, shown again when the run ends in a rerun the app starts (``rerun_keeping_messages``): a
    long run redraws its page from the kept result, which had wiped a link's left-out settings and a sweep's
    fallback to this machine, both said earlier in the run (an audit)."""
    show_message(level, text)
    st.session_state.setdefault(keys.LASTING, []).append((level, text))


def rerun_keeping_messages() -> None:
    """``st.rerun``, carrying this run's ``show_lasting`` messages into the next run (never returns)."""
    st.session_state[keys.LASTING_NEXT] = st.session_state.pop(keys.LASTING, [])
    st.rerun()


def show_carried_messages() -> None:
    """At the top of a page's run: this run's lasting messages start empty; those the last run carried are shown."""
    st.session_state[keys.LASTING] = []
    for level, text in st.session_state.pop(keys.LASTING_NEXT, []):
        show_lasting(level, text)


def png_bytes(fig: go.Figure, width: int, height: int) -> bytes:
    """PNG bytes through kaleido (Debian's chromium), shared between sessions by the figure's JSON."""
    text = fig.to_json()
    key = (hashlib.sha1(text.encode()).hexdigest(), width, height)
    return shared_cache(PNG).get_or_compute(
        key, lambda: figures.to_png_bytes(pio.from_json(text), width=width, height=height))


def display_options() -> tuple[bool, bool]:
    """The sidebar's *Display* toggles: (projector mode, accuracy axes fixed to 0-100 %)."""
    return bool(st.session_state.get(keys.PROJECTOR, False)), bool(st.session_state.get(keys.ACCURACY_AXIS, False))


def display_figure(fig: go.Figure, options: tuple[bool, bool] | None = None) -> go.Figure:
    """``fig`` as the sidebar's *Display* toggles want it (``options``: ``display_options()`` read earlier, e.g.
    before a training thread starts): projector mode (larger fonts, thicker lines) and accuracy axes fixed to
    0-100 %. The one place they are applied; on a copy, so a figure the caller keeps (or caches) is never changed."""
    projector, fixed_axis = options if options is not None else display_options()
    if not (projector or fixed_axis):
        return fig
    fig = go.Figure(fig)
    if projector:
        figures.projector(fig)
    if fixed_axis:
        figures.fixed_accuracy_axis(fig)
    return fig


def show_figure(fig: go.Figure, name: str, *, png: bool = True, height: int | None = None) -> None:
    """Draw a figure (through ``display_figure``); under it, an on-demand PNG export (kaleido runs only when asked)."""
    fig = display_figure(fig)
    # theme=None keeps the figure's own classroom style (big fonts, colour-blind-safe scales)
    st.plotly_chart(fig, key=keys.figure(name), theme=None, config={"displaylogo": False})
    if not png:
        return
    if st.button("Prepare PNG", key=keys.png_button(name), type="tertiary", icon=":material/image:",
                 help="Renders this figure as a PNG through kaleido (a few seconds), then offers the download."):
        try:
            data = png_bytes(fig, PNG_WIDTH, height or int(fig.layout.height or 600))
        except Exception as exc:  # noqa: BLE001 - no chromium, kaleido failure: say so, keep the page
            st.error(f"PNG export failed: {type(exc).__name__}: {str(exc)[:300]}")
        else:
            st.download_button("Download PNG", data, file_name=f"{name}.png", mime="image/png",
                               key=keys.png_download(name), on_click="ignore", icon=":material/download:")


def show_table(df: pd.DataFrame, name: str, *, column_config: dict | None = None, height: int | str = "auto",
               csv_text: str | None = None) -> None:
    """A table with a CSV download beside it (``table_csv``; ``csv_text``: what to download instead)."""
    st.dataframe(df, hide_index=True, column_config=column_config, height=height)
    data = (csv_text if csv_text is not None else table_csv(df)).encode()  # formula-like text cells defused
    st.download_button("Download CSV", data, file_name=f"{name}.csv", mime="text/csv",
                       key=keys.csv_download(name), on_click="ignore", type="tertiary", icon=":material/download:")


def _label(name: str) -> str:
    return STRATEGIES[name].label if name in STRATEGIES else name


def show_sweep_notes(frame: pd.DataFrame) -> None:
    """Under a sweep: the strategies it left out with the library's reason, and the training scheduled points cost."""
    for name, reason in (frame.attrs.get("skipped") or {}).items():
        st.info(f"**{_label(name)}** is not on this chart: {reason}", icon=":material/info:")
    if "kind" in frame and "train_epochs" in frame:
        scheduled = frame[frame["kind"] == "scheduled"]
        if len(scheduled):
            budget = scheduled.groupby("strategy")["train_epochs"].max()
            st.caption("Scheduled strategies train while they prune, so each of their points includes training: "
                       + "; ".join(f"{_label(s)} {int(e)} epochs" for s, e in budget.items())
                       + " per point (column `train_epochs`).")
