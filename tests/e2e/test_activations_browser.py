"""A real browser on the Activations page: open it from the sidebar on LeNet-300-100, change the test input and see
the heatmap redraw, turn on k-winners-take-all and see the zero share become exact.

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

INPUT = "Test input (0 to 999)"  # MNIST-5k's test split has 1,000 inputs


def _heatmap(pg):
    return pg.locator('[data-testid="stPlotlyChart"]').first


def test_activations_input_change_and_kwta(server, page):  # noqa: F811 (pytest fixtures)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(server + "/?model=lenet300")
    expect(page.locator('[data-testid="stApp"]')).to_be_visible()
    _settle(page)

    _goto(page, "Activations")
    expect(page.get_by_role("heading", name="Activations", exact=True)).to_be_visible()
    expect(page.get_by_text("Test input 0").first).to_be_attached()
    dense_zero = _metric(page, "Exactly zero (dense)")
    assert dense_zero.endswith("%") and _metric(page, "Exactly zero (current)") == dense_zero
    before = _heatmap(page).inner_html()

    box = page.get_by_label(INPUT, exact=True).and_(page.locator("input"))
    box.fill("7")
    box.press("Enter")
    _settle(page)
    expect(page.get_by_text("Test input 7").first).to_be_attached()
    assert _heatmap(page).inner_html() != before
    page.screenshot(path=str(SHOTS / "14_activations.png"))

    page.locator("label", has_text="k-winners-take-all").first.click()  # the toggle
    _settle(page)
    label = "Exactly zero (current + k-WTA (k = 30))"
    expect(page.locator('[data-testid="stMetric"]', has_text=label)).to_be_visible()
    kwta_zero = _metric(page, label)
    assert kwta_zero != dense_zero  # k = 30 keeps 30 of 300 and 30 of 100 activations per input
    expect(page.get_by_text("fc1 90.0 %, fc2 70.0 %")).to_be_visible()
    assert _metric(page, "Exactly zero (dense)") == dense_zero
    page.screenshot(path=str(SHOTS / "14_activations_kwta.png"))
