"""Every page for every sample model: no exception, and a real widget change changes the figure's data."""

from __future__ import annotations

import pytest

import app_state
from sparsity_viz.models import get_spec
from apptools import MODELS, chart_specs, check, open_app


def _bench(at):
    return at.session_state[app_state.KEY_BENCH]


@pytest.mark.parametrize("model", MODELS)
def test_home(model):
    at = open_app(model, "1_home")
    assert at.title[0].value.startswith("Watch")
    assert any(model in s.value for s in at.subheader)
    assert any("Try this first" in h.value for h in at.header)
    other = "moons_mlp" if model != "moons_mlp" else "xor_mlp"
    at.button(key=f"home_use_{other}").click().run()
    check(at)
    assert at.selectbox(key="sv_model").value == other
    assert _bench(at).name == other


@pytest.mark.parametrize("model", MODELS)
def test_prune_slider_changes_accuracy_table_and_heatmap(model):
    at = open_app(model, "2_prune")
    before_fig = chart_specs(at)
    before_acc = at.metric[0].value
    at.slider(key="prune_sparsity").set_value(90).run()
    check(at)
    assert chart_specs(at) != before_fig
    assert _bench(at).sparsity == pytest.approx(0.9, abs=0.01)
    table = at.dataframe[0].value
    assert table["sparsity"].iloc[-1] == pytest.approx(90, abs=1)
    assert at.metric[1].value == f"{100 * _bench(at).sparsity:.1f} %"
    at.slider(key="prune_sparsity").set_value(100).run()
    check(at)
    assert at.metric[0].value != before_acc  # a model with no weights left guesses
    assert "points vs dense" in at.metric[0].delta
    at.selectbox(key="prune_strategy").set_value("random").run()
    check(at)
    assert _bench(at).prune_config.strategy == "random"


@pytest.mark.parametrize("model", MODELS)
def test_regularize_trains_and_flows_into_weights(model):
    at = open_app(model, "3_regularize")
    at.number_input(key="reg_epochs").set_value(1).run()
    at.select_slider(key="reg_lambda").set_value(1e-1).run()
    at.select_slider(key="reg_threshold").set_value(1e-2).run()
    at.button(key="reg_train").click().run()
    check(at)
    assert not at.error, [e.value for e in at.error]
    done = [*at.success, *at.warning]  # a toy at lambda 0.1 may fall to chance: a warning, not a failure
    assert done and "Finished 1 epochs" in done[0].value
    wb = _bench(at)
    assert wb.origin.startswith("l1")
    assert wb.sparsity > (0.2 if model in ("lenet300", "lenet5", "digits_mlp") else 0.05)
    assert len(chart_specs(at)) == 1
    at.switch_page("views/4_weights.py").run()
    check(at)
    assert "l1" in at.caption[-1].value or any("l1" in c.value for c in at.caption)


@pytest.mark.parametrize("model", MODELS)
def test_weights_layer_change_changes_heatmap(model):
    at = open_app(model, "2_prune")
    at.slider(key="prune_sparsity").set_value(80).run()
    at.switch_page("views/4_weights.py").run()
    check(at)
    heat, hist = chart_specs(at)
    assert '"pruned"' in heat
    layers = at.selectbox(key="weights_layer").options
    at.selectbox(key="weights_layer").set_value(layers[-1]).run()
    check(at)
    assert chart_specs(at)[0] != heat
    at.toggle(key="weights_logy").set_value(True).run()
    check(at)
    assert '"log"' in chart_specs(at)[1]
    zeros = at.dataframe[0].value
    assert zeros["sparsity"].iloc[-1] == pytest.approx(80, abs=1)


@pytest.mark.parametrize("model", MODELS)
def test_connections_graph_and_side_view(model):
    at = open_app(model, "2_prune")
    at.slider(key="prune_sparsity").set_value(60).run()
    at.switch_page("views/5_connections.py").run()
    check(at)
    specs = chart_specs(at)
    assert len(specs) == 2  # graph + (fan-out image | decision boundary)
    image = get_spec(model).dataset in ("digits", "mnist5k")
    assert ('"heatmap"' in specs[1]) if image else ('"contour"' in specs[1] or '"heatmap"' in specs[1])
    at.slider(key="conn_max_edges").set_value(20).run()
    check(at)
    assert chart_specs(at)[0] != specs[0]
    if image:  # the fan-out's words are measured on the model shown (a fixed sentence claimed the centre survives)
        from sparsity_viz.connectivity import describe_fanout, input_fanout
        from sparsity_viz.data import load_dataset

        wb = _bench(at)
        fan = input_fanout(wb.current, wb.masks, input_shape=load_dataset(wb.dataset).input_shape)
        sentence = describe_fanout(fan)  # "" for 8x8 digits: no centre inside a 4-pixel border
        assert bool(sentence) == (min(fan.shape) > 8)
        assert any(m.value == f"How many surviving connections leave each input pixel. {sentence}".strip()
                   for m in at.markdown)


