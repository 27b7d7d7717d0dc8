"""Shared look of every figure: big fonts for the back of a classroom, colour-blind-safe colours.

Conventions used by all figure modules:
* weights and attributions use the diverging ``RdBu`` scale centred on zero
  (negative red, positive blue; a ColorBrewer scheme safe for colour-blind viewers);
* pruned entries are drawn in ``PRUNED_COLOR``, a mid grey that neither end nor
  the near-white middle of the scale can be mistaken for;
* categorical lines (classes, formats) use the Okabe-Ito palette; a pruning
  strategy has ONE colour on every page, ``strategy_color(name)``, by its place in
  the strategy registry;
* a legend is either plotly's default (right of the plot) or ``LEGEND_BELOW`` (a band
  anchored to the bottom of the whole figure, which plotly reserves), never at a fixed
  paper position under the plot, where it lands on the x-axis title of a short plot;
* ``projector(fig)`` turns any figure into its projector form (larger fonts,
  thicker lines) and ``fixed_accuracy_axis(fig)`` pins accuracy axes to 0-100 %;
  the app applies both in one place (``app_state.widgets.display_figure``).
"""

from __future__ import annotations

import plotly.graph_objects as go

BASE_FONT_SIZE = 18  # px; readable from the back row on a projector
TITLE_FONT_SIZE = 22
FONT_FAMILY = "Arial, Helvetica, sans-serif"

DIVERGING = "RdBu"  # zero-centred scale for signed values (weights, attributions)
SEQUENTIAL = "Viridis"  # non-negative values (counts, fan-out), perceptually uniform
GREYS = "Greys"
PRUNED_COLOR = "#9a9a9a"  # pruned weights / dead units
PRUNED_SCALE = [[0.0, PRUNED_COLOR], [1.0, PRUNED_COLOR]]
POSITIVE_COLOR = "#2166ac"  # blue end of RdBu
NEGATIVE_COLOR = "#b2182b"  # red end of RdBu
BASELINE_COLOR = "#444444"

# Okabe & Ito (2008), the standard colour-blind-safe categorical palette (black left out)
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
CLASS_SYMBOLS = ("circle", "x", "diamond", "square", "triangle-up", "cross", "star", "triangle-down")


# One colour per registry strategy, by registry position (Okabe-Ito first, then Paul Tol's "muted" scheme;
# the Okabe-Ito yellow is left out: unreadable as a line on white). Order chosen so the Compare page's default
# set (magnitude, global magnitude, SNIP, Erdos-Renyi, random: black, the floor) gets five clearly different hues.
STRATEGY_COLORS = ("#0072B2", "#E69F00", "#000000", "#D55E00", "#CC79A7", "#56B4E9", "#009E73", "#882255",
                   "#999933", "#332288", "#CC6677", "#44AA99", "#117733", "#DDCC77", "#AA4499", "#88CCEE")

# A legend in a band of its own under the plot: anchored to the bottom of the whole figure (yref "container"),
# so plotly reserves that band and pushes the x-axis title above it, whatever the plot's height or the number of
# legend rows (a legend at a fixed paper y, e.g. -0.25, lands on the x-axis title on short plots).
LEGEND_BELOW = dict(orientation="h", yref="container", y=0.0, yanchor="bottom", x=0.0, xanchor="left")

PROJECTOR_FONT_SIZE = 24  # px; projector mode (about 1.3x the normal 18 px)
PROJECTOR_TITLE_FONT_SIZE = 28
PROJECTOR_SCALE = PROJECTOR_FONT_SIZE / BASE_FONT_SIZE  # explicit font sizes (ticks, annotations) grow by this
PROJECTOR_MIN_LINE_WIDTH = 4.0  # px; lines thinner than this become this thick (zero-width band edges stay 0)
PROJECTOR_MARKER_SCALE = 1.5
ACCURACY_RANGE = (0.0, 100.0)


def palette(i: int) -> str:
    """The ``i``-th categorical colour (cycling)."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def strategy_color(name: str, fallback: int = 0) -> str:
    """The colour of registry strategy ``name``, the same on every page; a name outside the registry (a CSV's
    own label) gets ``palette(fallback)``."""
    from ..pruning.registry import strategy_names  # lazy: style stays importable without building the registry

    names = strategy_names()
    if name not in names:
        return palette(fallback)
    return STRATEGY_COLORS[names.index(name) % len(STRATEGY_COLORS)]


def with_alpha(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` -> ``rgba(r,g,b,alpha)``."""
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


