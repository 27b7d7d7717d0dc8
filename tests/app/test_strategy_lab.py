"""The strategy-lab pages (Compare, Survival maps, Lottery ticket lab) and the collapse warning on Prune.

Real widget changes must change the figure data; several sample models; caches
cleared by conftest. Runs are kept tiny (few levels, 1-2 rounds, 1 epoch).
"""

from __future__ import annotations

import json

import pytest

import app_state
from sparsity_viz.pruning import STRATEGIES
from apptools import chart_specs, charts, check, open_app


def _names(fig: dict) -> list[str]:
    return [t.get("name") for t in fig["data"]]


@pytest.mark.parametrize("model", ["moons_mlp", "digits_mlp", "lenet300"])
def test_compare_defaults_run_at_once_and_widgets_change_the_data(model):
    at = open_app(model, "9_compare")
    curves, profile = charts(at)
    names = _names(curves)
    assert {STRATEGIES[n].label for n in ("magnitude", "global_magnitude", "snip", "erdos_renyi", "random")} <= set(names)
    assert any(n and n.startswith("dense baseline") for n in names)
    assert curves["layout"]["xaxis"]["title"]["text"].startswith("sparsity (%")
    assert len(at.dataframe[0].value) == 5 * 8  # summary: 5 strategies x 8 levels (mean over the 3 default seeds)
    before = chart_specs(at)
    at.multiselect(key="compare_levels").set_value([0, 50, 90]).run()
    check(at)
    assert len(at.dataframe[0].value) == 5 * 3 and chart_specs(at)[0] != before[0]
    at.radio(key="compare_axis").set_value("compression").run()
    check(at)
    assert '"log"' in chart_specs(at)[0]
    at.select_slider(key="compare_profile_level").set_value(50).run()
    check(at)
    assert chart_specs(at)[1] != before[1]
    bars = [t for t in charts(at)[1]["data"] if t["type"] == "bar"]
    assert len(bars) == 5 and charts(at)[1]["layout"]["barmode"] == "group"


def test_compare_seeds_band_finetuning_and_stop():
    at = open_app("moons_mlp", "9_compare")
    at.multiselect(key="compare_strategies").set_value(["magnitude", "snip"]).run()
    at.multiselect(key="compare_levels").set_value([0, 70, 95]).run()
    at.number_input(key="compare_seeds").set_value(4).run()  # expensive setting (> 3 seeds): waits for the button
    check(at)
    assert at.button(key="compare_compute").label == "Compute"
    at.button(key="compare_compute").click().run()
    check(at)
    fig = charts(at)[0]
    assert any(t.get("fill") == "tonexty" for t in fig["data"])  # mean ± std band over the 4 seeds
    assert len(at.dataframe[0].value) == 3 * 3  # summary: 3 strategies x 3 levels
    at.number_input(key="compare_seeds").set_value(1).run()
    at.number_input(key="compare_ft").set_value(1).run()
    at.session_state[app_state.KEY_STOP] = True  # Stop: the sweep ends at once and keeps nothing/what finished
    at.button(key="compare_compute").click().run()
    check(at)
    at.run()  # (a real Stop click reruns the page by itself)
    assert at.button(key="compare_compute").label == "Compute the rest"
    assert any("Stopped" in w.value for w in at.warning)
    at.button(key="compare_compute").click().run()
    check(at)
    names = _names(charts(at)[0])
    label = STRATEGIES["magnitude"].label
    assert f"{label} (fine-tuned)" in names and f"{label} (no fine-tuning)" in names


def test_compare_lenet5_waits_for_the_button():
    at = open_app("lenet5", "9_compare")
    assert len(charts(at)) == 1  # only the per-layer profile; the sweep waits
    assert any("LeNet-5" in c.value for c in at.caption)
    at.multiselect(key="compare_strategies").set_value(["magnitude"]).run()
    at.checkbox(key="compare_random").set_value(False).run()
    at.multiselect(key="compare_levels").set_value([0, 90]).run()
    at.button(key="compare_compute").click().run()
    check(at)
    assert len(charts(at)) == 2
    profile = charts(at)[1]
    assert [t["x"] for t in profile["data"] if t["type"] == "bar"][0] == ["conv1", "conv2", "fc1", "fc2"]


