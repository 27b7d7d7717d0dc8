"""The Quantize page under AppTest: real widget changes, every number checked against the library called directly."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from apptools import MODELS, charts, check, open_app

from app_state import keys
from sparsity_viz.compression.size import size_table
from sparsity_viz.data import load_dataset
from sparsity_viz.pruning import prune
from sparsity_viz.quantization import quantize_model
from sparsity_viz.training import evaluate_dataset

PAGE = "13_quantize"
MODEL = "digits_mlp"


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _expected(at, method: str, bits: int, per_channel: bool = False) -> dict:
    """What the page must show, computed here from the library on the session's current model and masks."""
    wb = at.session_state[keys.BENCH]
    ds = load_dataset(wb.dataset)
    qm = quantize_model(wb.current, method, bits, per_channel=per_channel, masks=wb.masks)
    total = qm.report().iloc[-1]
    return {
        "qm": qm,
        "before": f"{100 * evaluate_dataset(wb.current, ds, device='cpu').accuracy:.1f} %",
        "after": f"{100 * evaluate_dataset(qm.model, ds, device='cpu').accuracy:.1f} %",
        "created": f"{int(total['zeros_created']):,}",
        "zero_share": f"{100 * int(total['zeros_after']) / int(total['weights']):.1f} %",
        "sizes": size_table(wb.current, wb.masks, quantized=qm),
    }


def _shows(at, exp: dict) -> None:
    check(at)
    assert _metric(at, "Accuracy after quantization") == exp["after"]
    assert _metric(at, "Accuracy before") == exp["before"]
    assert _metric(at, "Zeros created") == exp["created"]
    assert _metric(at, "Weights exactly zero") == exp["zero_share"]


def _figure(at, title_part: str) -> dict:
    found = [f for f in charts(at) if title_part in (f["layout"].get("title") or {}).get("text", "")]
    assert len(found) == 1, [(f["layout"].get("title") or {}).get("text") for f in charts(at)]
    return found[0]


