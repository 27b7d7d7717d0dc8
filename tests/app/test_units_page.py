"""The "What units see" page under AppTest: grids and the unit graph checked against the library called directly."""

from __future__ import annotations

import base64

import numpy as np
from apptools import chart_specs, charts, check, open_app

from app_state import keys
from sparsity_viz import figures
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.pruning import prune
from sparsity_viz.receptive_fields import receptive_fields, unit_fans

PAGE = "19_units"


def _array(value) -> np.ndarray:
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return arr.reshape([int(s) for s in str(shape).split(",")]) if shape else arr
    return np.asarray(value, dtype=float)


def _titles(at) -> list[str]:
    return [(c["layout"].get("title") or {}).get("text", "") for c in charts(at)]


def test_lenet300_grids_are_the_library_fields_and_a_unit_shows_its_fans():
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(90).run()
    at.switch_page(f"views/{PAGE}.py").run()
    check(at)
    dense_chart, current_chart, graph = charts(at)
    model, _ = load_sample("lenet300")
    pruned = prune(model, "magnitude", 0.9)  # the page's defaults: magnitude, layer-wise
    dense = receptive_fields(model, input_shape=(1, 28, 28))
    now = receptive_fields(pruned.model, pruned.masks, input_shape=(1, 28, 28))
    cols = figures.receptive_fields.grid_shape(25)[1]
    np.testing.assert_array_equal(_array(dense_chart["data"][0]["z"]), figures.tile_grid(dense.images[:25], cols))
    np.testing.assert_array_equal(_array(current_chart["data"][0]["z"]), figures.tile_grid(now.images[:25], cols))
    assert f"{int(now.dead.sum())} of 300 dead" in current_chart["layout"]["title"]["text"]
    assert current_chart["data"][0]["zmax"] == dense_chart["data"][0]["zmax"] == np.float32(dense.zmax)
    assert all(len(spec) < 150_000 for spec in chart_specs(at)[:2])  # what the browser gets: light for a class

    at.number_input(key=keys.UNITS_UNIT).set_value(7).run()
    check(at)
    fans = unit_fans(pruned.model, pruned.masks, "fc1", 7)
    expected = (f"fc1 unit 7: {fans.fan_in_weights} weights in (from {fans.fan_in_units} inputs), "
                f"{fans.fan_out_weights} out (to {fans.fan_out_units} units)")
    assert _titles(at)[-1].startswith(expected)

    at.selectbox(key="units_per_page").set_value(100).run()
    at.slider(key="units_first").set_value(200).run()
    check(at)
    assert "units 200-299 of 300" in _titles(at)[1]
    np.testing.assert_array_equal(_array(charts(at)[1]["data"][0]["z"]),
                                  figures.tile_grid(now.images[200:300], figures.receptive_fields.grid_shape(100)[1]))
    assert at.session_state[keys.BENCH].sparsity > 0.89  # the page kept the pruned model


def test_lenet5_conv_filters_and_layer_choice():
    at = open_app("lenet5", PAGE)
    assert at.selectbox(key="units_layer").options == ["conv1", "conv2"]
    model, _ = load_sample("lenet5")
    np.testing.assert_array_equal(_array(charts(at)[0]["data"][0]["z"]),
                                  figures.tile_grid(model.conv1.weight.detach()[:, 0].numpy(), 5))
    at.selectbox(key="units_layer").set_value("conv2").run()
    check(at)
    assert "units 0-24 of 50" in _titles(at)[0]
    assert _titles(at)[-1].startswith("conv2 unit 0:")


def test_a_model_without_images_says_why():
    at = open_app("moons_mlp", PAGE)
    assert at.title[0].value == "What units see"
    assert any("no receptive fields" in i.value and "lenet300" in i.value for i in at.info)
    assert not charts(at)


def test_a_smaller_model_shows_its_last_full_grid_and_keeps_the_chosen_first_unit():
    """First unit 275 on LeNet-300-100 became 31 on digits_mlp, one tile ("units 31-31 of 32"), and stayed 31 when
    going back (an audit)."""
    at = open_app("lenet300", "19_units")
    step = int(at.selectbox(key="units_per_page").value)
    chosen = 11 * step  # a grid start far past digits_mlp's 32 units
    at.slider(key="units_first").set_value(chosen).run()
    at.selectbox(key="sv_model").set_value("digits_mlp").run()
    check(at)
    assert at.slider(key="units_first").value == (32 - 1) // step * step  # its last whole grid
    at.selectbox(key="sv_model").set_value("lenet300").run()
    check(at)
    assert at.slider(key="units_first").value == chosen