@pytest.mark.parametrize("model", ["moons_mlp", "lenet300", "lenet5"])
def test_survival_strategies_seeds_and_layers_change_the_maps(model):
    at = open_app(model, "10_survival")
    specs = chart_specs(at)
    heat = json.loads(specs[0])
    assert heat["data"][0]["colorbar"]["tickvals"] == [0, 1, 2, 3]
    assert len(at.metric) == 4 and at.metric[0].value.endswith(" %")
    at.selectbox(key="surv_b").set_value("random").run()
    check(at)
    assert chart_specs(at)[0] != specs[0] and chart_specs(at)[1] != specs[1]
    table, heat_b = at.dataframe[0].value, chart_specs(at)[0]
    at.select_slider(key="surv_sparsity").set_value(50).run()
    check(at)
    assert at.dataframe[0].value["neither"].sum() < table["neither"].sum()
    table, heat_b = at.dataframe[0].value, chart_specs(at)[0]
    at.selectbox(key="surv_a").set_value("random").run()
    at.number_input(key="surv_seed_b").set_value(1).run()  # two seeds of one strategy
    check(at)
    assert not at.dataframe[0].value.equals(table) and chart_specs(at)[0] != heat_b
    layers = at.selectbox(key="surv_layer").options
    before = chart_specs(at)[0]
    at.selectbox(key="surv_layer").set_value(layers[-1]).run()
    check(at)
    assert chart_specs(at)[0] != before
    if model == "lenet300":  # MNIST MLP: the input-pixel fan-out of A and of B
        assert len(chart_specs(at)) == 5 and any("fan-out" in s.value for s in at.subheader)


@pytest.mark.parametrize("model", ["moons_mlp", "lenet300"])
def test_survival_time_slider_shows_death_and_regrowth(model):
    at = open_app(model, "10_survival")
    assert any(c["layout"]["title"]["text"].startswith("fc1 under Gradual") for c in charts(at))  # gradual ran at once
    at.selectbox(key="surv_sched").set_value("rigl").run()
    check(at)
    events = at.dataframe[-1].value
    assert events["regrown"].sum() > 0
    steps = at.select_slider(key="surv_step").options
    assert len(steps) >= 3
    last = chart_specs(at)[-1]
    # the regrew key shows where an alive weight of the layer shown regrew by the step shown, and only there
    # (gradual never regrows; moons' fc1 keeps 2 of 16 weights, neither regrown)
    assert ('"alive, regrew"' in last) == ("of them regrew" in last)
    previous = last
    for step in steps[1:-1]:
        at.select_slider(key="surv_step").set_value(step).run()
        check(at)
        spec = chart_specs(at)[-1]
        assert spec != previous and ('"alive, regrew"' in spec) == ("of them regrew" in spec)
        previous = spec


def test_survival_lenet5_schedule_waits_for_button():
    at = open_app("lenet5", "10_survival")
    assert any("LeNet-5 is a convolutional network, slow to train" in w.value for w in at.warning)
    assert at.button(key="surv_train")
    assert not [s for s in at.select_slider if s.key == "surv_step"]


@pytest.mark.parametrize("model", ["digits_mlp", "lenet300"])
def test_lottery_runs_and_plots_three_methods(model):
    at = open_app(model, "11_lottery")
    assert not charts(at)
    at.number_input(key="lottery_rounds").set_value(2).run()
    at.number_input(key="lottery_epochs").set_value(1).run()
    at.button(key="lottery_run").click().run()
    check(at)
    fig = charts(at)[0]
    names = _names(fig)
    assert names[:3] == ["IMP + rewinding (winning ticket)", "same mask, random re-init", "random mask, same init"]
    assert fig["layout"]["xaxis"]["type"] == "log"
    frame = at.dataframe[0].value
    assert sorted(frame["round"].unique()) == [0, 1, 2] and len(frame) == 9
    before = chart_specs(at)[0]
    at.radio(key="lottery_metric").set_value("test_accuracy").run()
    check(at)
    assert chart_specs(at)[0] != before


def test_lottery_stop_keeps_finished_rounds_and_lenet5_is_limited():
    at = open_app("moons_mlp", "11_lottery")
    at.number_input(key="lottery_epochs").set_value(2).run()
    at.session_state[app_state.KEY_STOP] = True
    at.button(key="lottery_run").click().run()
    check(at)
    at.run()
    assert any("Stopped" in w.value for w in at.warning)
    assert at.button(key="lottery_run").label == "Run again to finish"
    at = open_app("lenet5", "11_lottery")
    assert any("LeNet-5" in w.value for w in at.warning)
    assert at.number_input(key="lottery_rounds").max == 3


