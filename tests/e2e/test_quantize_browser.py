"""A real browser on the Quantize page: open it from the sidebar on LeNet-300-100, move the bit slider with the
keyboard and watch the numbers change, compute the sparsity x bits grid, then quantize a model pruned to 90 %.

Reuses the server and browser fixtures of ``test_browser.py`` (one ``streamlit run app.py`` per module).
Screenshots go to ``test-artifacts/screenshots/`` (``SPARSITY_VIZ_SCREENSHOTS=docs/screenshots`` refreshes the
committed ones).
"""

from __future__ import annotations

import os

import pytest

from test_browser import CHROMIUM, SHOTS, _goto, _metric, _metric_value, _settle, expect, page, server  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not found at {CHROMIUM}"),
]

BITS = "Bits per weight"


def _press(pg, label: str, key: str, times: int) -> None:
    """Press ``key`` on the slider ``times`` times, letting each rerun finish (overlapping reruns can leave a chart
    undrawn)."""
    for _ in range(times):
        pg.get_by_role("slider", name=label).focus()
        pg.get_by_role("slider", name=label).press(key)
        _settle(pg)


def test_quantize_bit_slider_grid_and_a_pruned_model(server, page):  # noqa: F811 (pytest fixtures)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(server + "/?model=lenet300")
    expect(page.locator('[data-testid="stApp"]')).to_be_visible()
    _settle(page)

    _goto(page, "Quantize")
    expect(page.get_by_role("heading", name="Quantize", exact=True)).to_be_visible()
    expect(page.get_by_role("slider", name=BITS)).to_have_value("4")
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights exactly zero")).to_contain_text("from 0.0 %")
    acc4, zeros4 = _metric(page, "Accuracy after quantization"), _metric(page, "Zeros created")
    assert zeros4 != "0"  # 4-bit uniform rounds the dense model's smallest weights to zero
    hist4 = page.locator('[data-testid="stPlotlyChart"]').first.inner_html()
    page.screenshot(path=str(SHOTS / "13_quantize.png"))

    _press(page, BITS, "ArrowLeft", 2)  # 4 -> 2 bits
    expect(page.get_by_role("slider", name=BITS)).to_have_value("2")
    expect(page.get_by_text("At 2 bits")).to_be_visible()
    assert _metric(page, "Zeros created") != zeros4
    assert _metric(page, "Accuracy after quantization") != acc4
    histogram = page.locator('[data-testid="stPlotlyChart"]').first
    expect(histogram).to_contain_text("2-bit levels")  # drawn after the metrics: wait for its redraw
    assert histogram.inner_html() != hist4

    _press(page, BITS, "ArrowRight", 2)  # back to 4 bits: the same numbers
    expect(page.get_by_role("slider", name=BITS)).to_have_value("4")
    expect(_metric_value(page, "Zeros created")).to_have_text(zeros4)  # the slider moves before the rerun draws

    page.get_by_role("button", name="Compute the grid").click()
    _settle(page)
    grid = page.locator('[data-testid="stPlotlyChart"]').nth(2)
    expect(grid).to_contain_text("fp32")
    grid.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "13_quantize_grid.png"))

    # a pruned current model composes: its pruned weights count as zero before quantization
    _goto(page, "Prune")
    _press(page, "Sparsity (% of weights pruned)", "PageUp", 9)  # 0 -> 90 %
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_contain_text("90.0 %")
    _goto(page, "Quantize")
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights exactly zero")).to_contain_text("from 90.0 %")
    expect(page.get_by_text("magnitude pruning (layer-wise) to 90 % sparsity").first).to_be_visible()
