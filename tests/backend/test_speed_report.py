"""``measure_speed``: the Speed page's measurement as a library call with a progress callback."""

from __future__ import annotations

import dataclasses

import pytest

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

SETTINGS = SpeedSettings(batches=(1, 8), formats=("dense", "csr-torch"), repeats=3, device="cpu", layer="fc1")


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
