"""A real browser on the Experts (MoE) page: open it from the sidebar, prune expert 0 and watch accuracy and the
routing heatmap change; the sidebar's model stays as it was.

Reuses the server and browser fixtures of ``test_browser.py`` (one ``streamlit run app.py`` per module).
Screenshots go to ``test-artifacts/screenshots/`` (``SPARSITY_VIZ_SCREENSHOTS=docs/screenshots`` refreshes the
committed ones).
"""

from __future__ import annotations

import os

import pytest

from test_browser import CHROMIUM, SHOTS, _goto, _metric, _settle, expect, page, server  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not found at {CHROMIUM}"),
]


def test_experts_page_prune_an_expert(server, page):  # noqa: F811 (pytest fixtures)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(server + "/?model=moons_mlp")
    expect(page.locator('[data-testid="stApp"]')).to_be_visible()
    _settle(page)

    _goto(page, "Experts (MoE)")
    expect(page.get_by_role("heading", name="Experts (MoE)", exact=True)).to_be_visible()
    acc = _metric(page, "Test accuracy now")
    assert acc == _metric(page, "Bundled model")  # nothing changed yet
    heat = page.locator('[data-testid="stPlotlyChart"]').first
    expect(heat).to_contain_text("Routing by class")
    before = heat.inner_html()
    assert "(pruned)" not in before
    page.screenshot(path=str(SHOTS / "15_experts.png"))

    page.locator('[data-testid="stMultiSelect"]').first.click()
    page.get_by_role("option", name="expert 0").click()
    page.keyboard.press("Escape")
    _settle(page)
    expect(page.get_by_text("is pruned, yet the router still sends")).to_be_visible()
    assert _metric(page, "Test accuracy now") != acc
    heat = page.locator('[data-testid="stPlotlyChart"]').first
    expect(heat).to_contain_text("(pruned)")
    assert heat.inner_html() != before
    page.screenshot(path=str(SHOTS / "15_experts_pruned.png"))

    # the sidebar's workbench model is untouched by the page
    _goto(page, "Prune")
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_contain_text("0.0 %")
