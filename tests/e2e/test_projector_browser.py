"""Projector mode in a real browser at a 1280x720 viewport (a classroom projector).

* The Prune page shows the sparsity slider, its three numbers and the heatmap without scrolling, with and without
  projector mode.
* On Compare and Weights, no legend's box overlaps an axis title's box (measured in the rendered SVG), with and
  without projector mode.
* SynFlow on LeNet-300-100 (measured slow for the live slider) is marked in the menu and prunes behind a spinner that
  says how long it takes.

Reuses the server and browser fixtures of ``test_browser.py``. Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os

import pytest

from test_browser import CHROMIUM, SHOTS, _goto, _settle, expect, page, server  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not found at {CHROMIUM}"),
]

VIEWPORT = {"width": 1280, "height": 720}
SLIDER = "Sparsity (% of weights pruned)"

# Per chart: the legend's box and every axis title's box (x, y, x2, y2 in viewport pixels).
BOXES_JS = """() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]')).map(chart => {
  const box = el => { const b = el.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const legend = chart.querySelector('.legend');
  const titles = Array.from(chart.querySelectorAll('g[class^="g-x"][class$="title"] text, g[class^="g-y"][class$="title"] text'))
    .filter(t => t.textContent.trim()).map(t => ({text: t.textContent, box: box(t)}));
  return {legend: legend && legend.getBBox().width > 0 ? box(legend) : null, titles: titles};
})"""


def _overlap(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


def _legend_collisions(pg, expected: int) -> tuple[int, list[str]]:
    """(charts with a legend and an axis title, 'title' of each axis title a legend overlaps).

    Waits first until ``expected`` such charts are drawn: Plotly lays out a legend after the chart's SVG appears,
    and on a loaded machine the page's run can report idle a moment before its chart is in the DOM.
    """
    pg.wait_for_function(f"() => ({BOXES_JS})().filter(c => c.legend && c.titles.length).length >= {expected}",
                         timeout=60_000)
    charts = pg.evaluate(BOXES_JS)
    measured = [c for c in charts if c["legend"] and c["titles"]]
    return len(measured), [t["text"] for c in measured for t in c["titles"] if _overlap(c["legend"], t["box"]) > 0]


def _visible_without_scrolling(pg, locator, what: str) -> None:
    box = locator.bounding_box()
    assert box is not None, what
    assert box["y"] >= 0 and box["y"] + box["height"] <= VIEWPORT["height"], (what, box)
    assert box["x"] >= 0 and box["x"] + box["width"] <= VIEWPORT["width"], (what, box)


def _prune_page_fits(pg, attempts: int = 20) -> None:
    """The Prune page's first screen holds the slider, the metrics and the heatmap; retried for up to ~10 s, since a
    rerun (projector mode toggled) moves things while Streamlit and Plotly lay the page out again."""
    for attempt in range(attempts):
        try:
            _first_screen_holds_everything(pg)
            return
        except AssertionError:
            if attempt == attempts - 1:
                raise
            pg.wait_for_timeout(500)


def _first_screen_holds_everything(pg) -> None:
    scrolled = pg.evaluate("() => [window.scrollY, ...Array.from(document.querySelectorAll('[data-testid=\"stMain\"], "
                           "[data-testid=\"stAppViewContainer\"]')).map(e => e.scrollTop)]")
    assert not any(scrolled), scrolled  # nothing scrolled: what is visible is the first screen
    _visible_without_scrolling(pg, pg.locator('[data-testid="stSlider"]', has_text=SLIDER), "slider")
    for label in ("Test accuracy", "Weights pruned", "Weights left"):
        _visible_without_scrolling(pg, pg.locator('[data-testid="stMetric"]', has_text=label), label)
    heatmap = pg.locator('[data-testid="stPlotlyChart"]').first
    _visible_without_scrolling(pg, heatmap.locator(".main-svg").first, "heatmap")


def _toggle_projector(pg) -> None:
    pg.locator('[data-testid="stSidebar"]').get_by_text("Projector mode", exact=True).click()
    _settle(pg)


def test_prune_fits_1280x720_with_and_without_projector_mode(server, page):  # noqa: F811 (pytest fixtures)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(VIEWPORT)
    page.goto(server + "/?model=lenet300")  # the case: a 300 x 784 heatmap
    expect(page.locator('[data-testid="stApp"]')).to_be_visible()
    _settle(page)
    _goto(page, "Prune")
    slider = page.get_by_role("slider", name=SLIDER)
    slider.focus()
    for _ in range(9):  # 0 -> 90 %
        slider.press("PageUp")
    _settle(page)
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_contain_text("90.0 %")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    _prune_page_fits(page)
    page.screenshot(path=str(SHOTS / "projector_prune_1280x720.png"))
    _toggle_projector(page)
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_contain_text("90.0 %")
    _prune_page_fits(page)
    page.screenshot(path=str(SHOTS / "projector_prune_1280x720_on.png"))
    _toggle_projector(page)  # back off for the next test


def test_legends_clear_axis_titles_on_weights_and_compare(server, page):  # noqa: F811 (pytest fixtures)
    page.set_viewport_size(VIEWPORT)
    page.goto(server + "/?model=digits_mlp")  # a small model: Compare's default sweep takes seconds
    _settle(page)
    for projector in (False, True):
        if projector:
            _toggle_projector(page)
        _goto(page, "Weights")
        charts, hits = _legend_collisions(page, 1)
        assert charts >= 1 and not hits, (projector, hits)  # the histogram: legend under "weight value"
        _goto(page, "Compare strategies")  # the quick default sweep runs at once (cached the second time)
        expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(2)
        _settle(page)
        charts, hits = _legend_collisions(page, 2)
        assert charts == 2 and not hits, (projector, hits)
        page.locator('[data-testid="stPlotlyChart"]').first.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / f"projector_compare_{'on' if projector else 'off'}.png"))
    _toggle_projector(page)


def test_a_slow_strategy_is_marked_and_prunes_behind_a_spinner(server, page):  # noqa: F811 (pytest fixtures)
    page.set_viewport_size(VIEWPORT)
    page.goto(server + "/?model=lenet300")
    _settle(page)
    _goto(page, "Prune")
    page.locator('[data-testid="stSelectbox"]', has_text="Strategy").first.click()
    option = page.get_by_role("option", name="SynFlow", exact=False)
    expect(option).to_contain_text("slow: ~")  # marked from benchmarks/live_prune.py's record
    option.click()
    expect(page.get_by_text("Pruning with SynFlow", exact=False)).to_be_visible()
    expect(page.get_by_text("(measured)", exact=False)).to_be_visible()
    _settle(page)
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_be_visible()
