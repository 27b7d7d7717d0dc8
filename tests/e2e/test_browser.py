"""A real browser (Playwright + Debian chromium) drives `streamlit run app.py`.

Moves the Prune slider, sees accuracy and the heatmap change, goes through the
sidebar to Connections and Attribution, and saves screenshots of every page
(a tall 1400x1800 viewport, since Streamlit scrolls inside its main block and
full-page captures only show the viewport) to ``test-artifacts/screenshots/``.
To refresh the committed ones, run with
``SPARSITY_VIZ_SCREENSHOTS=docs/screenshots python -m pytest tests/e2e``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / os.environ.get("SPARSITY_VIZ_SCREENSHOTS", "test-artifacts/screenshots")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not found at {CHROMIUM} (apt-get install chromium)"),
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is not installed")
expect = playwright_api.expect
expect.set_options(timeout=60_000)  # the first run imports torch + captum and loads MNIST


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_streamlit(port: int, env: dict, log: Path) -> subprocess.Popen | None:
    """``streamlit run app.py`` on ``port``; None when it did not come up as this process on this port in 60 s.

    A port found free can be taken by another xdist worker's server before this one binds it: then the health
    check could answer from that server, so the process must still be running and its log must name the port.
    """
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.address",
             "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        try:
            ok = urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok"
        except OSError:
            ok = False
        if ok and proc.poll() is None and f"127.0.0.1:{port}" in log.read_text():
            return proc
        time.sleep(0.3)
    proc.kill()
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # sweeps stored in a fresh directory: nothing read back from an earlier run or ~/.cache
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPARSITY_VIZ_RUNS_DIR": str(tmp_path_factory.mktemp("runs")),
           "PYTHONUNBUFFERED": "1"}  # the log names the port as soon as the server says it
    env.pop("RAY_ADDRESS", None)
    # the server's output goes to a file: a pipe nobody reads fills up (64 KB of logs) and then blocks the server
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    for _ in range(3):  # a new free port if another process took this one first
        port = _free_port()
        proc = _start_streamlit(port, env, log)
        if proc is not None:
            break
    else:
        pytest.fail("streamlit did not answer /_stcore/health within 60 s on three ports:\n" + log.read_text()[-3000:])
    url = f"http://127.0.0.1:{port}"
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def page():
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        pg = browser.new_page(viewport={"width": 1400, "height": 1800})
        pg.set_default_timeout(60_000)
        pg.console_errors = []  # the browser's console errors: a failed wait reports them (see _settle)
        pg.on("console", lambda msg: pg.console_errors.append(msg.text[:500]) if msg.type == "error" else None)
        yield pg
        browser.close()


def _settle(pg) -> None:
    """Wait until the script finished its run and the charts are drawn.

    A run that never ends because the frontend gave up its connection (data-test-connection-state
    DISCONNECTED_FOREVER, which Streamlit's frontend enters only on a fatal error, e.g. a websocket message it
    could not process) fails with that state and the browser's console errors, which name the cause.
    """
    pg.wait_for_timeout(400)  # the run-state flag can still read "notRunning" just after an interaction
    try:
        expect(pg.locator('[data-testid="stApp"]')).to_have_attribute("data-test-script-state", "notRunning",
                                                                       timeout=120_000)
    except AssertionError as err:
        state = pg.locator('[data-testid="stApp"]').get_attribute("data-test-connection-state")
        errors = [e for e in getattr(pg, "console_errors", []) if "ERR_NAME_NOT_RESOLVED" not in e]
        raise AssertionError(f"connection state {state}; browser console errors: {errors[-10:]}") from err
    # Polled on the live DOM: a chart of the previous page may still be there when counted and gone a moment
    # later, so never wait on a chart by its index.
    pg.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')]"
        ".every(chart => chart.querySelector('.main-svg'))",
        timeout=60_000,
    )
    pg.wait_for_timeout(500)


def _goto(pg, title: str) -> None:
    print(f"{time.strftime('%X')} -> {title}", flush=True)
    link = pg.locator('[data-testid="stSidebarNav"] a').filter(has=pg.get_by_text(title, exact=True))
    path = urllib.parse.urlparse(link.get_attribute("href")).path
    link.click()
    # The address bar shows the new page once its run has started: on a loaded machine that can take longer than
    # _settle's first 400 ms, and _settle would then see the previous page, idle.
    pg.wait_for_url(lambda url: urllib.parse.urlparse(url).path == path)
    _settle(pg)


def _metric_value(pg, label: str):
    """The value of the metric labelled ``label`` (a locator: ``expect(...).to_have_text`` polls it)."""
    return pg.locator('[data-testid="stMetric"]', has_text=label).locator('[data-testid="stMetricValue"]')


def _metric(pg, label: str) -> str:
    return _metric_value(pg, label).inner_text()


def test_prune_slider_then_connections_and_attribution(server, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(server + "/?model=lenet300")
    expect(page.locator('[data-testid="stApp"]')).to_be_visible()
    expect(page.get_by_text("Watch a neural network lose its weights")).to_be_visible()
    _settle(page)
    page.screenshot(path=str(SHOTS / "1_home.png"))

    _goto(page, "Prune")
    expect(page.get_by_role("heading", name="Prune")).to_be_visible()
    acc0 = _metric(page, "Test accuracy")
    heat = page.locator('[data-testid="stPlotlyChart"]').first
    heat0 = heat.inner_html()
    slider = page.get_by_role("slider", name="Sparsity (% of weights pruned)")
    slider.focus()
    for _ in range(9):  # 0 -> 90 %: End would jump to 100 %; PageUp moves by 10 % of the range
        slider.press("PageUp")
    _settle(page)
    expect(page.get_by_role("slider", name="Sparsity (% of weights pruned)")).to_have_value("90")
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_contain_text("90.0 %")
    slider = page.get_by_role("slider", name="Sparsity (% of weights pruned)")
    slider.focus()
    for _ in range(9):
        slider.press("ArrowRight")  # 99 %: accuracy must move now
    _settle(page)
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_contain_text("99.0 %")
    assert _metric(page, "Test accuracy") != acc0
    assert page.locator('[data-testid="stPlotlyChart"]').first.inner_html() != heat0
    slider = page.get_by_role("slider", name="Sparsity (% of weights pruned)")
    slider.focus()
    for _ in range(9):
        slider.press("ArrowLeft")  # back to 90 % for the screenshots
    _settle(page)
    page.screenshot(path=str(SHOTS / "2_prune.png"))

    _goto(page, "Connections")
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    expect(page.get_by_text("Input fan-out")).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(2)  # polled: drawn after the run reports idle
    page.screenshot(path=str(SHOTS / "5_connections.png"))

    _goto(page, "Attribution")
    expect(page.get_by_role("heading", name="Attribution", exact=True)).to_be_visible()
    expect(page.get_by_text("Rank correlation dense vs current")).to_be_visible()
    page.screenshot(path=str(SHOTS / "6_attribution.png"))

    _goto(page, "Weights")
    expect(page.get_by_text("Where are the zeros?").first).to_be_visible()
    page.screenshot(path=str(SHOTS / "4_weights.png"))

    _goto(page, "Curves")
    page.get_by_role("button", name="Compute curves").click()
    _settle(page)
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(1)
    page.screenshot(path=str(SHOTS / "7_curves.png"))

    _goto(page, "Share & export")
    expect(page.get_by_text("sparsity=90")).to_be_visible()
    page.screenshot(path=str(SHOTS / "8_export.png"))

    _goto(page, "Compare strategies")  # the quick default sweep runs at once
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(2)
    page.screenshot(path=str(SHOTS / "9_compare.png"))

    _goto(page, "Survival maps")  # heatmap, Jaccard, two fan-outs, death times (gradual runs at once)
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(5)
    page.screenshot(path=str(SHOTS / "10_survival.png"))
    page.locator('[data-testid="stPlotlyChart"]').nth(4).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "10_survival_time.png"))

    _goto(page, "Lottery ticket lab")
    rounds = page.get_by_role("spinbutton", name="Rounds")
    rounds.fill("5")
    rounds.press("Enter")
    _settle(page)
    page.get_by_role("button", name="Run the experiment").click()
    _settle(page)
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(1)
    page.screenshot(path=str(SHOTS / "11_lottery.png"))

    _goto(page, "Speed & memory")
    cap = page.get_by_role("spinbutton", name="Time cap (s)")  # 1 s per batch size, not 5: this walk checks the figures, not the timing
    cap.fill("1")
    cap.press("Enter")
    _settle(page)
    page.get_by_role("button", name="Measure").click()
    _settle(page)
    expect(page.locator('[data-testid="stPlotlyChart"]')).to_have_count(3)
    page.screenshot(path=str(SHOTS / "12_speed.png"))
    page.locator('[data-testid="stPlotlyChart"]').nth(2).scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / "12_speed_curves.png"))

    _goto(page, "Regularize (L1)")
    dropout = page.get_by_role("slider", name="Dropout rate")
    for _ in range(6):  # 0 -> 0.3 in steps of 0.05, each rerun settled
        dropout.focus()
        dropout.press("ArrowRight")
        _settle(page)
    expect(dropout).to_have_value("0.3")
    page.get_by_role("button", name="Train", exact=True).click()
    _settle(page)
    expect(page.get_by_text("Finished")).to_be_visible()
    expect(page.get_by_text("train/test gap", exact=False).first).to_be_visible()  # train vs test, side by side
    expect(page.get_by_text("dropout 0.3").first).to_be_visible()  # the current model's origin names it
    page.screenshot(path=str(SHOTS / "3_regularize.png"))


def test_reset_puts_the_slider_back_in_the_browser(server, page):
    """Found by an audit: after Reset the slider still showed 90 in the browser, and the next rerun (any widget)
    sent 90 back and pruned the model again."""
    page.goto(server + "/prune?model=digits_mlp")
    _settle(page)
    slider = page.get_by_role("slider", name="Sparsity (% of weights pruned)")
    slider.focus()
    for _ in range(9):
        slider.press("PageUp")
    _settle(page)
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_contain_text("90.0 %")
    page.get_by_role("button", name="Reset to the dense model").click()
    _settle(page)
    expect(page.get_by_role("slider", name="Sparsity (% of weights pruned)")).to_have_value("0")
    page.get_by_text("Full resolution").click()  # another widget: the page runs again with what the browser holds
    _settle(page)
    expect(page.get_by_role("slider", name="Sparsity (% of weights pruned)")).to_have_value("0")
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_contain_text("0.0 %")


def test_shared_link_opens_the_page_with_its_state(server, page):
    """A link the teacher copied (page path + query) opens that page, through app.py, with that state."""
    page.goto(server + "/prune?model=digits_mlp&strategy=random&scope=layer&sparsity=70")
    _settle(page)
    expect(page.get_by_role("heading", name="Prune")).to_be_visible()
    expect(page.get_by_role("slider", name="Sparsity (% of weights pruned)")).to_have_value("70")
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).to_contain_text("70.0 %")
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav.get_by_text("Lottery ticket lab", exact=True)).to_be_visible()  # st.navigation titles, not file names
    assert "digits_mlp" in page.url and "strategy=random" in page.url


def test_stop_button_ends_a_live_fine_tune(server, page):
    """Click the real Stop button while fine-tuning runs: the run ends early and what was trained is kept."""
    page.goto(server + "/prune?model=lenet300&strategy=magnitude&sparsity=90")
    _settle(page)
    epochs = page.get_by_label("Epochs")
    epochs.fill("50")
    epochs.press("Enter")
    _settle(page)
    page.get_by_role("button", name="Fine-tune 50 epochs").click()
    stop = page.get_by_role("button", name="Stop training")
    expect(stop).to_be_visible()
    expect(page.get_by_text("Training...")).to_be_visible()  # the progress bar has started moving
    stop.click()
    _settle(page)
    expect(page.get_by_text("Stopped after")).to_be_visible()
    message = page.get_by_text("Stopped after").inner_text()
    done = int(message.split("Stopped after ")[1].split(" of ")[0])
    assert 0 <= done < 50, message
    page.screenshot(path=str(SHOTS / "2_prune_stopped.png"))
