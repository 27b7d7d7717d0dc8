"""Links restore the state on a session's first run: the pruned model, a trained model rebuilt from its recipe,
and every page's settings through one mechanism; an uploaded checkpoint is named as something no link carries."""

from __future__ import annotations

import apptools
import pytest
import torch
from streamlit.testing.v1 import AppTest

import app_state
from app_state.cache import REBUILT, shared_cache
from app_state.url import parse_settings
from sparsity_viz.data import data_batch, load_dataset
from sparsity_viz.pruning import prune
from apptools import check, open_app


def _query(at) -> dict[str, str]:
    """A session's URL parameters, as a link made now carries them."""
    return {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def _summary(at) -> str:
    """The sidebar's current-model caption (pruned %, test accuracy, dense accuracy)."""
    return next(c.value for c in at.sidebar.caption if "Current model" in c.value)


def _open_link(page: str, query: dict) -> AppTest:
    """A new session whose first run opens ``page`` from a link (as a browser opening /<page>?<query>)."""
    at = AppTest.from_file(apptools.APP, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    at.switch_page(f"views/{page}.py")
    at.run()
    check(at)
    return at


def _same_weights(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        torch.testing.assert_close(sa[name], sb[name], rtol=0, atol=0)


# --- the generic page-settings reader (pure) -------------------------------------------------


def test_parse_settings_reads_each_default_type_and_drops_what_does_not_fit():
    defaults = {"bits": 4, "per_channel": False, "lr": 0.1, "layer": None, "k": None, "levels": [0, 50],
                "names": ["a"], "method": "uniform", "empty": []}
    texts = {"bits": "2", "per_channel": "1", "lr": "3e-05", "layer": "fc1.weight", "k": "7", "levels": "30,99.5",
             "names": "a,b", "method": "log", "empty": "0,2", "unknown": "9"}
    assert parse_settings(texts, defaults) == {"bits": 2, "per_channel": True, "lr": 3e-5, "layer": "fc1.weight",
                                               "k": 7, "levels": [30, 99.5], "names": ["a", "b"], "method": "log",
                                               "empty": [0, 2]}
    bad = {"bits": "2.5", "per_channel": "maybe", "lr": "nan", "levels": "30,x"}
    assert parse_settings(bad, defaults) == {}
    ranged = parse_settings({"bits": "9", "levels": "30,120", "method": "log"}, defaults,
                            ranges={"bits": (1, 8), "levels": (0, 100)}, choices={"method": ("uniform",)})
    assert ranged == {}
    # a repeated item reached the sweep (which refuses repeats) as a traceback on Curves and Compare, and the
    # Speed page's table as one after its benchmark ran (an audit)
    assert parse_settings({"levels": "90,90", "names": "a,b,a", "empty": "0,0"}, defaults) == {}


@pytest.mark.parametrize("page,param", [("7_curves", "curves.levels"), ("9_compare", "compare.levels"),
                                        ("12_speed", "speed.batches")])
def test_a_link_that_repeats_a_list_item_is_left_out_with_a_warning(page, param):
    at = open_app(query={"model": "moons_mlp", param: "1,1" if "batches" in param else "90,90"})
    at.switch_page(f"views/{page}.py").run()
    check(at)
    assert any(f"{param} '" in w.value and "not understood" in w.value for w in at.warning)


# --- the workbench state ---------------------------------------------------------------------


def test_a_pruning_link_applies_on_the_first_run_before_any_page_draws():
    at = open_app(query={"model": "digits_mlp", "strategy": "random", "scope": "layer", "sparsity": "80", "seed": "3"})
    wb = at.session_state[app_state.KEY_BENCH]  # after the first run, on Home: no visit to Prune needed
    assert wb.name == "digits_mlp" and wb.prune_config.seed == 3
    assert "80.0 % of weights pruned" in _summary(at)
    ds = load_dataset("digits")
    ref = prune(wb.dense, "random", 0.8, scope="layer", seed=3, batch=data_batch(ds, seed=3)).masks
    assert all(torch.equal(wb.masks[k], ref[k]) for k in ref)  # the library's masks, seed included
    at.switch_page("views/5_connections.py").run()
    check(at)
    assert any("80.0 % pruned" in c.value for c in at.caption)
    assert _query(at)["seed"] == "3" and "recipe" not in _query(at)


def test_a_fine_tuned_model_link_rebuilds_the_same_weights_once_for_a_class():
    a = open_app("digits_mlp", "2_prune")
    a.slider(key="prune_sparsity").set_value(80).run()
    a.number_input(key="prune_ft_epochs").set_value(1).run()
    a.button(key="prune_finetune").click().run()
    check(a)
    link = _query(a)
    assert link["recipe"].startswith("prune:strategy=magnitude,scope=layer,sparsity=80,seed=0;train:start=current")
    wa = a.session_state[app_state.KEY_BENCH]

    b = _open_link("2_prune", link)  # a student opens the link on Prune: the model is trained again, seeded
    wb = b.session_state[app_state.KEY_BENCH]
    _same_weights(wb.current, wa.current)
    assert wb.recipe == wa.recipe and "rebuilt from the link" in wb.origin
    assert any("Rebuilt from the link" in s.value for s in b.sidebar.success)
    assert b.title[0].value == "Prune"  # the page the link names, in the same run (no rerun to Home)
    a.run()
    assert [m.value for m in b.metric] == [m.value for m in a.metric]  # accuracy, pruned share, weights left
    b.run()  # the Prune page keeps the rebuilt model
    _same_weights(b.session_state[app_state.KEY_BENCH].current, wa.current)

    c = _open_link("5_connections", link)  # the next student: from the shared cache, a copy
    wc = c.session_state[app_state.KEY_BENCH]
    _same_weights(wc.current, wa.current)
    cached = [v for v in shared_cache(REBUILT).values()]
    assert len(cached) == 1 and wc.current is not cached[0].model and wc.current is not wb.current


def test_an_l1_model_link_rebuilds_it_and_the_regularize_settings():
    a = open_app("moons_mlp", "3_regularize")
    a.number_input(key="reg_epochs").set_value(3).run()
    a.select_slider(key="reg_threshold").set_value(0.01).run()
    a.button(key="reg_train").click().run()
    check(a)
    link = _query(a)
    assert "train:start=dense" in link["recipe"] and link["reg.epochs"] == "3"
    b = open_app(query=link)
    _same_weights(b.session_state[app_state.KEY_BENCH].current, a.session_state[app_state.KEY_BENCH].current)
    assert _summary(b).split("**Current model:**")[1].split("\n", 1)[1] == _summary(a).split("\n", 1)[1]
    b.switch_page("views/3_regularize.py").run()
    check(b)
    assert b.number_input(key="reg_epochs").value == 3
    assert b.select_slider(key="reg_lambda").value == a.select_slider(key="reg_lambda").value


def test_a_bad_recipe_says_so_and_the_link_still_prunes():
    at = open_app(query={"model": "moons_mlp", "sparsity": "50", "recipe": "train:epochs=lots"})
    assert any("recipe was not understood" in e.value for e in at.sidebar.error)
    assert at.session_state[app_state.KEY_BENCH].sparsity == pytest.approx(0.5, abs=0.01)
    huge = open_app(query={"model": "moons_mlp", "recipe": "train:epochs=" + "9" * 100_000})  # quoted whole before
    [error] = [e.value for e in huge.sidebar.error if "recipe was not understood" in e.value]
    assert len(error) < 600 and "…" in error
    costly = open_app(query={"model": "moons_mlp", "recipe": ";".join(["train:epochs=200,batch_size=16"] * 6)})
    assert any("add up to 2,400 epochs at batch 32" in e.value for e in costly.sidebar.error)
    assert not costly.session_state[app_state.KEY_BENCH].recipe.trained  # nothing trained: the bundled model


def test_a_link_sparsity_the_slider_cannot_show_is_left_out_not_rounded():
    """sparsity=99.5 became 100 % (every weight pruned) without a word (an audit); the slider moves in whole %."""
    from app_state.url import parse_query

    url = parse_query({"sparsity": "99.5"}, ["moons_mlp"])
    assert url.ignored == ("sparsity '99.5'",) and url.prune.sparsity == 0.0
    assert parse_query({"sparsity": "99"}, ["moons_mlp"]).prune.sparsity == 0.99


def test_link_values_that_are_not_understood_are_named_and_the_rest_applies():
    at = open_app(query={"model": "moons_mlp", "strategy": "bogus", "sparsity": "nan", "seed": "-1", "lam": "inf",
                         "scope": "global"})
    warned = [w.value for w in at.sidebar.warning]
    assert any("This link's strategy 'bogus', sparsity 'nan', seed '-1', lam 'inf' were not understood and left out"
               in w for w in warned), warned
    wb = at.session_state[app_state.KEY_BENCH]
    assert wb.name == "moons_mlp" and wb.sparsity == 0.0  # the model applies; the bad sparsity does not
    long = open_app(query={"model": "z" * 500, "sparsity": "30"})
    warned = [w.value for w in long.sidebar.warning]
    assert any(f"This link's model '{'z' * 39}…' was not understood" in w for w in warned), warned
    assert long.session_state[app_state.KEY_BENCH].sparsity == pytest.approx(0.3, abs=0.01)
    clean = open_app(query={"model": "moons_mlp", "sparsity": "30"})
    assert not clean.sidebar.warning and not clean.sidebar.error


def test_an_uploaded_checkpoint_is_named_as_something_no_link_carries():
    at = open_app("moons_mlp", "1_home")
    model = app_state.shared_model("moons_mlp")
    from safetensors.torch import save

    data = save({k: v * 0.5 for k, v in model.state_dict().items()})
    at.file_uploader(key="home_upload").set_value(("mine.safetensors", data, "application/octet-stream")).run()
    check(at)
    at.switch_page("views/8_export.py").run()
    check(at)
    assert any("A link cannot carry an uploaded checkpoint" in w.value for w in at.warning)
    assert any("A link cannot carry" in c.value for c in at.sidebar.caption)
    assert at.session_state[app_state.KEY_BENCH].recipe is None


# --- every page's own settings ---------------------------------------------------------------


@pytest.mark.parametrize("page, widget, key, value, param", [
    ("4_weights", "toggle", "weights_logy", True, ("weights.logy", "1")),
    ("5_connections", "slider", "conn_max_edges", 400, ("connections.edges", "400")),
    ("10_survival", "select_slider", "surv_sparsity", 70, ("survival.level", "70")),
    ("13_quantize", "slider", "quant_bits", 2, ("quant.bits", "2")),
    ("7_curves", "number_input", "curves_seeds", 2, ("curves.seeds", "2")),
])
def test_a_page_setting_travels_in_the_link(page, widget, key, value, param):
    a = open_app("moons_mlp", page)
    getattr(a, widget)(key=key).set_value(value).run()
    check(a)
    link = _query(a)
    assert link.get(param[0]) == param[1]
    b = open_app(query=link)
    b.switch_page(f"views/{page}.py").run()
    check(b)
    assert getattr(b, widget)(key=key).value == value


def test_bad_page_settings_and_foreign_parameters():
    at = open_app(query={"model": "moons_mlp", "quant.bits": "abc", "sensitivity.seeds": "99",
                         "weights.hist": "sideways", "survival.a": "nope", "pg_layers": "4-4"})
    defaults = {"13_quantize": ("slider", "quant_bits", 4), "16_sensitivity": ("number_input", "sens_seeds", 1),
                "4_weights": ("radio", "weights_hist_scope", "this layer"),
                "10_survival": ("selectbox", "surv_a", "magnitude")}
    bad = {"13_quantize": "quant.bits 'abc'", "16_sensitivity": "sensitivity.seeds '99'",
           "4_weights": "weights.hist 'sideways'", "10_survival": "survival.a 'nope'"}
    for page, (widget, key, default) in defaults.items():
        at.switch_page(f"views/{page}.py").run()
        check(at)  # ignored: the page opens on its defaults, says which setting it left out, and drops it from the URL
        assert getattr(at, widget)(key=key).value == default
        if page != "10_survival":  # Survival trains at once and redraws the page from the result (st.rerun)
            assert any(f"This link's {bad[page]} was not understood and left out" in w.value for w in at.warning), page
        assert bad[page].split()[0] not in _query(at)
        at.run()  # said once: the next rerun of the page is quiet
        assert not any("not understood" in w.value for w in at.warning), page
    assert _query(at).get("pg_layers") == "4-4"  # the playground's own parameters are left alone


def test_unknown_choices_in_a_link_are_said_not_dropped_silently():
    """Levels, strategies and formats the page does not offer were once filtered out without a word."""
    at = open_app(query={"model": "moons_mlp", "sensitivity.levels": "100,0", "sensitivity.strategy": "evil",
                         "speed.formats": "evil"})
    at.switch_page("views/16_sensitivity.py").run()
    check(at)
    said = " ".join(w.value for w in at.warning)
    assert "sensitivity.levels '100,0'" in said and "sensitivity.strategy 'evil'" in said and "not understood" in said
    assert at.multiselect(key="sens_levels").value == [50, 70, 90, 95, 99]  # the page's defaults
    at.switch_page("views/12_speed.py").run()
    check(at)
    assert any("This link's speed.formats 'evil' was not understood" in w.value for w in at.warning)


def test_unknown_layers_and_lesson_steps_in_a_link_are_said():
    """A layer the model does not have, or a lesson step no lesson has, fell back without a word."""
    at = open_app(query={"model": "moons_mlp", "weights.layer": "evil", "prune_view.layer": "fc9",
                         "quant.layer": "nope.weight", "lesson.step": "999"})
    for page, name, value in (("views/4_weights.py", "weights.layer", "evil"), ("views/2_prune.py", "prune_view.layer", "fc9"),
                              ("views/13_quantize.py", "quant.layer", "nope.weight"),
                              ("views/17_lessons.py", "lesson.step", "999")):
        at.switch_page(page).run()
        check(at)
        assert any(f"{name} '{value}'" in w.value and "not understood" in w.value for w in at.warning), page
        assert _query(at).get(name) != value, page  # dropped from the address bar (or replaced by what the page shows)
    at.switch_page("views/4_weights.py").run()
    assert at.selectbox(key="weights_layer").value == at.selectbox(key="weights_layer").options[0]


def test_known_layers_in_a_link_are_taken():
    at = open_app(query={"model": "lenet300", "weights.layer": "fc2", "prune_view.layer": "fc3", "quant.layer": "fc2.weight"})
    at.switch_page("views/4_weights.py").run()
    check(at)
    assert at.selectbox(key="weights_layer").value == "fc2" and not any("not understood" in w.value for w in at.warning)
    at.switch_page("views/2_prune.py").run()
    assert at.selectbox(key="prune_preview_layer").value == "fc3"
    at.switch_page("views/13_quantize.py").run()
    check(at)
    assert at.selectbox(key="quant_layer").value == "fc2.weight"


def test_the_link_carries_the_pruning_of_the_model_shown_after_a_model_switch():
    """A switch of model rebuilds the workbench dense, but the link still said sparsity=90: the class opened a
    90 %-pruned model while the sender's page showed a dense one (an audit)."""
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(90).run()
    at.switch_page("views/8_export.py").run()
    assert at.query_params["sparsity"] == "90"
    at.selectbox(key="sv_model").set_value("moons_mlp").run()
    at.selectbox(key="sv_model").set_value("lenet300").run()
    check(at)
    assert at.session_state[app_state.KEY_BENCH].sparsity == 0.0
    assert at.query_params["sparsity"] == "0"
    at.switch_page("views/2_prune.py").run()  # the Prune page applies its settings: now the link says so
    check(at)
    assert at.session_state[app_state.KEY_BENCH].sparsity == pytest.approx(0.9, abs=0.01)
    assert at.query_params["sparsity"] == "90"
