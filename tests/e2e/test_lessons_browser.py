"""A real browser follows the lesson "Magnitude vs random": each step's Set up opens the Prune page in the step's
state, the page shows the number the lesson reveals (computed here by the library), and Reveal shows the answer.

Reuses the server and browser fixtures of ``test_browser.py`` (one ``streamlit run app.py`` per module).
Screenshots go to ``test-artifacts/screenshots/`` (``SPARSITY_VIZ_SCREENSHOTS=docs/screenshots`` refreshes the
committed ones).
"""

from __future__ import annotations

import os

import pytest

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.lessons import LessonContext, get_lesson
from sparsity_viz.lessons.base import pct
from test_browser import CHROMIUM, SHOTS, _goto, _metric_value, _settle, expect, page, server  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not found at {CHROMIUM}"),
]

LESSON = "magnitude_vs_random"


def test_a_class_follows_magnitude_vs_random(server, page):  # noqa: F811 (pytest fixtures)
    SHOTS.mkdir(parents=True, exist_ok=True)
    lesson = get_lesson(LESSON)
    model, card = load_sample(lesson.steps[0].state.model)
    ctx = LessonContext(model, load_dataset(card["dataset"]["name"]), card, lesson.steps[0].state.model)
    half, rand = lesson.steps[0].reveal(ctx), lesson.steps[2].reveal(ctx)

    page.goto(server + "/?model=moons_mlp")  # a student on another model: Set up switches it
    expect(page.locator('[data-testid="stApp"]')).to_be_visible()
    _settle(page)
    _goto(page, "Lessons")
    expect(page.get_by_role("heading", name="Lessons", exact=True)).to_be_visible()
    expect(page.get_by_text(lesson.summary)).to_be_visible()

    page.get_by_role("button", name="Set up", exact=True).nth(0).click()  # step 1: magnitude at 50 %
    _settle(page)
    expect(page.get_by_role("heading", name="Prune", exact=True)).to_be_visible()
    expect(page.get_by_role("slider", name="Sparsity (% of weights pruned)")).to_have_value("50")
    expect(_metric_value(page, "Test accuracy")).to_have_text(pct(half.numbers["magnitude_50"]))

    _goto(page, "Lessons")
    page.get_by_role("button", name="Reveal").nth(0).click()
    _settle(page)
    expect(page.get_by_text("Answer.").first).to_be_visible()
    expect(page.get_by_text(pct(half.numbers["magnitude_50"])).first).to_be_visible()
    expect(page.get_by_text("The app is set for this step.")).to_be_visible()
    page.screenshot(path=str(SHOTS / "17_lessons.png"))

    page.get_by_role("button", name="Set up", exact=True).nth(2).click()  # step 3: random at 90 %
    _settle(page)
    expect(page.get_by_role("heading", name="Prune", exact=True)).to_be_visible()
    expect(page.get_by_role("slider", name="Sparsity (% of weights pruned)")).to_have_value("90")
    expect(page.get_by_role("combobox", name="Strategy")).to_be_visible()
    expect(_metric_value(page, "Test accuracy")).to_have_text(pct(rand.numbers["random_90"]))
    expect(_metric_value(page, "Weights pruned")).to_have_text("90.0 %")

    _goto(page, "Lessons")
    page.get_by_role("button", name="Reveal").nth(2).click()
    _settle(page)
    expect(page.get_by_text("Answer.").nth(1)).to_be_visible()
    expect(page.get_by_text(f"{abs(100 * rand.numbers['gap']):.1f} points more")).to_be_visible()
