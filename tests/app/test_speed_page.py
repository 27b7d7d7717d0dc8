"""Speed & memory page: Measure on a button, cached per model + settings, real widget changes change the figures."""

from __future__ import annotations

import pytest
import torch

import app_state
import sparsity_viz.backend as backend
from apptools import chart_specs, charts, check, open_app
from sparsity_viz.backend import bench, kernels
from sparsity_viz.backend.speed_report import ratio_intervals, unsettled


@pytest.fixture(autouse=True, scope="module")
def _native_kernel_tried():
    """Measure waits for the first C++ build (the page says so); these tests build it first (or learn it fails)."""
    kernels.available()


def _measure(at, batches=(1, 32), cap=1):
    at.multiselect(key="speed_batches").set_value(list(batches)).run()
    at.number_input(key="speed_repeats").set_value(3).run()
    at.number_input(key="speed_time_cap").set_value(cap).run()
    assert not at.get("plotly_chart"), "nothing is measured before the button"
    assert any("press **Measure**" in i.value for i in at.info)
    at.button(key="speed_measure").click().run(timeout=180)  # the heaviest run: compiles and times every batch
    check(at)
    return at


def _report(at):
    """The one measurement this session holds."""
    (report,) = list(at.session_state[app_state.KEY_SPEED].values())
    return report


def _table(at, column: str, without: str = "median_us"):
    """The page's dataframe that has ``column`` and not ``without`` (the full measurements table has every column)."""
    (df,) = [d.value for d in at.dataframe if column in d.value.columns and without not in d.value.columns]
    return df


def _texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])


@pytest.mark.parametrize("model", ["lenet300", "moons_mlp", "digits_mlp"])
def test_measure_then_widgets_change_figures(model):
    at = open_app(model, "2_prune")
    at.slider(key="prune_sparsity").set_value(90).run()
    at.switch_page("views/12_speed.py").run()
    check(at)
    if not torch.cuda.is_available():
        assert any("CUDA formats (cuSPARSE CSR and 2:4 semi-structured) need an NVIDIA GPU" in i.value for i in at.info)
    _measure(at)
    latency, nbytes, curves = charts(at)
    assert [t["x"] for t in latency["data"] if t["type"] == "bar"][0] == ["batch 1", "batch 32"]
    assert "sparse checkpoint file" in nbytes["data"][0]["y"]
    assert "batch 32" in curves["layout"]["title"]["text"]
    assert any("wins from" in a["text"] or "this layer now" in a["text"] for a in curves["layout"]["annotations"])
    text = _texts(at)
    assert "At batch 1" in text and "At batch 32" in text
    plan = _table(at, "layer")
    assert set(plan["layer"]) >= {"fc1"} and plan["format"].notna().all()

    before = chart_specs(at)
    at.radio(key="speed_curve_batch").set_value(1).run()  # redraw only: no new measurement
    check(at)
    after = chart_specs(at)
    assert after[2] != before[2] and after[0] == before[0]
    at.selectbox(key="speed_plan_batch").set_value(1).run()
    check(at)
    assert "batch 1" in at.code[0].value

    at.multiselect(key="speed_batches").set_value([1, 8]).run()  # new settings: measure again
    assert not at.get("plotly_chart")
    at.button(key="speed_measure").click().run(timeout=180)  # the heaviest run: compiles and times every batch
    check(at)
    assert [t["x"] for t in charts(at)[0]["data"] if t["type"] == "bar"][0] == ["batch 1", "batch 8"]


def test_results_cached_across_page_changes_and_keyed_by_masks():
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(95).run()
    at.switch_page("views/12_speed.py").run()
    _measure(at, batches=(1, 256))
    first = chart_specs(at)
    at.switch_page("views/4_weights.py").run()
    at.switch_page("views/12_speed.py").run()
    check(at)
    assert chart_specs(at) == first  # shown again from the session cache, no button press
    assert at.multiselect(key="speed_batches").value == [1, 256]
    at.switch_page("views/2_prune.py").run()
    at.slider(key="prune_sparsity").set_value(50).run()
    at.switch_page("views/12_speed.py").run()
    check(at)
    assert not at.get("plotly_chart")  # other masks: not measured yet
    at.button(key="speed_measure").click().run(timeout=180)  # the heaviest run: compiles and times every batch
    check(at)
    assert chart_specs(at)[0] != first[0]
    assert len(at.session_state[app_state.KEY_SPEED]) == 2


def test_sparse_loses_is_said_plainly():
    at = open_app("lenet300", "2_prune")  # 20 % sparse: CSR cannot beat dense at batch 1 (measured 1.6-5x slower)
    at.slider(key="prune_sparsity").set_value(20).run()
    at.switch_page("views/12_speed.py").run()
    _measure(at)
    text = _texts(at)
    report = _report(at)
    for b, plan in report.plans.items():  # the words follow the measured plan, whatever the timing noise chose
        table = plan["table"]
        # a layer is called slower only where a sparse format lost to torch's dense one: not where a native dense
        # kernel won, nor where the whole compiled call lost and the original module runs (said on its own)
        emptied = table["compiled_shape"].map(lambda shape: "0" in str(shape).split("x"))
        original = table["reason"].str.startswith("original module kept")
        kept = table[(table["format"] == "dense") & ~emptied & ~original]["layer"].tolist()
        sentence = f"At batch {b} sparse is slower than dense for **"
        if kept:
            assert f"{sentence}{kept[0]}**" in text and "the dispatcher keeps" in text
        else:
            assert sentence not in text
        if original.any() and not emptied.any():
            assert f"At batch {b} the whole compiled call was not faster than the original module" in text
    # which layers stay dense is the dispatcher's measurement (whole-call fallbacks included), so whether any does
    # is not asserted (timing); when one does, the page names it (checked above).
    csr1 = report.bench.query("batch == 1 and format == 'csr-torch'")["ratio_dense"]
    if len(csr1) and csr1.iloc[0] > 1:  # measured 1.6-5x slower, but the words follow this run's number
        assert "At batch 1, CSR (torch.sparse) is **" in text and "slower** than dense" in text


