"""The Activations page under AppTest: real widget changes, every number checked against the library called directly."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from apptools import charts, check, open_app

from app_state import keys
from sparsity_viz import figures
from sparsity_viz.activations import (
    activation_sparsity,
    activations_of_input,
    collect_activations,
    compare_reports,
    with_kwinners,
)
from sparsity_viz.data import load_dataset
from sparsity_viz.training import evaluate_dataset

PAGE = "14_activations"


def _array(value) -> np.ndarray:
    """A plotly JSON array: a (nested) list, or plotly 6's ``{"dtype", "bdata", "shape"}`` base64 encoding."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return arr.reshape([int(s) for s in str(shape).split(",")]) if shape else arr
    return np.asarray(value, dtype=float)


def _figure(at, title_part: str) -> dict:
    found = [f for f in charts(at) if title_part in (f["layout"].get("title") or {}).get("text", "")]
    assert len(found) == 1, [(f["layout"].get("title") or {}).get("text") for f in charts(at)]
    return found[0]


def _cells(fig: dict, row: str, layer: str) -> np.ndarray:
    """The drawn mosaic of one panel: non-zero values from the values trace, 0 where the zeros trace is set."""
    traces = {t["meta"]["kind"]: t for t in fig["data"] if t.get("meta", {}).get("row") == row
              and t["meta"].get("layer") == layer}
    values = _array(traces["values"]["z"]).astype(float)
    zeros = _array(traces["zeros"]["z"]).astype(float)
    return np.where(zeros == 1, 0.0, values)


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _library(at):
    wb = at.session_state[keys.BENCH]
    ds = load_dataset(wb.dataset)
    return wb, ds


def test_changing_the_input_redraws_the_library_activations():
    at = open_app("lenet300", PAGE)
    wb, ds = _library(at)
    assert at.title[0].value == "Activations"
    first = _figure(at, "Test input 0")
    assert len({t["meta"]["row"] for t in first["data"]}) == 1  # dense = current: one row
    at.number_input(key="act_index").set_value(7).run()
    check(at)
    fig = _figure(at, "Test input 7")
    acts = activations_of_input(wb.dense, ds.x_test[7])
    for layer, a in acts.items():
        z, _ = figures.activation_mosaic(a)
        drawn = _cells(fig, "dense", layer)
        np.testing.assert_array_equal(np.isnan(drawn), np.isnan(z))
        np.testing.assert_allclose(drawn[~np.isnan(z)], z[~np.isnan(z)], rtol=1e-5, atol=1e-6)  # the page may run other thread counts
    assert not np.array_equal(_cells(first, "dense", "fc1"), _cells(fig, "dense", "fc1"), equal_nan=True)
    label = ds.class_names[int(ds.y_test[7])]
    assert any(f"Class **{label}**" in m.value for m in at.markdown)
    assert at.session_state[keys.STORED_ACTIVATIONS]["index"] == 7


def test_a_pruned_model_differs_from_dense_and_the_table_is_the_library():
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(90).run()
    at.switch_page(f"views/{PAGE}.py").run()
    check(at)
    wb, ds = _library(at)
    assert wb.sparsity == pytest.approx(0.9, abs=0.01)
    dense = activation_sparsity(wb.dense, ds.x_test, ds.y_test)
    current = activation_sparsity(wb.current, ds.x_test, ds.y_test)
    expected = compare_reports(dense, current)
    table = at.dataframe[0].value
    assert table["layer"].tolist() == ["fc1", "fc2"]
    for col in ("dense_zero_pct", "current_zero_pct", "dense_dead", "current_dead", "current_always_on"):
        assert table[col].tolist() == pytest.approx(expected[col].tolist())
    assert table["current_zero_pct"].tolist() != table["dense_zero_pct"].tolist()
    assert _metric(at, "Exactly zero (current)") == f"{100 * current.zero_fraction:.1f} %"
    assert _metric(at, "Exactly zero (dense)") == f"{100 * dense.zero_fraction:.1f} %"
    assert _metric(at, "Dead units (current)") == f"{current.never_active_units} of {current.units}"
    text = " ".join(m.value for m in at.markdown)
    assert f"it is **{100 * current.zero_fraction:.1f} %**" in text
    # the bars and the histogram (last layer by default) carry the same numbers
    bars = {t["meta"]: t for t in _figure(at, "Exact zeros per layer")["data"]}
    assert _array(bars["current"]["y"]).tolist() == pytest.approx(expected["current_zero_pct"].tolist())
    hist = _figure(at, "fc2: activation values")
    zero_bar = next(t for t in hist["data"] if t["meta"] == {"row": "current", "kind": "zeros"})
    assert _array(zero_bar["y"])[0] == pytest.approx(100 * current.layer("fc2").zero_fraction)
    assert len({t["meta"]["row"] for t in _figure(at, "Test input")["data"]}) == 2


