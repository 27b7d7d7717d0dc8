"""A real browser on "What units see": prune LeNet-300-100 to 90 %, open the page, click a receptive-field tile and see
that unit's fan-in and fan-out drawn in the connection graph.

Reuses the server and browser fixtures of ``test_browser.py`` (one ``streamlit run app.py`` per module).
"""

from __future__ import annotations

import os

import pytest

from test_browser import CHROMIUM, SHOTS, _goto, _settle, expect, page, server  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not found at {CHROMIUM}"),
]


def test_click_a_tile_shows_its_connections(server, page):  # noqa: F811 (pytest fixtures)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(server + "/?model=lenet300")
    expect(page.locator('[data-testid="stApp"]')).to_be_visible()
    _settle(page)
    _goto(page, "Prune")
    slider = page.get_by_role("slider", name="Sparsity (% of weights pruned)")
    for _ in range(9):  # 0 -> 90 %
        slider.focus()
        slider.press("PageUp")
        _settle(page)
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_contain_text("90.0 %")

    _goto(page, "What units see")
    expect(page.get_by_role("heading", name="What units see", exact=True)).to_be_visible()
    charts = page.locator('[data-testid="stPlotlyChart"]')
    expect(charts.nth(1)).to_contain_text("Now (90 %)")
    expect(charts.nth(2)).to_contain_text("fc1 unit 0:")
    page.screenshot(path=str(SHOTS / "19_units.png"))

    tile = charts.nth(1).locator(".scatterlayer path.point").nth(7)  # the 8th tile's (transparent) marker
    tile.click(force=True)
    _settle(page)
    expect(charts.nth(2)).to_contain_text("fc1 unit 7:")
    expect(page.get_by_role("spinbutton", name="Unit")).to_have_value("7")
    charts.nth(2).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "19_units_graph.png"))
