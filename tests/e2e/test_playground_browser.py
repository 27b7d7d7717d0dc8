"""A real browser on the Playground: open it from a link, train live (the network redraws and the URL records
the epochs), click a hidden unit and a connection in the network chart to cut them by hand, then open the URL in a
fresh browser context and see the same network's numbers.

Reuses the server and browser fixtures of ``test_browser.py`` (one ``streamlit run app.py`` per module).
Screenshots go to ``test-artifacts/screenshots/`` (``SPARSITY_VIZ_SCREENSHOTS=docs/screenshots`` refreshes the
committed ones).
"""

from __future__ import annotations

import os
import re

import pytest

from test_browser import CHROMIUM, SHOTS, _settle, expect, page, server  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not found at {CHROMIUM}"),
]

LINK = "/playground?pg_data=circles&pg_epochs=20&pg_dyn=set&pg_s=40&pg_layers=6-5&pg_seed=1"


def _network(pg):
    """The network chart: the Plotly chart whose traces include the clickable hidden units."""
    return pg.locator('[data-testid="stPlotlyChart"]').first


def _click_point(pg, trace, index: int) -> None:
    """Click the marker ``index`` of ``trace`` where it is drawn (Plotly's drag layer takes the real events)."""
    box = trace.locator("path.point").nth(index).bounding_box()
    pg.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    pg.wait_for_timeout(300)  # let Plotly register the hover before the click
    pg.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_playground_trains_live_and_cuts_by_click(server, page):  # noqa: F811 (pytest fixtures)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(server + LINK)
    _settle(page)
    expect(page.get_by_role("heading", name="Playground", exact=True)).to_be_visible()
    expect(page.get_by_text("Epoch 0 / 20")).to_be_visible()
    before = _network(page).inner_html()

    page.get_by_role("button", name="Train", exact=True).click()
    expect(page.get_by_text(re.compile(r"Trained 20 epochs in"))).to_be_visible(timeout=120_000)
    _settle(page)
    expect(page.get_by_text("Epoch 20 / 20")).to_be_visible()
    page.wait_for_url(re.compile(r"pg_at=20"))  # written by the same run, maybe a moment after the text
    assert _network(page).inner_html() != before  # redrawn with the trained weights
    page.screenshot(path=str(SHOTS / "18_playground.png"))

    # the hidden units are the network's last trace: click unit h1.1
    units = _network(page).locator(".scatterlayer .trace").last
    _click_point(page, units, 0)
    expect(page.get_by_text("Cut unit h1.1 at epoch 20")).to_be_visible()
    _settle(page)
    page.wait_for_url(re.compile(r"pg_cuts=20u1x0(&|$)"))

    # the connection handles come two traces before: click the first one (x1 -> h1.1), which toggles it
    handles = _network(page).locator(".scatterlayer .trace").nth(-3)
    _click_point(page, handles, 0)
    expect(page.get_by_text(re.compile(r"(Cut|Restored) connection x1 → h1.1 at epoch 20"))).to_be_visible()
    _settle(page)
    page.wait_for_url(re.compile(r"pg_cuts=20u1x0(%2C|,)20e1x0x0"))

    # the URL is the whole state: a fresh browser context rebuilds the same network and the same numbers
    numbers = page.get_by_text(re.compile(r"Epoch 20 / 20 · connections alive")).inner_text()
    fresh = page.context.browser.new_context(viewport={"width": 1400, "height": 1800}).new_page()
    try:
        fresh.goto(page.url)
        _settle(fresh)
        rebuilt = re.compile(r"Rebuilt from the link: .* 20 epochs trained, 2 hand cuts")
        expect(fresh.get_by_text(rebuilt)).to_be_visible()
        assert fresh.get_by_text(re.compile(r"Epoch 20 / 20 · connections alive")).inner_text() == numbers
    finally:
        fresh.context.close()