_AXIS = dict(gridcolor="#EBF0F8", linecolor="#EBF0F8", zerolinecolor="#EBF0F8", zerolinewidth=2, ticks="", automargin=True)
# The few parts of plotly's "plotly_white" our figures use. Assigning the full
# named template validates hundreds of trace defaults (~7 ms a figure, measured);
# this prebuilt object costs ~1 ms, which matters on the live slider rerun.
LIGHT_TEMPLATE = go.layout.Template(
    layout=dict(
        paper_bgcolor="white",
        plot_bgcolor="white",
        font=dict(color="#2a3f5f"),
        xaxis=_AXIS,
        yaxis=_AXIS,
        hovermode="closest",
        title=dict(x=0.05),
        colorway=list(OKABE_ITO),
        coloraxis=dict(colorbar=dict(outlinewidth=0, ticks="")),
    ),
    data=dict(heatmap=[go.Heatmap(colorbar=dict(outlinewidth=0, ticks=""))]),
)


TITLE_PAD = 30  # px above the title (plotly's "top" anchor puts a title's first line ~0.4 em too high: this covers it)
TITLE_LINE = 30  # px per title line at TITLE_FONT_SIZE
SUBTITLE_LINE = 24  # px per <sup> / <sub> line (plotly draws them at about 70 % of the title size)
ABOVE_PLOT_LINE = 28  # px for a line of text standing on the plot's top edge (subplot titles) under the title


def title_margin(title: str | None) -> int:
    """Top margin (px) that holds ``title`` (lines split by ``<br>``) above the plot, or 40 without a title."""
    if not title:
        return 40
    lines = title.split("<br>")
    return TITLE_PAD + sum(SUBTITLE_LINE if ("<sup>" in ln or "<sub>" in ln) else TITLE_LINE for ln in lines) + 12


def style_layout(title: str | None = None, height: int | None = None) -> dict:
    """The layout ``apply_style`` sets, as a plain dict: pass it to ``go.Figure(data, layout=...)`` where a figure
    is drawn on every rerun (one constructor call costs about a third of building the figure and then
    ``update_layout``, measured: 2.8 against 9.3 ms)."""
    layout = dict(
        template=LIGHT_TEMPLATE,
        font=dict(size=BASE_FONT_SIZE, family=FONT_FAMILY),
        # the title hangs from the top of the figure and the top margin grows with its lines, so a multi-line
        # title never sits on the plot (plotly's default centres the first line in the margin)
        title=dict(text=title, font=dict(size=TITLE_FONT_SIZE), yref="container", y=1.0, yanchor="top",
                   pad=dict(t=TITLE_PAD)) if title else None,
        margin=dict(l=70, r=30, t=title_margin(title), b=70),
        legend=dict(font=dict(size=BASE_FONT_SIZE)),
        hoverlabel=dict(font=dict(size=BASE_FONT_SIZE)),
    )
    if height is not None:
        layout["height"] = height
    return layout


def apply_style(fig: go.Figure, title: str | None = None, height: int | None = None) -> go.Figure:
    """Big fonts, white template, room for titles (``style_layout``); returns ``fig`` for chaining."""
    fig.update_layout(style_layout(title, height))
    if fig.layout.annotations:
        fig.update_annotations(font_size=BASE_FONT_SIZE)
        # text standing on the top of the plot (subplot titles) needs its own line below the title: they overlapped
        # at 1280x720, measured in the browser (tests/e2e/test_layout_browser.py)
        if title and any(a.yref == "paper" and a.yanchor == "bottom" and (a.y or 0) >= 0.99 and not a.showarrow
                         for a in fig.layout.annotations):
            fig.update_layout(margin_t=title_margin(title) + ABOVE_PLOT_LINE)
    return fig


def _scaled(size, factor: float):
    return None if size is None else round(size * factor, 1)


def _font_scaled(d: dict, factor: float) -> dict | None:
    """``{"font": {"size": ...}}`` scaled from ``d``'s explicit font size, or ``None`` when it has none."""
    size = (d or {}).get("font", {}).get("size")
    return {"font": {"size": _scaled(size, factor)}} if size else None


