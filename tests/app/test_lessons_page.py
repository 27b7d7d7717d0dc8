"""The Lessons page and Home's first steps under AppTest: one click sets the step's state and opens its page, the
page then shows the numbers the lesson reveals (computed here by the library), and Home's text is the library's."""

from __future__ import annotations

import threading

import app_state
import pytest
from apptools import check, open_app

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.lessons import LESSONS, LessonContext, first_steps, get_lesson
from sparsity_viz.lessons import lottery_tickets, survivors
from sparsity_viz.lessons.base import pct
from sparsity_viz.recipes import lottery_recipe

_CTX: dict = {}


def ctx(name: str) -> LessonContext:
    if name not in _CTX:
        model, card = load_sample(name)
        _CTX[name] = LessonContext(model.requires_grad_(True), load_dataset(card["dataset"]["name"]), card, name)
    return _CTX[name]


def reveal(lesson: str, index: int):
    step = get_lesson(lesson).step(index)
    return step.reveal(ctx(step.state.model))


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def set_up(at, lesson: str, index: int):
    """On the Lessons page: pick ``lesson``, press step ``index``'s Set up (it opens the step's page)."""
    at.switch_page("views/17_lessons.py").run()
    check(at)
    if at.selectbox(key="lesson_pick").value != lesson:
        at.selectbox(key="lesson_pick").set_value(lesson).run()
        check(at)
    at.button(key=f"lesson_setup_{lesson}_{index}").click().run()
    check(at)
    page = get_lesson(lesson).step(index).state.page
    assert at.title[0].value != "Lessons", f"Set up did not open {page}"
    at.switch_page(f"views/{page}.py").run()  # AppTest's own page follows st.switch_page; the state stays
    check(at)
    return at


def test_home_states_the_librarys_numbers_and_lessons_reveal_them():
    at = open_app()
    expected = first_steps(ctx("lenet300")).text
    assert any(m.value == expected for m in at.markdown), "Home's 'Try this first' is not the library's text"
    assert "barely moves" not in "".join(m.value for m in at.markdown)

    at.switch_page("views/17_lessons.py").run()
    check(at)
    assert at.title[0].value == "Lessons"
    for name, lesson in LESSONS.items():
        at.selectbox(key="lesson_pick").set_value(name).run()
        check(at)
        heads = [h.value for h in at.subheader if h.value.startswith("Step ")]
        assert len(heads) == len(lesson.steps), name
        assert all(at.button(key=f"lesson_setup_{name}_{i}") for i in range(len(lesson.steps)))
        assert not any(m.value.startswith("**Answer.**") for m in at.markdown)  # nothing revealed yet

    at.selectbox(key="lesson_pick").set_value("magnitude_vs_random").run()
    at.button(key="lesson_reveal_magnitude_vs_random_2").click().run()
    check(at)
    answers = [m.value for m in at.markdown if m.value.startswith("**Answer.**")]
    assert answers == [f"**Answer.** {reveal('magnitude_vs_random', 2).text}"]
    assert at.dataframe, "the reveal's table is shown"


def test_a_reveal_is_computed_once_for_the_class_and_handed_out_as_copies(monkeypatch):
    first = open_app(page="17_lessons")
    first.button(key="lesson_reveal_magnitude_vs_random_0").click().run()
    check(first)
    text = next(m.value for m in first.markdown if m.value.startswith("**Answer.**"))

    def no_second_computation(model):
        raise AssertionError("a second student's reveal was computed again")

    monkeypatch.setattr(app_state.lessons, "_context", no_second_computation)
    second = open_app(page="17_lessons")  # another session
    assert not any(m.value.startswith("**Answer.**") for m in second.markdown)  # revealed per student
    second.button(key="lesson_reveal_magnitude_vs_random_0").click().run()
    check(second)
    assert next(m.value for m in second.markdown if m.value.startswith("**Answer.**")) == text

    got = app_state.lessons.reveal("magnitude_vs_random", 0)
    got.numbers["dense"] = -1.0  # a session changing what it was handed
    assert app_state.lessons.reveal("magnitude_vs_random", 0).numbers["dense"] != -1.0


def test_prune_activations_and_quantize_steps_show_the_revealed_numbers():
    at = open_app("moons_mlp")  # the steps switch the model themselves
    set_up(at, "magnitude_vs_random", 2)
    assert at.title[0].value == "Prune"
    assert at.selectbox(key="sv_model").value == "lenet300"
    assert metric(at, "Test accuracy") == pct(reveal("magnitude_vs_random", 2).numbers["random_90"])
    assert metric(at, "Weights pruned") == "90.0 %"
    at.switch_page("views/17_lessons.py").run()
    assert any(s.value == "The app is set for this step." for s in at.success)

    set_up(at, "layer_vs_global", 1)
    assert at.title[0].value == "Prune" and at.radio(key="prune_scope").value == "global"
    assert metric(at, "Test accuracy") == pct(reveal("layer_vs_global", 1).numbers["global_accuracy"])

    set_up(at, "activations_quantization", 0)
    assert at.title[0].value == "Activations"
    dense_zero = reveal("activations_quantization", 0).numbers["zero_fraction"]
    assert metric(at, "Exactly zero (dense)") == pct(dense_zero)
    set_up(at, "activations_quantization", 1)
    assert metric(at, "Exactly zero (current)") == pct(reveal("activations_quantization", 1).numbers["pruned"])

    set_up(at, "activations_quantization", 2)
    assert at.title[0].value == "Quantize" and at.slider(key="quant_bits").value == 4
    q = reveal("activations_quantization", 2).numbers
    assert metric(at, "Accuracy after quantization") == pct(q["after"])
    assert metric(at, "Accuracy before") == pct(q["before"])