@pytest.mark.parametrize("model", MODELS)
def test_attribution_sample_change_changes_maps(model):
    at = open_app(model, "2_prune")
    at.slider(key="prune_sparsity").set_value(70).run()
    at.switch_page("views/6_attribution.py").run()
    check(at)
    before = chart_specs(at)
    assert at.metric[0].label.startswith("Rank correlation")
    at.number_input(key="attr_index").set_value(3).run()
    check(at)
    assert chart_specs(at)[0] != before[0]


@pytest.mark.parametrize("model", MODELS)
def test_curves_compute_cache_and_axis(model):
    at = open_app(model, "7_curves")
    at.multiselect(key="curves_levels").set_value([0, 50, 90]).run()
    at.button(key="curves_compute").click().run()
    check(at)
    specs = chart_specs(at)
    assert len(specs) == 1
    frame = at.dataframe[0].value
    assert set(frame["strategy"]) == {"magnitude", "global_magnitude", "random"}
    assert len(frame) == 3 * 3 * 3  # strategies x levels x the 3 default seeds
    at.radio(key="curves_axis").set_value("compression").run()
    check(at)
    assert chart_specs(at)[0] != specs[0]
    assert '"log"' in chart_specs(at)[0]
    # cached per configuration: no compute button while the same configuration is shown
    assert not [b for b in at.button if b.key == "curves_compute"]


@pytest.mark.parametrize("model", MODELS)
def test_export_downloads_and_link(model):
    at = open_app(model, "2_prune")
    at.slider(key="prune_sparsity").set_value(50).run()
    at.switch_page("views/8_export.py").run()
    check(at)
    link = at.code[0].value
    assert f"model={model}" in link and "sparsity=50" in link and "strategy=magnitude" in link
    keys = {b.key for b in at.get("download_button")}
    assert {"export_masks", "export_ckpt", "export_torch_prune"} <= keys


@pytest.mark.parametrize("model", MODELS)
def test_every_page_opens_on_a_pruned_model(model):
    """One session walks all pages after pruning to 80 %: no exception, each page draws its title and content."""
    from apptools import PAGES

    at = open_app(model, "2_prune")
    at.slider(key="prune_sparsity").set_value(80).run()
    check(at)
    for page in PAGES:
        at.switch_page(f"views/{page}.py").run()
        check(at)
        assert at.title, f"{page} drew no title for {model}"
        assert at.markdown, f"{page} drew no text for {model}"
        assert _bench(at).sparsity == pytest.approx(0.8, abs=0.01), f"{page} lost the pruned model"


def test_reset_puts_the_prune_slider_back_and_the_next_rerun_keeps_the_dense_model():
    """Found by an audit in a browser: after Reset the slider still showed 90 (the key was dropped, so the server's
    default never reached the browser) and the next widget change pruned the model back to 90 %."""
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(90).run()
    assert _bench(at).sparsity == pytest.approx(0.9, abs=0.01)
    at.button(key=app_state.keys.RESET).click().run()
    check(at)
    assert at.slider(key="prune_sparsity").value == 0 and _bench(at).sparsity == 0.0
    layers = at.selectbox(key="prune_preview_layer").options
    at.selectbox(key="prune_preview_layer").set_value(layers[1]).run()  # any other widget: the page runs again
    check(at)
    assert at.slider(key="prune_sparsity").value == 0 and _bench(at).sparsity == 0.0
    assert at.session_state[app_state.keys.PRUNE_SLIDER] == 0


def test_the_prune_page_offers_one_shot_strategies_only():
    """Found by an audit: Gradual, Iterative, SET and RigL on the live slider gave plain magnitude's masks under
    their names (they prune while they train); a link naming one is read as the default strategy."""
    from sparsity_viz.pruning import one_shot_strategy_names, scheduled_strategy_names

    at = open_app("digits_mlp", "2_prune")
    assert list(at.selectbox(key="prune_strategy").options) == [
        app_state.strategy_label(n, "digits_mlp") for n in one_shot_strategy_names()]
    assert all(n in at.selectbox(key="prune_strategy").help for n in scheduled_strategy_names())
    linked = open_app(None, None, query={"model": "digits_mlp", "strategy": "gradual", "sparsity": "90"})
    linked.switch_page("views/2_prune.py").run()
    check(linked)
    assert _bench(linked).prune_config is None or _bench(linked).prune_config.strategy != "gradual"


def test_the_strength_help_says_what_the_chosen_penalty_does():
    """It read "shrinks every |w| by learning rate × λ" for L2 and group lasso too (an audit)."""
    from sparsity_viz.regularizers import REGULARIZERS

    at = open_app("moons_mlp", "3_regularize")
    for name in ("l1", "group_lasso", "l2"):
        at.selectbox(key="reg_kind").set_value(name).run()
        check(at)
        assert at.select_slider(key="reg_lambda").help == f"Each SGD step also {REGULARIZERS[name].step}."
