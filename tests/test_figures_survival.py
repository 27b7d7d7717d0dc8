"""Strategy-lab figures: survival categories, Jaccard bars, layer profiles, death times, lottery curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sparsity_viz import figures
from sparsity_viz.comparison import sparsity_profile, survival_map, survival_table
from sparsity_viz.figures.survival import SURVIVAL_COLORS
from sparsity_viz.pruning.schedule import MaskTimeline


def _z(trace) -> np.ndarray:
    return np.asarray(trace.z, dtype=float)


@pytest.fixture
def masks_ab():
    g = torch.Generator().manual_seed(0)
    a = {"fc1.weight": torch.rand(6, 10, generator=g) > 0.5, "fc2.weight": torch.rand(3, 6, generator=g) > 0.3}
    b = {"fc1.weight": torch.rand(6, 10, generator=g) > 0.5, "fc2.weight": torch.rand(3, 6, generator=g) > 0.3}
    return a, b


def test_survival_heatmap_four_categories_with_a_legend(masks_ab):
    a, b = masks_ab
    cats = survival_map(a, b)["fc1.weight"]
    fig = figures.survival_heatmap(cats, title="fc1")
    (trace,) = fig.data
    np.testing.assert_array_equal(_z(trace), cats.numpy())
    assert list(trace.colorbar.tickvals) == [0, 1, 2, 3]
    counts = [int((cats == k).sum()) for k in range(4)]
    assert [t.rsplit("(", 1)[1].rstrip(")").replace(",", "") for t in trace.colorbar.ticktext] == [str(c) for c in counts]
    used = {c for _, c in trace.colorscale}
    assert used == set(SURVIVAL_COLORS) and len(SURVIVAL_COLORS) == 4
    # each code falls in its own colour step
    scale = trace.colorscale
    for k in range(4):
        pos = (k + 0.5) / 4
        step = [c for (lo, c), (hi, _) in zip(scale[::2], scale[1::2]) if lo <= pos <= hi]
        assert step == [SURVIVAL_COLORS[k]]
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_survival_heatmap_conv_uses_kernel_tiles():
    cats = torch.randint(0, 4, (4, 2, 3, 3), dtype=torch.int8)
    fig = figures.survival_heatmap(cats)
    z = _z(fig.data[0])
    assert z.shape == (4 * 4 - 1, 2 * 4 - 1)  # one blank row/column between tiles
    assert np.isnan(z).any() and np.nanmax(z) <= 3


def test_jaccard_bars_values_and_random_reference(masks_ab):
    a, b = masks_ab
    table = survival_table(a, b)
    fig = figures.jaccard_bars(table)
    bars, ref = fig.data
    assert list(bars.x) == ["fc1", "fc2", "all"]
    np.testing.assert_allclose(bars.y, 100 * table["jaccard"])
    da = (table["both"] + table["only_a"]) / table["total"]
    db = (table["both"] + table["only_b"]) / table["total"]
    np.testing.assert_allclose(ref.y, 100 * da * db / (da + db - da * db))
    assert "%" in fig.layout.yaxis.title.text


def test_sparsity_profile_chart_groups_strategies_and_marks_effective():
    m1 = {"fc1.weight": torch.ones(4, 4, dtype=torch.bool), "fc2.weight": torch.zeros(2, 4, dtype=torch.bool)}
    m1["fc2.weight"][0, 0] = True
    m1["fc1.weight"][1:, :] = False  # only unit 0 of fc1 alive; fc2 reads unit 0: all fine
    m1["fc1.weight"][0, :] = True
    m2 = {"fc1.weight": torch.ones(4, 4, dtype=torch.bool), "fc2.weight": torch.ones(2, 4, dtype=torch.bool)}
    m2["fc2.weight"][:, 1:] = False  # units 1..3 of fc1 feed nothing: their weights are effectively pruned
    profile = sparsity_profile({"a": m1, "b": m2})
    fig = figures.sparsity_profile_chart(profile)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["a", "b"]
    np.testing.assert_allclose(bars[1].y, [0.0, 75.0])
    eff = [t for t in fig.data if t.type == "scatter"]
    assert eff and np.nanmax(np.asarray(eff[1].y, dtype=float)) == pytest.approx(75.0)
    assert fig.layout.barmode == "group"


def test_timeline_state_tracks_death_and_regrowth_over_steps():
    init = {"w": torch.ones(2, 3, dtype=torch.bool)}
    tl = MaskTimeline(initial=init)
    m1 = init["w"].clone()
    m1.view(-1)[[0, 1]] = False
    tl.record(10, init, {"w": m1})
    m2 = m1.clone()
    m2.view(-1)[0] = True  # regrows
    m2.view(-1)[2] = False
    tl.record(20, {"w": m1}, {"w": m2})
    s10 = figures.timeline_state(tl, 10)["w"]
    assert s10["alive"].view(-1).tolist() == [False, False, True, True, True, True]
    assert s10["died"].view(-1).tolist()[:3] == [10, 10, -1]
    s20 = figures.timeline_state(tl, 20)["w"]
    assert s20["alive"].view(-1).tolist() == [True, False, False, True, True, True]
    assert s20["regrown"].view(-1)[0] == 20 and s20["died"].view(-1)[2] == 20
    torch.testing.assert_close(s20["alive"], tl.mask_at(20)["w"])
    fig = figures.death_time_heatmap(s20, step=20, last_step=20)
    dead, kind = _z(fig.data[0]), _z(fig.data[1])
    assert np.nanmax(dead) == 20 and dead.reshape(-1)[1] == 10  # died at 10, still dead
    assert kind.reshape(-1)[0] == 1  # alive and regrew
    assert np.isnan(kind.reshape(-1)[1])
    assert "regrew" in fig.layout.title.text
    assert list(fig.data[1].colorbar.ticktext) == ["alive", "alive, regrew"]
    # before anything regrew, the key names only "alive" (gradual never regrows: its key had said "regrew", an audit)
    fig10 = figures.death_time_heatmap(s10, step=10, last_step=20)
    assert list(fig10.data[1].colorbar.ticktext) == ["alive"] and "regrew" not in fig10.layout.title.text


def test_lottery_curves_three_methods_log_axis():
    rows = []
    for method in ("imp_rewind", "reinit", "random_mask"):
        for r, remaining in enumerate((1.0, 0.8, 0.64)):
            rows.append({"method": method, "round": r, "remaining": remaining, "sparsity": 1 - remaining,
                         "test_accuracy": 0.9 - 0.01 * r, "best_accuracy": 0.92 - (0.0 if method == "imp_rewind" else 0.02 * r)})
    fig = figures.lottery_curves(pd.DataFrame(rows))
    assert len(fig.data) == 4  # three methods + dense
    assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.autorange == "reversed"
    np.testing.assert_allclose(fig.data[0].x, [100, 80, 64])
    np.testing.assert_allclose(fig.data[1].y, [92, 90, 88])
    assert "remaining" in fig.layout.xaxis.title.text
    # one colour per strategy everywhere (an audit: IMP was drawn in magnitude's colour, the random mask in SNIP's)
    from sparsity_viz.figures.style import STRATEGY_COLORS, strategy_color

    imp, reinit, random_mask = (t.line.color for t in fig.data[:3])
    assert imp == strategy_color("iterative") and random_mask == strategy_color("random")
    assert reinit not in STRATEGY_COLORS  # a control, not a strategy