def _array(value) -> np.ndarray:
    """A plotly JSON array: a list, or plotly 6's ``{"dtype", "bdata", "shape"}`` base64 encoding."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            arr = arr.reshape([int(s) for s in str(shape).split(",")])
        return arr
    return np.asarray(value, dtype=float)


def _levels_drawn(fig: dict) -> list[float]:
    trace = next(t for t in fig["data"] if t.get("meta") == "levels")
    xs = [x for x in trace["x"] if x is not None]
    return sorted(xs[0::2])


@pytest.fixture
def at():
    return open_app(MODEL, PAGE)


def test_bit_slider_changes_accuracy_and_zeros_as_the_library_says(at):
    _shows(at, _expected(at, "uniform_symmetric", 4))
    before_created = _metric(at, "Zeros created")
    at.slider(key="quant_bits").set_value(2).run()
    exp = _expected(at, "uniform_symmetric", 2)
    _shows(at, exp)
    assert _metric(at, "Zeros created") != before_created
    # the histogram draws the quantizer's own levels of the shown layer
    layer = at.selectbox(key="quant_layer").value
    hist = _figure(at, "-bit levels")
    assert _levels_drawn(hist) == pytest.approx(sorted(np.unique(exp["qm"].tensors[layer].grid_levels.numpy())))
    # the waterfall ends at the Huffman-coded bytes the library counts
    water = _figure(at, "bytes per stage")["data"][0]
    total = exp["sizes"].iloc[-1]
    assert _array(water["customdata"]).tolist() == [total["dense_fp32_bytes"], total["sparse_csr_bytes"],
                                                   total["quantized_bytes"], total["huffman_bytes"]]
    # the per-layer zeros table is the library's report
    table = at.dataframe[0].value
    assert table["zeros_created"].tolist() == exp["qm"].report()["zeros_created"].tolist()
    # the sentence's numbers are the metrics' numbers
    assert f"rounded **{exp['created']}**" in "".join(m.value for m in at.markdown)


def test_switching_method_to_kmeans_and_ternary(at):
    at.selectbox(key="quant_method").set_value("kmeans").run()
    assert at.radio(key="quant_granularity_fixed").disabled  # k-means has one codebook per tensor
    slider = at.slider(key="quant_bits")
    assert (slider.min, slider.max) == (1, 8)
    slider.set_value(3).run()
    _shows(at, _expected(at, "kmeans", 3))
    at.selectbox(key="quant_method").set_value("ternary").run()
    check(at)
    assert not [s for s in at.slider if s.key == "quant_bits"]  # one bit width: no slider
    exp = _expected(at, "ternary", 2)
    _shows(at, exp)
    layer = at.selectbox(key="quant_layer").value
    levels = _levels_drawn(_figure(at, "-bit levels"))
    assert levels == pytest.approx(sorted(np.unique(exp["qm"].tensors[layer].grid_levels.numpy())))
    assert 0.0 in levels


def test_per_channel_toggle_quantizes_rows_and_draws_one_rows_levels(at):
    at.radio(key="quant_granularity").set_value("channel").run()
    exp = _expected(at, "uniform_symmetric", 4, per_channel=True)
    _shows(at, exp)
    at.number_input(key="quant_channel").set_value(3).run()
    check(at)
    layer = at.selectbox(key="quant_layer").value
    qt = exp["qm"].tensors[layer]
    assert qt.per_channel and qt.levels.dim() == 2
    assert _levels_drawn(_figure(at, "channel 3")) == pytest.approx(sorted(np.unique(qt.grid_levels[3].numpy())))


def test_a_pruned_current_model_composes(at):
    at.switch_page("views/2_prune.py").run()
    at.slider(key=keys.PRUNE_SLIDER).set_value(70).run()
    check(at)
    at.switch_page(f"views/{PAGE}.py").run()
    check(at)
    wb = at.session_state[keys.BENCH]
    assert wb.sparsity == pytest.approx(0.7, abs=0.01)
    exp = _expected(at, "uniform_symmetric", 4)
    _shows(at, exp)
    report = exp["qm"].report()
    pruned = sum(int((~m).sum()) for m in wb.masks.values())
    assert int(report.iloc[-1]["zeros_before"]) >= pruned  # pruned weights stayed exactly zero
    for name, qt in exp["qm"].tensors.items():
        assert bool((qt.dequantize()[~wb.masks[name]] == 0).all())


def test_grid_button_computes_a_heatmap_of_the_right_shape(at):
    at.multiselect(key="quant_grid_sparsity").set_value([0, 50, 90]).run()
    at.multiselect(key="quant_grid_bits").set_value([2, 4]).run()
    assert not [f for f in charts(at) if "test accuracy" in (f["layout"].get("title") or {}).get("text", "")]
    at.button(key="quant_grid_compute").click().run()
    check(at)
    heat = _figure(at, "test accuracy")["data"][0]
    z = _array(heat["z"])
    assert z.shape == (3, 3)  # sparsity {0, 50, 90} x bits {2, 4, fp32}
    assert list(heat["x"]) == ["2 bits", "4 bits", "fp32"]
    # one cell against the library: 50 % global magnitude, 4-bit uniform symmetric
    wb = at.session_state[keys.BENCH]
    ds = load_dataset(wb.dataset)
    pruned = prune(wb.dense, "global_magnitude", 0.5)
    qm = quantize_model(pruned.model, "uniform_symmetric", 4, masks=pruned.masks)
    assert z[1, 1] == pytest.approx(100 * evaluate_dataset(qm.model, ds, device="cpu").accuracy)
    assert z[0, 2] == pytest.approx(100 * evaluate_dataset(wb.dense, ds, device="cpu").accuracy)
    # cached per configuration: no Compute button any more, and the same grid after a slider move
    assert not [b for b in at.button if b.key == "quant_grid_compute"]
    at.slider(key="quant_bits").set_value(6).run()
    assert _array(_figure(at, "test accuracy")["data"][0]["z"]).tolist() == z.tolist()


def test_grid_stop_keeps_a_partial_grid(at):
    at.multiselect(key="quant_grid_sparsity").set_value([0, 90]).run()
    at.multiselect(key="quant_grid_bits").set_value([2]).run()
    at.session_state[keys.STOP] = True  # what the Stop button's click does to the running grid
    at.button(key="quant_grid_compute").click().run()
    check(at)
    assert any("Stopped" in w.value for w in at.warning)
    assert [b for b in at.button if b.key == "quant_grid_compute"]  # it offers to compute again
    assert not at.session_state[keys.STOP]


@pytest.mark.parametrize("model", MODELS)
def test_opens_on_every_sample_model_pruned_and_per_channel(model):
    at = open_app(model, "2_prune")
    at.slider(key=keys.PRUNE_SLIDER).set_value(80).run()
    at.switch_page(f"views/{PAGE}.py").run()
    check(at)
    at.radio(key="quant_granularity").set_value("channel").run()
    _shows(at, _expected(at, "uniform_symmetric", 4, per_channel=True))
    assert len(charts(at)) == 2  # histogram and size waterfall (the grid waits for its button)


def test_compressed_checkpoint_download_is_the_librarys_file(at):
    from sparsity_viz.compression.checkpoint import load_compressed, save_compressed
    from sparsity_viz.figures import human_bytes

    at.button(key="quant_ckpt").click().run()
    check(at)
    (button,) = [b for b in at.get("download_button") if b.proto.id.endswith("quant_ckpt_download")
                 or "compressed checkpoint" in b.proto.label]
    exp = _expected(at, "uniform_symmetric", 4)
    data = save_compressed(exp["qm"])
    assert human_bytes(len(data)) in button.proto.label
    wb = at.session_state[keys.BENCH]
    ds = load_dataset(wb.dataset)
    loaded = load_compressed(data)
    assert f"{100 * evaluate_dataset(loaded, ds, device='cpu').accuracy:.1f} %" == exp["after"]
