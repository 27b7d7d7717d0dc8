"""The Experts (MoE) page under AppTest: real widget changes, every number checked against the library called directly."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from apptools import charts, check, open_app

from app_state import keys
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.masks import apply_masks
from sparsity_viz.moe import (active_parameters, expert_map, expert_masks, expert_report, flops_per_input,
                              routing_table, with_top_k)

PAGE = "15_experts"


def _metric(at, label: str):
    return next(m for m in at.metric if m.label.startswith(label))


def _figure(at, title_part: str) -> dict:
    found = [f for f in charts(at) if title_part in (f["layout"].get("title") or {}).get("text", "")]
    assert len(found) == 1, [(f["layout"].get("title") or {}).get("text") for f in charts(at)]
    return found[0]


def _array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly 6's ``{"dtype", "bdata", "shape"}`` base64 encoding."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return arr.reshape([int(s) for s in str(shape).split(",")]) if shape else arr
    return np.asarray(value, dtype=float)


@pytest.fixture(scope="module")
def moons():
    model, card = load_sample("moe_moons")
    return model, card, load_dataset("moons")


@pytest.fixture(scope="module")
def at():
    """One session for the page (pruned sidebar model beside it, which the page must leave alone)."""
    at = open_app("digits_mlp", "2_prune")
    at.slider(key="prune_sparsity").set_value(80).run()
    check(at)
    at.switch_page(f"views/{PAGE}.py").run()
    check(at)
    return at


def test_opens_on_the_bundled_toy_with_its_card_numbers(at, moons):
    model, card, data = moons
    assert at.title[0].value == "Experts (MoE)"
    assert at.selectbox(key="moe_model").value == "moe_moons"
    assert _metric(at, "Test accuracy now").value == f"{100 * card['test_accuracy']:.1f} %"
    assert _metric(at, "Bundled model").value == f"{100 * card['test_accuracy']:.1f} %"
    assert _metric(at, "Active parameters per input").value == f"{active_parameters(model):,}"
    heat = _figure(at, "Routing by class")["data"][0]
    table = routing_table(model, data.x_test, data.y_test).numpy()
    assert np.array_equal(_array(heat["customdata"]).reshape(table.shape), table)
    shares = 100 * table / table.sum(1, keepdims=True)
    np.testing.assert_allclose(_array(heat["z"]).reshape(table.shape), shares)
    load = _figure(at, "balance loss")
    assert list(_array(load["data"][0]["y"])) == card["load"]
    assert f"balance loss {card['balance_loss']:.2f}" in load["layout"]["title"]["text"]
    regions = _figure(at, "The router's chosen expert")["data"][0]
    z = _array(regions["z"])
    emap = expert_map(model, (float(_array(regions["x"])[0]), float(_array(regions["x"])[-1])),
                      (float(_array(regions["y"])[0]), float(_array(regions["y"])[-1])), resolution=z.shape[-1])
    assert np.array_equal(z.reshape(emap.experts.shape), emap.experts)


def test_pruning_expert_0_changes_accuracy_as_the_library_says(at, moons):
    model, card, data = moons
    at.multiselect(key="moe_prune_moe_moons").set_value([0]).run()
    check(at)
    pruned = apply_masks(with_top_k(model, 1), expert_masks(model, [0]))
    expected = expert_report(pruned, data)
    assert expected["accuracy"] < card["test_accuracy"] - 0.05  # expert 0's inputs lost their prediction
    shown = _metric(at, "Test accuracy now")
    assert shown.value == f"{100 * expected['accuracy']:.1f} %"
    assert shown.delta == f"{100 * (expected['accuracy'] - card['test_accuracy']):+.1f} points"
    assert "expert 0** is pruned" in " ".join(m.value for m in at.markdown)
    ticks = _figure(at, "Routing by class")["layout"]["xaxis"]["ticktext"]
    assert "0<br>(pruned)" in ticks[0]
    csv = at.dataframe[0].value  # the routing table under the CSV button: one row per class, then the load
    assert csv["expert 0"].tolist() == [r[0] for r in expected["routing_table"]] + [expected["load"][0]]


def test_top_2_changes_active_parameters_to_the_librarys(at, moons):
    model, _, data = moons
    at.slider(key="moe_top_k_moe_moons").set_value(2).run()
    check(at)
    two = with_top_k(model, 2)
    assert _metric(at, "Active parameters per input").value == f"{active_parameters(two):,}"
    assert _metric(at, "FLOPs per input").value == f"{flops_per_input(two):,}"
    assert active_parameters(two) > active_parameters(model)
    heat = _figure(at, "Routing by class")["data"][0]
    table = routing_table(two, data.x_test, data.y_test).numpy()
    assert np.array_equal(_array(heat["customdata"]).reshape(table.shape), table)
    assert table.sum() == 2 * len(data.y_test)


def test_fine_tune_and_measure_then_switch_model_leave_the_workbench(at):
    at.button(key="moe_finetune").click().run()
    check(at)
    assert any("fine-tuned 2 epochs" in i.value for i in at.info)
    tuned = at.session_state[keys.STORED_EXPERTS_TUNED]
    assert tuned.finetune_epochs == 2 and tuned.pruned == (0,) and tuned.top_k == 2
    at.button(key="moe_measure").click().run()
    check(at)
    timing = [d.value for d in at.dataframe if "vs_routed" in d.value.columns]
    assert len(timing) == 1 and sorted(set(timing[0]["batch"])) == [1, 32, 256]
    at.selectbox(key="moe_model").set_value("moe_mnist").run()
    check(at)
    _, card = load_sample("moe_mnist")
    assert _metric(at, "Bundled model (top-2)").value == f"{100 * card['test_accuracy']:.1f} %"
    assert _metric(at, "Active parameters per input").value == f"{card['active_parameters']:,}"
    assert not [f for f in charts(at) if "chosen expert" in (f["layout"].get("title") or {}).get("text", "")]
    # moe_moons' pruned expert 0 and its top-2 are not moe_mnist's: the new model opens as bundled (an audit saw
    # expert 0 of moe_mnist pruned by the switch)
    assert at.multiselect(key="moe_prune_moe_mnist").value == []
    assert at.slider(key="moe_top_k_moe_mnist").value == 2  # moe_mnist's own k
    assert _metric(at, "Test accuracy now").delta == "+0.0 points"
    assert "pruned" not in " ".join(m.value for m in at.markdown if "Each input runs" in m.value)
    assert "(1.0 = uniform, at most 2: the router certain of one expert)" in " ".join(m.value for m in at.markdown)
    assert "experts.experts" not in at.query_params
    bench = at.session_state[keys.BENCH]
    assert bench.name == "digits_mlp" and bench.sparsity == pytest.approx(0.8, abs=0.01)


def test_a_fine_tune_stopped_before_an_epoch_ends_keeps_nothing():
    """A stopped fine-tune was kept and labelled 'fine-tuned 5 epochs' though no epoch ran (an audit)."""
    at = open_app(None, "15_experts")
    check(at)
    at.multiselect(key=f"moe_prune_{at.selectbox(key='moe_model').value}").set_value([0]).run()
    at.number_input(key="moe_ft_epochs").set_value(5).run()
    at.session_state[keys.STOP] = True  # what the Stop button sets: the run stops at its first step
    at.button(key="moe_finetune").click().run(timeout=300)
    check(at)
    assert not any("fine-tuned" in i.value for i in at.info)
    assert keys.STORED_EXPERTS_TUNED not in at.session_state
    assert any("stopped before its first epoch ended: nothing was kept" in i.value for i in at.info)
    at.run()  # said once
    assert not any("nothing was kept" in i.value for i in at.info)


def test_a_stopped_fine_tune_keeps_the_epochs_it_finished_and_says_so():
    from sparsity_viz.data import load_dataset
    from sparsity_viz.moe import finetune_moe_run, prune_moe
    from sparsity_viz.training import TrainConfig

    model, _ = load_sample("moe_moons")
    data = load_dataset("moons")
    pruned, masks = prune_moe(model, experts=[0], data=data)
    calls = []
    config = TrainConfig(epochs=5, lr=1e-2, batch_size=32, seed=0, device="cpu")
    result = finetune_moe_run(pruned, data, masks, config, stop=lambda: calls.append(1) or len(calls) > 3)
    assert result.stopped and len(result.history) == 1 and not result.model.training  # 3 steps of epoch 1