def test_prune_shows_collapse_warning_and_effective_sparsity():
    at = open_app("moons_mlp", "2_prune")
    at.slider(key="prune_sparsity").set_value(95).run()
    check(at)
    assert any(c.value.startswith("effective sparsity") for c in at.caption)
    assert any("Layer collapse" in w.value or "No path" in w.value for w in at.warning)
    at.switch_page("views/5_connections.py").run()
    check(at)
    assert any("effective sparsity" in c.value for c in at.caption)


def test_survival_offers_the_librarys_scheduled_strategies():
    from sparsity_viz.pruning import scheduled_strategy_names

    at = open_app("moons_mlp", "10_survival")
    assert at.selectbox(key="surv_sched").options == [STRATEGIES[n].label for n in scheduled_strategy_names()]


def test_scheduled_strategies_are_run_as_scheduled_or_left_out_with_a_reason():
    at = open_app("moons_mlp", "9_compare")
    at.multiselect(key="compare_strategies").set_value(["magnitude", "gradual"]).run()
    at.checkbox(key="compare_random").set_value(False).run()
    at.multiselect(key="compare_levels").set_value([0, 50]).run()
    check(at)
    label = STRATEGIES["gradual"].label
    assert any(label in i.value and "not on this chart" in i.value for i in at.info)  # one-shot only: left out
    assert label not in _names(charts(at)[0])
    at.number_input(key="compare_ft").set_value(1).run()
    at.button(key="compare_compute").click().run()
    check(at)
    assert not any("not on this chart" in i.value for i in at.info)
    assert any("Scheduled strategies train while they prune" in c.value and label in c.value for c in at.caption)

    at.switch_page("views/7_curves.py").run()
    at.multiselect(key="curves_strategies").set_value(["gradual"]).run()
    at.checkbox(key="curves_random").set_value(False).run()
    at.multiselect(key="curves_levels").set_value([0, 50]).run()
    at.number_input(key="curves_ft").set_value(1).run()
    at.button(key="curves_compute").click().run()
    check(at)
    table = at.dataframe[0].value
    assert set(table["kind"]) == {"scheduled"} and (table.loc[table["sparsity"] > 0, "train_epochs"] > 0).all()


def test_survival_training_that_diverges_is_a_message_and_waits_for_a_click(monkeypatch):
    """A run that diverged raised TrainingDiverged as a traceback, again on every visit, since the page trains by
    itself (an audit found it with an upload of moons_mlp's weights x10, since no longer a divergence)."""
    import app_state.lab
    from sparsity_viz.training import TrainingDiverged, TrainResult

    runs = []

    def diverging(model, *args, **kwargs):
        runs.append(1)
        raise TrainingDiverged("Training diverged in epoch 4: loss exploded.", TrainResult(model), 4, "loss exploded")

    monkeypatch.setattr(app_state.lab, "run_schedule", diverging)
    at = open_app("moons_mlp", "10_survival")
    check(at)  # no exception
    assert len(runs) == 1 and [e.value.split(":")[0] for e in at.error] == ["Training diverged in epoch 4"]
    assert "The current model was left unchanged" in at.error[0].value
    at.switch_page("views/10_survival.py").run()  # again: the message, and no training until Train is clicked
    check(at)
    assert len(runs) == 1 and len(at.error) == 1 and at.button(key="surv_train")
    at.button(key="surv_train").click().run()
    check(at)
    assert len(runs) == 2 and len(at.error) == 1 and "Training diverged" in at.error[0].value


def test_lottery_rewind_past_the_first_training_is_said_not_run():
    """digits_mlp, 1 epoch of batch 60: 24 steps. Rewinding to step 50 silently fell back to step 0 (an audit of
    the library); the page says why it cannot run instead of offering the button."""
    at = open_app("digits_mlp", "11_lottery")
    at.number_input(key="lottery_epochs").set_value(1).run()
    at.select_slider(key="lottery_rewind").set_value(50).run()
    check(at)
    assert any("Rewinding to step 50 needs a first training of at least that many steps" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "lottery_run"]
    at.select_slider(key="lottery_rewind").set_value(10).run()
    check(at)
    assert at.button(key="lottery_run") and not at.warning