def test_set_up_after_a_home_upload_goes_back_to_the_bundled_model_the_reveal_used():
    """After a Home upload under lenet300's name, Set up kept the uploaded weights, said the app was set, and the
    Prune page showed 89.3 % where the reveal said 94.4 % (an audit)."""
    import torch

    from sparsity_viz.checkpoints import state_dict_to_bytes

    model, _ = load_sample("lenet300")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    at = open_app("lenet300")
    at.file_uploader(key="home_upload").set_value(("mine.safetensors", state_dict_to_bytes(model),
                                                  "application/octet-stream")).run()
    check(at)
    at.switch_page("views/17_lessons.py").run()
    at.selectbox(key="lesson_pick").set_value("magnitude_vs_random").run()
    assert not any(s.value == "The app is set for this step." for s in at.success)  # an upload is not the step
    set_up(at, "magnitude_vs_random", 0)
    assert metric(at, "Test accuracy") == pct(reveal("magnitude_vs_random", 0).numbers["magnitude_50"])
    at.switch_page("views/17_lessons.py").run()
    assert any(s.value == "The app is set for this step." for s in at.success)


def test_l1_survival_and_lottery_steps_set_their_pages():
    at = open_app("lenet300", "10_survival")
    at.selectbox(key="surv_b").set_value("random").run()  # a student's own choice, which the lesson overrides
    check(at)

    set_up(at, "survivors", 1)
    assert at.title[0].value == "Survival maps"
    assert (at.selectbox(key="surv_a").value, at.number_input(key="surv_seed_a").value) == survivors.SURVIVAL_A
    assert (at.selectbox(key="surv_b").value, at.number_input(key="surv_seed_b").value) == survivors.SURVIVAL_B
    assert at.select_slider(key="surv_sparsity").value == round(100 * survivors.SURVIVAL_LEVEL)

    set_up(at, "lottery_tickets", 0)
    assert at.title[0].value == "Lottery ticket lab"
    assert at.selectbox(key="sv_model").value == lottery_tickets.MODEL
    recipe = lottery_recipe(lottery_tickets.MODEL)
    assert at.number_input(key="lottery_rounds").value == recipe.rounds
    assert at.number_input(key="lottery_epochs").value == recipe.epochs
    assert at.select_slider(key="lottery_rewind").value == 0 and at.number_input(key="lottery_seed").value == 0

    set_up(at, "l1_zeros", 1)
    assert at.title[0].value.startswith("Regularize")
    assert at.selectbox(key="sv_model").value == "lenet300"
    assert at.select_slider(key="reg_lambda").value == pytest.approx(get_lesson("l1_zeros").steps[1].state
                                                                   .settings["regularize"]["strength"])
    assert at.select_slider(key="reg_threshold").value == 0.0
    at.button(key="reg_train").click().run()
    check(at)
    share = reveal("l1_zeros", 1).numbers["share"]
    assert at.session_state[app_state.KEY_BENCH].sparsity == pytest.approx(share, abs=1e-9)
    assert any(f"{100 * share:.1f} % of weights are zero" in c.value for c in at.caption), \
        [c.value for c in at.caption]


def test_students_revealing_at_once_compute_it_once(monkeypatch):
    real, calls = app_state.lessons._context, []

    def counted(model):
        calls.append(model)
        return real(model)

    monkeypatch.setattr(app_state.lessons, "_context", counted)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(app_state.lessons.reveal("layer_vs_global", 0)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(answers) == 4
    assert len({a.text for a in answers}) == 1 and len({id(a) for a in answers}) == 4  # copies of one reveal


def test_a_step_is_set_only_while_its_page_settings_hold():
    """Set up of survivors' step 1 also marked step 2 as set, though Survival maps compared magnitude with random
    while step 2 asks about SNIP (an audit): the model and pruning matched, the page settings were not checked."""
    def set_steps(at) -> list[bool]:
        at.switch_page("views/17_lessons.py").run()
        check(at)
        return [b.value == "The app is set for this step." for b in at.success]

    at = open_app("lenet300", "10_survival")
    at.selectbox(key="surv_b").set_value("random").run()
    set_up(at, "survivors", 0)
    assert set_steps(at) == [True]  # step 0 (Connections) only: step 1's survival settings are not in place
    set_up(at, "survivors", 1)
    assert len(set_steps(at)) == 2  # both hold now: one model, one pruning, step 1's page settings
    at.switch_page("views/10_survival.py").run()
    at.selectbox(key="surv_b").set_value("random").run()  # the student changes B: step 1 no longer holds
    check(at)
    assert set_steps(at) == [True]
