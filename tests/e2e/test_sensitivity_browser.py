"""A real browser on the Layer sensitivity page: open it from the sidebar on digits_mlp, see the info line (no
figure), press Scan, see the figure and the reading, then move the overall-sparsity slider and watch the per-layer
targets change.

Reuses the server and browser fixtures of ``test_browser.py`` (one ``streamlit run app.py`` per module).
Screenshots go to ``test-artifacts/screenshots/`` (``SPARSITY_VIZ_SCREENSHOTS=docs/screenshots`` refreshes the
committed ones).
"""

from __future__ import annotations

import os

import pytest

from test_browser import CHROMIUM, SHOTS, _goto, _settle, expect, page, server  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not found at {CHROMIUM}"),
]

TARGET = "Overall sparsity (%)"


def test_sensitivity_scan_and_guided_targets(server, page):  # noqa: F811 (pytest fixtures)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(server + "/?model=digits_mlp")
    expect(page.locator('[data-testid="stApp"]')).to_be_visible()
    _settle(page)

    _goto(page, "Layer sensitivity")
    expect(page.get_by_role("heading", name="Layer sensitivity", exact=True)).to_be_visible()
    expect(page.get_by_text("Press Scan to prune each layer of digits_mlp")).to_be_visible()
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 0  # no empty figure before a scan

    page.get_by_role("button", name="Scan").click()
    _settle(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    expect(chart).to_contain_text("fc1")
    expect(chart).to_contain_text("dense")
    expect(page.get_by_text("Within 1 point of the dense accuracy")).to_be_visible()
    page.screenshot(path=str(SHOTS / "16_sensitivity.png"))

    caption = page.get_by_text("weights pruned =")
    expect(caption).to_contain_text("2,131 of 2,368")  # round(90 % x 2,368)
    slider = page.get_by_role("slider", name=TARGET)
    slider.scroll_into_view_if_needed()
    for _ in range(3):  # 90 % down by three page steps, one rerun at a time
        slider.focus()
        slider.press("PageDown")
        _settle(page)
    value = int(slider.get_attribute("aria-valuetext"))
    assert value < 70
    expect(page.get_by_text("weights pruned =")).to_contain_text(f"{round(value / 100 * 2368):,} of 2,368")
    page.screenshot(path=str(SHOTS / "16_sensitivity_targets.png"))
