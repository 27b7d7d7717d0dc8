"""MoE figures: the data they draw equals the library's numbers; one colour per expert across figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sparsity_viz import figures
from sparsity_viz.data import load_dataset
from sparsity_viz.figures.style import OKABE_ITO, PRUNED_COLOR
from sparsity_viz.moe import MoEMLP, expert_map, expert_report, routing_table


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    model = MoEMLP(2, (8,), 2, num_experts=4, top_k=2)
    data = load_dataset("moons")
    return model, data, expert_report(model, data)


def test_routing_heatmap_draws_the_routing_table_as_counts_and_shares(toy):
    model, data, report = toy
    table = routing_table(model, data.x_test, data.y_test).numpy()
    counts = figures.routing_heatmap(report["routing_table"], report["classes"], shares=False)
    heat = counts.data[0]
    assert np.array_equal(np.asarray(heat.z), table) and np.array_equal(np.asarray(heat.customdata), table)
    assert heat.text[1][3] == f"{table[1, 3]:,}"
    shares = figures.routing_heatmap(table, report["classes"]).data[0]
    np.testing.assert_allclose(np.asarray(shares.z), 100 * table / table.sum(1, keepdims=True))
    assert np.asarray(shares.z).sum(1) == pytest.approx([100, 100])
    assert shares.text[0][0] == f"{100 * table[0, 0] / table[0].sum():.0f} %"


def test_routing_shares_of_an_empty_class_are_zero():
    np.testing.assert_allclose(figures.routing_shares([[1, 3], [0, 0]]), [[25, 75], [0, 0]])


def test_load_bars_are_the_load_in_expert_colours_with_the_balance_loss(toy):
    _, _, report = toy
    fig = figures.expert_load_bars(report["load"], report["balance_loss"], pruned=[2])
    bar = fig.data[0]
    assert list(bar.y) == report["load"]
    assert list(bar.marker.color) == [OKABE_ITO[0], OKABE_ITO[1], PRUNED_COLOR, OKABE_ITO[3]]
    assert list(bar.x) == [0, 1, 2, 3] and fig.layout.xaxis.ticktext[2] == "2<br>(pruned)"
    assert bar.customdata[2] == "expert 2 (pruned)"
    assert fig.layout.title.text.endswith(f"balance loss {report['balance_loss']:.2f}")
    assert "loss 1 = uniform, 4 = one" in fig.layout.annotations[-1].text
    uniform = fig.layout.shapes[0]
    assert uniform.y0 == pytest.approx(sum(report["load"]) / 4)


def test_compute_bars_are_the_reports_parameter_and_flop_counts(toy):
    _, _, report = toy
    fig = figures.compute_bars(report)
    params, flops = fig.data
    assert list(params.x) == [report["active_parameters"], report["total_parameters"]]
    assert list(flops.x) == [report["flops_per_input"], report["flops_per_input_all_experts"]]
    assert list(params.y) == ["top-2", "all 4"]


def test_expert_regions_draw_the_map_and_the_points(toy):
    model, data, _ = toy
    emap = expert_map(model, (-2, 3), (-1.5, 2), resolution=30)
    fig = figures.expert_regions(emap, data.x_test, data.y_test, data.class_names, pruned=[1])
    heat, *points = fig.data
    assert np.array_equal(np.asarray(heat.z), emap.experts)
    assert heat.colorscale[2][1].startswith("rgba(154,154,154")  # expert 1's band is the pruned grey
    assert heat.colorscale[0][1].startswith("rgba(0,114,178")  # expert 0: OKABE_ITO[0], as in the other figures
    assert len(points) == 2 and sum(len(p.x) for p in points) == len(data.y_test)
    np.testing.assert_allclose(points[1].x, data.x_test[data.y_test == 1, 0].numpy())


def test_expert_colours_agree_across_figures(toy):
    _, _, report = toy
    heat = figures.routing_heatmap(report["routing_table"], report["classes"])
    bars = figures.expert_load_bars(report["load"], report["balance_loss"])
    for e in range(4):
        assert figures.expert_color(e) in heat.layout.xaxis.ticktext[e]
        assert bars.data[0].marker.color[e] == figures.expert_color(e)
