"""Every page at 1280x720 (a classroom projector), with and without projector mode: in no figure does text run
into other text (titles, axis titles, annotations, legends, colour bars) or past the figure's edge, and no colour
bar sits on a plot. Measured on the rendered SVG in a real browser.

An audit's browser walk found graph notes running into each other, titles cut at the right of half-width columns,
a colour bar on the attribution difference map and subplot titles under figure titles; these checks find each of
them on the code before the fixes. Reuses the server and browser fixtures of ``test_browser.py``.
"""

from __future__ import annotations

import os

import pytest

from test_browser import CHROMIUM, _settle, page, server  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not found at {CHROMIUM}"),
]

VIEWPORT = {"width": 1280, "height": 720}

# Per chart: the SVG's box, each text-bearing element's box (kind, text) and each plot area's box.
TEXT_BOXES_JS = """() => Array.from(document.querySelectorAll('[data-testid="stPlotlyChart"]')).map((chart, index) => {
  const svg = chart.querySelector('.main-svg');
  if (!svg) return null;
  const box = el => { const b = el.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
  const items = [];
  const add = (kind, el, text) => {
    const b = box(el);
    if (b[2] - b[0] > 0 && b[3] - b[1] > 0) items.push({kind, text: (text ?? el.textContent).trim().slice(0, 60), box: b});
  };
  chart.querySelectorAll('.g-gtitle text').forEach(t => add('title', t));
  chart.querySelectorAll('g[class^="g-x"][class$="title"] text, g[class^="g-y"][class$="title"] text')
    .forEach(t => t.textContent.trim() && add('axis title', t));
  chart.querySelectorAll('g.annotation').forEach(a => add('note', a));
  chart.querySelectorAll('.legend').forEach(l => l.getBBox().width > 0 && add('legend', l, 'legend'));
  chart.querySelectorAll('.colorbar').forEach(c => add('colour bar', c, 'colour bar'));
  return {index, svg: box(svg), items, plots: Array.from(chart.querySelectorAll('.nsewdrag')).map(box)};
}).filter(Boolean)"""


def _overlap(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0)


def layout_problems(charts: list[dict]) -> list[str]:
    """Text past its figure's left or right edge, two texts overlapping (> 4 px²), a colour bar on a plot area."""
    found = []
    for c in charts:
        left, right = c["svg"][0] - 1, c["svg"][2] + 1
        items = c["items"]
        found += [f"chart {c['index']}: {i['kind']} cut at the edge: {i['text']!r}" for i in items
                  if i["box"][0] < left or i["box"][2] > right]
        found += [f"chart {c['index']}: {a['kind']} {a['text']!r} runs into {b['kind']} {b['text']!r}"
                  for k, a in enumerate(items) for b in items[k + 1:] if _overlap(a["box"], b["box"]) > 4]
        found += [f"chart {c['index']}: a colour bar sits on a plot" for bar in items if bar["kind"] == "colour bar"
                  for plot in c["plots"] if _overlap(bar["box"], plot) > 20]
    return found


def test_the_overlap_check_finds_text_on_text():
    """The check itself: two notes in one place, a title past the right edge, a colour bar on a plot."""
    chart = {"index": 0, "svg": [0, 0, 400, 300], "plots": [[50, 50, 300, 250]], "items": [
        {"kind": "note", "text": "a", "box": [10, 10, 60, 30]},
        {"kind": "note", "text": "b", "box": [40, 20, 90, 40]},
        {"kind": "title", "text": "long", "box": [20, 0, 420, 20]},
        {"kind": "colour bar", "text": "colour bar", "box": [280, 60, 320, 200]},
    ]}
    assert layout_problems([chart]) == [
        "chart 0: title cut at the edge: 'long'",
        "chart 0: note 'a' runs into note 'b'",
        "chart 0: note 'a' runs into title 'long'",
        "chart 0: a colour bar sits on a plot",
    ]


def _pages(pg) -> list[str]:
    links = pg.locator('[data-testid="stSidebarNav"] a')
    return [links.nth(i).inner_text().split("\n")[-1].strip() for i in range(links.count())]


def test_every_page_keeps_its_figure_text_apart_at_1280x720(server, page):  # noqa: F811 (pytest fixtures)
    """LeNet-300-100 pruned to 90 %, the class's model (a walk of 38 page views; other models were walked by hand)."""
    page.set_viewport_size(VIEWPORT)
    page.goto(server + "/?model=lenet300&strategy=magnitude&sparsity=90")
    _settle(page)
    titles = _pages(page)
    problems = []
    for projector in (False, True):
        if projector:
            page.locator('[data-testid="stSidebar"]').get_by_text("Projector mode", exact=True).click()
            _settle(page)
        for title in titles:
            page.locator('[data-testid="stSidebarNav"] a').nth(titles.index(title)).click()
            _settle(page)
            page.wait_for_timeout(1000)  # Plotly lays legends and colour bars out after the SVG appears
            problems += [f"{title} (projector {projector}): {p}" for p in layout_problems(page.evaluate(TEXT_BOXES_JS))]
    page.locator('[data-testid="stSidebar"]').get_by_text("Projector mode", exact=True).click()  # off again
    _settle(page)
    assert not problems, "\n".join(problems)
