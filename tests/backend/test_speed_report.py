"""``measure_speed``: the Speed page's measurement as a library call with a progress callback."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sparsity_viz.backend.speed_report import (
    CURVE_SPARSITIES,
    SpeedReport,
    SpeedSettings,
    measure_speed,
    measurement_key,
)
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.masks import full_masks
from sparsity_viz.pruning import prune

# a short time cap: these tests check what a report holds, not how stable its ratios are (test_stable_timing.py)
SETTINGS = SpeedSettings(batches=(1, 8), formats=("dense", "csr-torch"), repeats=3, device="cpu", layer="fc1",
                         time_cap_s=0.5)


@pytest.fixture(scope="module")
def pruned():
    model, _ = load_sample("moons_mlp")
    return prune(model, "magnitude", 0.8)


def test_report_has_every_batch_a_plan_each_and_the_sweep(pruned):
    seen = []
    report = measure_speed(pruned.model, SETTINGS, progress=lambda f, text: seen.append((f, text)))
    assert isinstance(report, SpeedReport)
    assert sorted(report.bench["batch"].unique()) == [1, 8]
    assert set(report.bench["format"]) == {"dense", "csr-torch"}
    assert sorted(report.plans) == [1, 8] and {"table", "explain", "notices"} <= set(report.plans[1])
    assert sorted(report.curves["sparsity"].unique()) == list(CURVE_SPARSITIES)
    assert report.layer == "fc1" and report.shape == tuple(pruned.model.fc1.weight.shape)
    fractions = [f for f, _ in seen]
    assert len(seen) == 2 * 2 + len(CURVE_SPARSITIES) and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "(1/" in seen[0][1]


def test_key_names_weights_masks_and_settings(pruned):
    key = measurement_key(pruned.model, pruned.masks, SETTINGS)
    assert key == measurement_key(pruned.model, pruned.masks, SETTINGS)
    assert key != measurement_key(pruned.model, full_masks(pruned.model), SETTINGS)
    assert key != measurement_key(pruned.model, pruned.masks, dataclasses.replace(SETTINGS, repeats=4))
    assert key[-1] == SETTINGS


def _synthetic(ratio: float, formats: list[str]) -> SpeedReport:
    """A report whose compiled model ('auto') reads ``ratio`` × dense at batch 8, with a plan of ``formats``."""
    import pandas as pd

    bench = pd.DataFrame([
        {"batch": 8, "format": "dense", "median_us": 100.0, "ratio_dense": 1.0, "note": "", "weight_bytes": 400},
        {"batch": 8, "format": "auto", "median_us": 100.0 * ratio, "ratio_dense": ratio, "note": "", "weight_bytes": 400},
    ])
    table = pd.DataFrame({"layer": [f"fc{i + 1}" for i in range(len(formats))], "format": formats,
                          "density": [0.5] * len(formats), "shape": [(4, 4)] * len(formats),
                          "compiled_shape": [(4, 4)] * len(formats)})
    return SpeedReport(bench, {8: {"table": table, "explain": "", "notices": []}}, pd.DataFrame(), pd.DataFrame(),
                       "fc1", (4, 4))


@pytest.mark.parametrize("ratio,formats,expected", [
    (0.50, ["csr-native", "dense"], "At batch 8 the compiled model takes **0.50×** the dense time (2.0× faster)."),
    (1.00, ["dense", "dense"], "At batch 8 the compiled model **ties** with dense (1.00× the dense time): the "
                               "dispatcher kept every layer dense."),
    (1.50, ["dense", "dense"], "At batch 8 the compiled model **loses**: 1.50× the dense time: every layer stays "
                               "dense, so this is the compiled call's own cost (or timing noise)."),
    (1.50, ["csr-native", "dense"], "At batch 8 the compiled model **loses**: 1.50× the dense time: the formats chosen "
                                    "when it was compiled are slower in this measurement."),
])
def test_the_compiled_model_sentence_follows_its_ratio(ratio, formats, expected):
    """It said 'never meaningfully slower' for any ratio >= 0.97, 1.5 included."""
    from sparsity_viz.backend.speed_findings import findings

    lines = findings(_synthetic(ratio, formats), (8,))
    assert lines[0] == expected
    assert not any("never meaningfully slower" in line for line in lines)


def test_a_conv_model_of_small_images_is_timed_in_every_format_on_its_inputs():
    """Found by an audit: only 'auto' got the real inputs; the other formats compiled on a guess of 28x28 images
    and Measure raised for an own conv model of 8x8 digits."""
    from torch import nn

    from sparsity_viz.backend.bench import benchmark_model

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10)).eval()
    x = torch.randn(16, 1, 8, 8)
    rows = benchmark_model(model, [4], device="cpu", formats=("dense", "csr-torch", "compact+dense", "auto"),
                           repeats=3, calibration=x).set_index("format")
    assert rows["median_us"].notna().all(), rows["note"].to_dict()


def test_a_layer_format_whose_output_is_wrong_is_not_timed(monkeypatch):
    """Found by an audit: benchmark_layer (sparse_layer.py, sparse_crossover.py, the crossover curve) timed every
    format without comparing its output."""
    from sparsity_viz.backend import bench

    real = bench.make_op

    def broken(fmt, *args, **kwargs):
        op = real(fmt, *args, **kwargs)
        if fmt == "csr-torch":
            op.forward = lambda x: torch.zeros(args[0].shape[0], x.shape[1])
        return op

    monkeypatch.setattr(bench, "make_op", broken)
    w = bench.random_sparse((20, 30), 0.9)
    rows = bench.benchmark_layer(w, torch.randn(20), [4], formats=("dense", "csr-torch"), repeats=3).set_index("format")
    assert rows.loc["csr-torch", "note"].startswith("skipped: not timed: its output differs from the model's")
    assert rows.loc["dense", "median_us"] > 0


def test_layers_compacted_away_or_run_natively_dense_are_not_called_slower():
    """moons_mlp pruned 90 % per layer: "sparse is slower than dense for fc1 (0 % of weights left, compacted to
    0x0)", where the layer was removed; a chosen native dense kernel and the whole-call fallback read the same
    (an audit)."""
    from sparsity_viz.backend.speed_findings import findings

    report = _synthetic(0.5, ["dense", "dense", "dense-native", "dense"])
    table = report.plans[8]["table"]
    table["compiled_shape"] = ["0x0", "2x0", (4, 4), (4, 4)]
    table["reason"] = ["empty layer", "empty layer", "0.5x dense time", "fastest dense"]
    lines = findings(report, (8,))
    assert ("At batch 8 **fc1** (50 % of weights left, compacted to 0x0), **fc2** (50 % of weights left, compacted "
            "to 2x0) are compacted away: pruning left no path from the input to the output through their neurons, "
            "so they cost nothing.") in lines
    assert "At batch 8 sparse is slower than dense for **fc4** (50 % of weights left): the dispatcher keeps it dense." \
        in lines
    table["compiled_shape"] = [(4, 4)] * 4
    table["reason"] = ["original module kept (whole call not faster): 0.5x"] * 4
    lines = findings(report, (8,))
    assert "At batch 8 the whole compiled call was not faster than the original module, so the original module runs." \
        in lines and not any("sparse is slower" in line for line in lines)


def test_whole_call_reasons_say_every_layer_native_only_when_every_layer_is():
    """A fully pruned MLP's plan read "every layer native (one call) was fastest; csr-native unavailable (empty
    layer ...)" (an audit). Which contender wins is timed; whichever does, the words must fit it."""
    from sparsity_viz.backend import compile_model

    model, _ = load_sample("moons_mlp")
    for sparsity in (0.9, 1.0):
        compiled = compile_model(prune(model, "magnitude", sparsity).model, batch_size=1, device="cpu")
        for reason in compiled.plan_table()["reason"]:
            if reason.startswith("whole-call timing: every layer native"):
                assert compiled._all_native(), reason


def test_a_skipped_format_is_explained_by_the_layer_that_says_why():
    """LeNet-5's N:M skip read "conv kept dense (F.conv2d) at density 81.0% ...", conv1's fallback, where its fc
    layers said why N:M could not run (an audit)."""
    from sparsity_viz.backend.speed_findings import findings

    report = _synthetic(0.5, ["csr-native"])
    note = ("skipped: conv1: conv kept dense (F.conv2d) at density 81.0% + ReLU + 2x2 pool; fc1: nm-native "
            "unavailable (the mask is not N:M (1:4, 2:4, 2:8, 4:8)); dense")
    report.bench.loc[len(report.bench)] = {"batch": 8, "format": "nm-native", "note": note}
    assert "N:M (native) was skipped: fc1: nm-native unavailable (the mask is not N:M (1:4, 2:4, 2:8, 4:8))" in \
        findings(report, (8,))