def test_kwta_makes_the_zero_share_exact_and_shows_its_accuracy():
    at = open_app("lenet300", PAGE)
    at.toggle(key="act_kwta").set_value(True).run()
    at.number_input(key="act_k").set_value(30).run()
    check(at)
    wb, ds = _library(at)
    net = with_kwinners(wb.current, 30)
    kept = collect_activations(net, ds.x_test)
    assert all(((a != 0).sum(1) == 30).all() for a in kept.values())  # every kept value is > 0 here
    table = at.dataframe[0].value
    assert table["current_zero_pct"].tolist() == pytest.approx([100 * (1 - 30 / 300), 100 * (1 - 30 / 100)])
    label = "current + k-WTA (k = 30)"
    acc = evaluate_dataset(net, ds, device="cpu").accuracy
    assert _metric(at, f"Accuracy ({label})") == f"{100 * acc:.1f} %"
    assert "fc1 90.0 %, fc2 70.0 %" in " ".join(m.value for m in at.markdown)
    per_class = next(d.value for d in at.dataframe if "class" in d.value.columns)  # named for k-WTA, not "current"
    assert [c for c in per_class.columns if "k-WTA" in c] == ["fc1 k-WTA, k = 30 (%)", "fc2 k-WTA, k = 30 (%)"]
    assert per_class["fc1 k-WTA, k = 30 (%)"].round(6).eq(90.0).all()
    assert at.session_state[keys.BENCH].current is wb.current  # the session's model keeps its ReLU
    assert type(wb.current.act).__name__ == "ReLU"


def test_lenet5_draws_its_conv_maps():
    at = open_app("lenet5", PAGE)
    wb, ds = _library(at)
    fig = _figure(at, "Test input 0")
    acts = activations_of_input(wb.dense, ds.x_test[0])
    assert [t["meta"]["layer"] for t in fig["data"] if t["meta"]["kind"] == "values"] == ["conv1", "conv2", "fc1"]
    assert acts["conv1"].shape == (20, 24, 24)
    z, _ = figures.activation_mosaic(acts["conv1"])
    drawn = _cells(fig, "dense", "conv1")
    assert drawn.shape == z.shape == (4 * 25 - 1, 5 * 25 - 1)
    np.testing.assert_allclose(drawn[~np.isnan(z)], z[~np.isnan(z)], rtol=1e-5, atol=1e-6)  # the page may run other thread counts
    at.selectbox(key="act_layer").set_value("conv1").run()
    check(at)
    hist = _figure(at, "conv1: activation values")
    zero_bar = next(t for t in hist["data"] if t["meta"] == {"row": "dense", "kind": "zeros"})
    report = activation_sparsity(wb.dense, ds.x_test)
    assert _array(zero_bar["y"])[0] == pytest.approx(100 * report.layer("conv1").zero_fraction)


def test_a_fully_pruned_toy_still_draws():
    at = open_app("moons_mlp", "2_prune")
    at.slider(key="prune_sparsity").set_value(100).run()
    at.switch_page(f"views/{PAGE}.py").run()
    check(at)
    assert not at.error
    table = at.dataframe[0].value
    assert table.notna().all().all()
    wb, ds = _library(at)
    assert table["current_zero_pct"].tolist() == pytest.approx(
        compare_reports(activation_sparsity(wb.dense, ds.x_test), activation_sparsity(wb.current, ds.x_test))
        ["current_zero_pct"].tolist())
    assert at.get("plotly_chart")  # the input point, heatmap, bars and histogram


def test_a_smaller_model_does_not_overwrite_the_chosen_k_and_input():
    """k = 250 became 8 for good after a visit to moons_mlp (its layers have 8 units), and input 999 became 199:
    the page kept what it showed, clamped (an audit)."""
    at = open_app("lenet300", PAGE)
    at.toggle(key="act_kwta").set_value(True).run()
    at.number_input(key="act_k").set_value(250).run()
    at.number_input(key="act_index").set_value(999).run()
    at.selectbox(key="sv_model").set_value("moons_mlp").run()
    check(at)
    assert at.number_input(key="act_k").value == 8 and at.number_input(key="act_index").value < 999
    at.selectbox(key="sv_model").set_value("lenet300").run()
    check(at)
    assert at.number_input(key="act_k").value == 250 and at.number_input(key="act_index").value == 999
