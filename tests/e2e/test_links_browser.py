"""A link made on each page, opened in a fresh browser context (a new session), shows the same numbers.

The teacher's session prunes the moons model to 80 %, fine-tunes it one epoch (so the link carries a training
recipe, not just pruning settings) and moves the Quantize bit slider (a page setting). Then, for every page of
the menu, the address bar's URL is opened in a new browser context: the sidebar's pruned share and accuracies
and every metric on the page must read as in the teacher's session, with no visit to Prune first.

Reuses the server and browser fixtures of ``test_browser.py`` (one ``streamlit run app.py`` per module).
"""

from __future__ import annotations

import os
import re

import pytest

from test_browser import CHROMIUM, SHOTS, _goto, _settle, expect, page, server  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not found at {CHROMIUM}"),
]

ONLY = os.environ.get("SPARSITY_VIZ_LINK_PAGES")  # "Prune,Quantize": check only these pages (debugging)
METRICS = '[data-testid="stMain"] [data-testid="stMetric"]'
SUMMARY = re.compile(r"([\d.]+) % of weights pruned · test accuracy ([\d.]+) % \(dense ([\d.]+) %\)")
PRUNED = re.compile(r"([\d.]+) % (?:of weights )?pruned")
CAPTION_OR_IDLE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  const idle = app && app.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-stale="true"]');
  if (!idle) { window.__svIdleSince = null; return false; }
  const captions = document.querySelectorAll('[data-testid="stSidebar"] [data-testid="stCaptionContainer"]');
  if ([...captions].some(c => c.innerText.includes('Current model'))) return true;
  window.__svIdleSince = window.__svIdleSince || performance.now();
  return performance.now() - window.__svIdleSince > 2000;
}"""


def _numbers(pg) -> dict:
    """What a student compares: the sidebar's pruned share and accuracies (drawn after the page: absent where a page
    stops early, as Speed does before a measurement), the pruned shares the page's captions state, every metric."""
    caption = pg.locator('[data-testid="stSidebar"] [data-testid="stCaptionContainer"]', has_text="Current model")
    # A page that reruns (a sweep) draws it at the end; a page that stops early never does. Wait until the script is
    # idle with nothing stale on screen (a caption of the run before still shows while a rerun draws) and the caption
    # is there, or until it has been idle for 2 s without drawing it (not a fixed 20 s per captionless page).
    pg.evaluate("() => { window.__svIdleSince = null; }")
    pg.wait_for_function(CAPTION_OR_IDLE, polling=100, timeout=20_000)
    sidebar = SUMMARY.search(caption.inner_text()).groups() if caption.count() else None
    main = pg.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').all_inner_texts()
    metrics = pg.locator(METRICS)
    numbers = {"sidebar": sidebar, "captions": [m for text in main for m in PRUNED.findall(text)],
               "metrics": [metrics.nth(i).inner_text() for i in range(metrics.count())]}
    assert numbers["sidebar"] or numbers["captions"], "neither the sidebar nor the page states the pruned share"
    return numbers


def test_a_link_made_on_each_page_shows_the_same_numbers_in_a_fresh_context(server, page):  # noqa: F811
    page.goto(server + "/prune?model=moons_mlp&strategy=magnitude&scope=layer&sparsity=80")
    _settle(page)
    expect(page.locator('[data-testid="stMetric"]', has_text="Weights pruned")).not_to_contain_text("0.0 %")
    epochs = page.get_by_label("Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    _settle(page)
    page.get_by_role("button", name="Fine-tune 1 epochs").click()
    _settle(page)
    expect(page.get_by_text("Finished 1 epochs")).to_be_visible()
    page.wait_for_url(re.compile(r"recipe="))  # the address bar is rewritten by the same run, maybe a moment later
    teacher = _numbers(page)["sidebar"]

    nav = page.locator('[data-testid="stSidebarNav"] a')
    titles = [t.strip().splitlines()[-1].strip() for t in nav.all_inner_texts() if t.strip()]  # after the icon
    assert len(titles) >= 16, titles
    browser = page.context.browser
    checked, opened = [], None
    for title in titles:
        if ONLY and title not in ONLY.split(","):
            continue
        _goto(page, title)
        if title == "Quantize":  # a page setting away from its default: 4 -> 3 bits
            slider = page.get_by_role("slider", name="Bits per weight")
            slider.focus()
            slider.press("ArrowLeft")
            page.wait_for_url(re.compile(r"quant\.bits=3"))  # the rerun for 3 bits has started (or ended)
            _settle(page)
        link, seen = page.url, _numbers(page)
        assert seen["sidebar"] in (teacher, None), (title, seen)  # the fine-tuned model on every page
        assert all(p == teacher[0] for p in seen["captions"]), (title, seen)

        # The link opens in a new context (a new session) while the teacher goes on to the next page; it is checked
        # after that page (the two sessions' runs overlap instead of taking turns).
        if opened:
            checked.append(_check_fresh(*opened))
        context = browser.new_context(viewport={"width": 1400, "height": 1800})
        fresh = context.new_page()
        fresh.set_default_timeout(60_000)
        fresh.goto(link, wait_until="commit")
        opened = (title, link, seen, context, fresh)
    if opened:
        checked.append(_check_fresh(*opened))
    print(f"same numbers on {len(checked)} pages: {', '.join(checked)}")


def _check_fresh(title, link, seen, context, fresh) -> str:
    """The page a link opened in its own context shows what the teacher's session showed."""
    try:
        fresh.wait_for_load_state("load")
        _settle(fresh)
        expect(fresh.locator(METRICS)).to_have_count(len(seen["metrics"]))
        numbers = _numbers(fresh)
        if numbers != seen:
            SHOTS.mkdir(parents=True, exist_ok=True)
            fresh.screenshot(path=str(SHOTS / f"link_mismatch_{title.split()[0].lower()}.png"))
        assert numbers == seen, (title, link)
        if title == "Quantize":
            expect(fresh.get_by_role("slider", name="Bits per weight")).to_have_value("3")
    finally:
        context.close()
    return title