def projector(fig: go.Figure) -> go.Figure:
    """Projector form of ``fig``, in place: fonts about 1.3x larger, every line thicker by one shift that brings
    the thinnest to ``PROJECTOR_MIN_LINE_WIDTH`` px (widths that encode data stay apart), markers 1.5x. Fonts with
    an explicit size (ticks, axis titles, annotations, colour bars, trace text) grow by the same factor, so nothing
    stays small; the room above a title grows with it. Returns ``fig``.

    Reads the layout once as a plain dict and writes one ``update_layout`` (plotly's property access is slow, and
    this runs on the live slider's rerun)."""
    lay = fig.layout.to_plotly_json()
    base = lay.get("font", {}).get("size") or BASE_FONT_SIZE
    factor = PROJECTOR_FONT_SIZE / base if base < PROJECTOR_FONT_SIZE else 1.0
    changes: dict = {"font": {"size": max(base, PROJECTOR_FONT_SIZE)},
                     "legend": {"font": {"size": PROJECTOR_FONT_SIZE}},
                     "hoverlabel": {"font": {"size": PROJECTOR_FONT_SIZE}}}
    title = lay.get("title") or {}
    if title.get("text"):
        grow = PROJECTOR_TITLE_FONT_SIZE / TITLE_FONT_SIZE  # the title's lines grew: so does the room above the plot
        changes["title"] = {"font": {"size": max(title.get("font", {}).get("size") or 0, PROJECTOR_TITLE_FONT_SIZE)}}
        if title.get("pad", {}).get("t") is not None:
            changes["title"]["pad"] = {"t": round(title["pad"]["t"] * grow)}
        if lay.get("margin", {}).get("t") is not None:
            changes["margin"] = {"t": round(lay["margin"]["t"] * grow)}
    if lay.get("annotations"):
        changes["annotations"] = [{**a, "font": {**a.get("font", {}),
                                                 "size": _scaled(a.get("font", {}).get("size") or base, factor)}}
                                  for a in lay["annotations"]]
    for key, val in lay.items():  # axes and colour axes: their explicit tick and title fonts
        if not isinstance(val, dict):
            continue
        if key.startswith(("xaxis", "yaxis")):
            holder = val
        elif key.startswith("coloraxis"):
            holder = val.get("colorbar")
        else:
            continue
        if not holder:
            continue
        upd = {}
        if holder.get("tickfont", {}).get("size"):
            upd["tickfont"] = {"size": _scaled(holder["tickfont"]["size"], factor)}
        if title_font := _font_scaled(holder.get("title"), factor):
            upd["title"] = title_font
        if upd:
            changes[key] = upd if holder is val else {"colorbar": upd}
    fig.update_layout(changes)
    lines = [t for t in fig.data if t.type in ("scatter", "scattergl") and (t.line.width is None or t.line.width > 0)]
    # every line thickens by one shift, so the thinnest is PROJECTOR_MIN_LINE_WIDTH and widths that encode data
    # (the graph's |w| classes) stay apart: a floor at 4 px made 1.6, 2.6 and 3.6 px edges one width (an audit)
    thinnest = min((t.line.width if t.line.width is not None else 2.0 for t in lines), default=0.0)
    shift = max(0.0, PROJECTOR_MIN_LINE_WIDTH - thinnest)
    widened = {id(t) for t in lines}  # by identity: `in lines` compared traces by plotly's deep __eq__
    for trace in fig.data:
        if id(trace) in widened:  # zero-width band edges stay invisible
            trace.line.width = (trace.line.width if trace.line.width is not None else 2.0) + shift
        if trace.type in ("scatter", "scattergl") and isinstance(trace.marker.size, (int, float)):
            trace.marker.size = trace.marker.size * PROJECTOR_MARKER_SCALE
        if trace.type == "heatmap" and trace.colorbar.tickfont.size:
            trace.colorbar.tickfont.size = _scaled(trace.colorbar.tickfont.size, factor)
        textfont = getattr(trace, "textfont", None)  # bar labels and heatmap cells: sized per trace, not by layout
        if textfont is not None and isinstance(textfont.size, (int, float)):
            textfont.size = _scaled(textfont.size, factor)
    return fig


def is_accuracy_title(text: str | None) -> bool:
    """An axis titled like ``"test accuracy (%)"``: accuracy in percent (not a drop in points, not a fraction)."""
    return bool(text) and "accuracy" in text.lower() and "%" in text


def fixed_accuracy_axis(fig: go.Figure) -> go.Figure:
    """Pin every accuracy axis (``is_accuracy_title``) to ``ACCURACY_RANGE``, in place: the same 0-100 % scale on
    every page and figure, so a drop reads the same everywhere. Returns ``fig``."""
    def pin(axis):
        if is_accuracy_title(axis.title.text) and axis.type != "log":
            axis.update(range=list(ACCURACY_RANGE), autorange=False)

    fig.for_each_xaxis(pin)
    fig.for_each_yaxis(pin)
    return fig


def to_png_bytes(fig: go.Figure, width: int = 900, height: int = 600, scale: float = 1.0) -> bytes:
    """PNG bytes of ``fig`` through kaleido (needs a Chrome/Chromium it can find)."""
    return fig.to_image(format="png", width=width, height=height, scale=scale)