def test_native_fallback_notice(monkeypatch):
    monkeypatch.setattr(kernels, "ready", lambda: True)
    monkeypatch.setattr(backend, "native_available", lambda *a, **k: False)
    monkeypatch.setattr(backend, "native_notice", lambda: "sparsity_viz: native sparse kernels unavailable (test).")
    at = open_app("moons_mlp", "12_speed")
    assert any("native sparse kernels unavailable (test)" in w.value for w in at.warning)


def test_export_page_sparse_checkpoint_size_and_round_trip():
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(90).run()
    at.switch_page("views/8_export.py").run()
    check(at)
    assert any(c.value.startswith(("17", "18")) and "KB vs 1.07 MB dense (0.1" in c.value for c in at.caption)
    assert any("bit-identical" in s.value for s in at.success)
    data = at.session_state[app_state.KEY_SPARSE_CKPT]
    (_, saved, ok), = data.values()
    assert ok
    loaded = backend.load_sparse(saved.data).state_dict
    wb = at.session_state[app_state.KEY_BENCH]
    for k, v in wb.current.state_dict().items():
        assert torch.equal(loaded[k], v)


def test_every_ratio_shows_its_interval_and_whether_it_settled():
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(90).run()
    at.switch_page("views/12_speed.py").run()
    _measure(at, batches=(1, 32), cap=1)
    report = _report(at)
    shown = _table(at, "ratio_q25")
    want = ratio_intervals(report.bench)
    assert shown["format"].tolist() == want["format"].tolist() and len(shown) >= 2
    assert (shown["ratio_q25"] <= shown["ratio_dense"] + 1e-12).all()
    assert (shown["ratio_dense"] <= shown["ratio_q75"] + 1e-12).all()
    auto = want[(want["format"] == "auto") & (want["batch"] == 32)].iloc[0]
    assert f"{auto['ratio_q25']:.2f}–{auto['ratio_q75']:.2f}×, {int(auto['rounds'])} rounds" in _texts(at)
    capped = [w.value for w in at.warning if "time cap" in w.value]
    assert bool(capped) == bool(unsettled(report.bench))  # the page says so exactly when a ratio did not settle


def test_a_ratio_that_never_settles_is_stopped_by_the_cap_and_the_page_says_so(monkeypatch):
    monkeypatch.setattr(bench, "_within", lambda ratios, rel_iqr: False)  # no interval is ever narrow enough
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(90).run()
    at.switch_page("views/12_speed.py").run()
    at.multiselect(key="speed_formats").set_value(["dense", "csr-native"]).run()
    _measure(at, batches=(32,), cap=1)
    shown = _table(at, "ratio_q25")
    assert shown["format"].tolist() == ["csr-native"]
    assert not shown["stable"].any() and shown["capped"].all() and (shown["rounds"] >= 3).all()
    (warning,) = [w.value for w in at.warning if "time cap" in w.value]
    assert "1 s time cap" in warning and "csr-native at batch 32" in warning
    assert any("points hit the time cap before their ratio settled" in c.value for c in at.caption)
    at.number_input(key="speed_time_cap").set_value(2).run()  # a new cap is a new measurement
    assert not at.get("plotly_chart")


def test_a_measurement_belongs_to_its_dataset():
    """It was keyed by model, masks and settings: after a sidebar switch to circles, moons' timings and input
    zeros stayed on screen as current (an audit)."""
    at = open_app("moons_mlp", "2_prune")
    at.slider(key="prune_sparsity").set_value(50).run()
    at.switch_page("views/12_speed.py").run()
    _measure(at, batches=(32,))
    assert at.get("plotly_chart")
    at.selectbox(key="sv_dataset").set_value("circles").run()
    check(at)
    assert at.session_state[app_state.KEY_BENCH].dataset == "circles"
    assert not at.get("plotly_chart") and any("press **Measure**" in i.value for i in at.info)


def test_a_model_without_a_linear_layer_is_measured_without_the_curve():
    """A conv-only upload had an empty layer picker and a Measure button that stayed disabled, under "Choose batch
    sizes and formats" although both were chosen (an audit): the curve sweeps a Linear layer's shape."""
    import json

    import numpy as np
    from test_own_model_upload import _npz, _upload, _weights

    spec = {"name": "convonly", "input": [1, 8, 8], "layers": [
        {"name": "conv1", "type": "conv2d", "in": 1, "out": 4, "kernel": 3}, {"type": "relu"},
        {"name": "conv2", "type": "conv2d", "in": 4, "out": 3, "kernel": 6}, {"type": "flatten"}]}
    x = np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8)
    at = _upload(open_app("moons_mlp"), json.dumps(spec).encode(), _weights(spec), _npz(x=x, y=np.arange(60) % 3),
                 "img.npz")
    at.switch_page("views/12_speed.py").run()
    check(at)
    assert at.selectbox(key="speed_layer").disabled
    _measure(at, batches=(1,))
    report = _report(at)
    assert report.layer == "" and report.curves.empty and set(report.bench["format"]) >= {"dense", "auto"}
    assert any("no fully connected layer" in i.value for i in at.info)
    assert any("All measurements" in e.label for e in at.expander)
