"""Figures: trace types and the data they carry, not just that a figure exists."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from sparsity_viz import figures as F
from sparsity_viz.connectivity import input_fanout
from sparsity_viz.graph import build_graph
from sparsity_viz.models import MLP, build_model


def arr(v) -> np.ndarray:
    """Trace data as a float array (plotly may keep numpy arrays, lists or tuples)."""
    return np.asarray(v if not isinstance(v, tuple) else list(v), dtype=float)


def by_name(fig: go.Figure, name: str):
    return [t for t in fig.data if t.name == name]


def by_meta(fig: go.Figure, **kw):
    return [t for t in fig.data if isinstance(t.meta, dict) and all(t.meta.get(k) == v for k, v in kw.items())]


def test_style_is_readable():
    fig = F.apply_style(go.Figure(), "t")
    assert fig.layout.font.size >= 16
    assert F.PRUNED_COLOR.startswith("#")


def test_linear_heatmap_values_and_pruned_overlay():
    torch.manual_seed(0)
    w = torch.randn(4, 6)
    mask = torch.rand(4, 6) > 0.5
    fig = F.weight_heatmap(w, mask, title="fc1")
    assert [type(t) for t in fig.data] == [go.Heatmap, go.Heatmap]
    values, pruned = arr(fig.data[0].z), arr(fig.data[1].z)
    expected = np.where(mask.numpy(), w.numpy(), np.nan)
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    assert np.array_equal(np.isnan(pruned), mask.numpy())
    assert np.all(pruned[~mask.numpy()] == 1.0)
    zmax = float(np.nanmax(np.abs(expected)))
    assert (
        fig.data[0].zmid == 0 and fig.data[0].zmax == pytest.approx(zmax) and fig.data[0].zmin == pytest.approx(-zmax)
    )
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_conv_heatmap_is_a_grid_of_filters():
    torch.manual_seed(0)
    w = torch.randn(5, 1, 3, 3)  # 5 filters -> 3 columns x 2 rows of 3x3 tiles, 1-cell gaps
    mask = torch.ones_like(w, dtype=torch.bool)
    mask[4, 0, 1, 1] = False
    values, pruned, index = F.heatmap_matrix(w, mask)
    assert values.shape == (2 * 4 - 1, 3 * 4 - 1)
    np.testing.assert_allclose(values[0:3, 4:7], w[1, 0].numpy())  # filter 1: row 0, column 1
    tile4 = values[4:7, 4:7]  # filter 4: row 1, column 1
    assert np.isnan(tile4[1, 1]) and pruned[5, 5] == 1.0
    assert np.isnan(values[3, :]).all() and np.isnan(pruned[3, :]).all()  # gap row
    assert (index[4:7, 8:11] == -1).all() and np.isnan(values[4:7, 8:11]).all()  # slot 5 is empty
    w2 = torch.randn(3, 2, 2, 2)  # C_in > 1: rows = out channels, columns = in channels
    v2, _, idx2 = F.heatmap_matrix(w2)
    assert v2.shape == (3 * 3 - 1, 2 * 3 - 1)
    np.testing.assert_allclose(v2[6:8, 3:5], w2[2, 1].numpy())
    assert tuple(idx2[6, 4]) == (2, 1, 0, 1)
    fig = F.weight_heatmap(w, mask)
    assert arr(fig.data[0].z).shape == values.shape


def test_layer_heatmap_reads_the_named_layer():
    model = build_model("lenet5", seed=0)
    mask = torch.rand(20, 1, 5, 5) > 0.5
    fig = F.layer_heatmap(model, {"conv1.weight": mask}, "conv1")
    values, _, _ = F.heatmap_matrix(model.conv1.weight, mask)
    np.testing.assert_array_equal(arr(fig.data[0].z), values)
    with pytest.raises(ValueError):
        F.layer_heatmap(model, None, "fc9")


def test_histogram_counts():
    torch.manual_seed(0)
    dense = {"a": torch.randn(100, 10), "b": torch.randn(50)}
    masks = {"a": dense["a"].abs() > 0.5, "b": dense["b"].abs() > 0.5}
    pruned = {k: v * masks[k] for k, v in dense.items()}
    fig = F.weight_histogram(dense, pruned, masks, bins=20)
    assert [type(t) for t in fig.data] == [go.Bar, go.Bar]
    all_w = torch.cat([dense["a"].flatten(), dense["b"]]).double().numpy()
    edges = np.linspace(all_w.min(), all_w.max(), 21)
    np.testing.assert_array_equal(arr(fig.data[0].y), np.histogram(all_w, edges)[0])
    survivors = all_w[np.abs(all_w) > 0.5]
    np.testing.assert_array_equal(arr(fig.data[1].y), np.histogram(survivors, edges)[0])
    assert arr(fig.data[1].y).sum() == int(masks["a"].sum() + masks["b"].sum())
    np.testing.assert_allclose(arr(fig.data[0].x), 0.5 * (edges[1:] + edges[:-1]))
    # without masks, the nonzero entries survive
    fig2 = F.weight_histogram(dense, pruned, bins=20)
    np.testing.assert_array_equal(arr(fig2.data[1].y), arr(fig.data[1].y))
    assert len(F.weight_histogram(dense["b"]).data) == 1


def test_graph_figure_draws_every_edge_and_greys_dead_nodes():
    model = MLP(3, (4,), 2)
    masks = {
        "fc1.weight": torch.tensor([[1, 0, 0], [0, 0, 0], [1, 1, 0], [0, 1, 1]], dtype=torch.bool),
        "fc2.weight": torch.tensor([[1, 0, 1, 0], [0, 0, 1, 1]], dtype=torch.bool),
    }
    g = build_graph(model, masks)
    fig = F.connection_graph(g)
    assert F.edge_count(fig) == len(g.edges) == 9
    for tr in by_meta(fig, kind="edges"):
        assert isinstance(tr, go.Scatter) and tr.mode == "lines"
        assert tr.line.color == (F.style.POSITIVE_COLOR if tr.meta["sign"] == "+" else F.style.NEGATIVE_COLOR)
    (dead,) = by_meta(fig, kind="nodes", dead=True)
    (alive,) = by_meta(fig, kind="nodes", dead=False)
    assert dead.marker.color == F.PRUNED_COLOR
    assert len(dead.x) == sum(n.dead for n in g.nodes) == 1  # fc1 unit 1 has no input
    assert len(alive.x) + len(dead.x) == len(g.nodes) == 3 + 4 + 2
    # the sign split: positive edges drawn blue, in total as many as positive edges in the graph
    pos = sum(sum(v is None for v in t.x) for t in by_meta(fig, kind="edges", sign="+"))
    assert pos == sum(e.weight >= 0 for e in g.edges)


def test_graph_figure_lenet300_is_capped():
    fig = F.model_graph(build_model("lenet300", seed=0), None, input_shape=(1, 28, 28), max_edges_per_layer=100)
    assert F.edge_count(fig) == 300
    assert len(fig.data) <= 3 * 2 * 4 + 2


def _sweep() -> pd.DataFrame:
    rows = []
    for i, strategy in enumerate(("magnitude", "random")):
        for s in (0.0, 0.5, 0.9):
            for seed in range(3):
                rows.append(
                    dict(strategy=strategy, sparsity=s, seed=seed, accuracy=0.95 - (i + 1) * 0.2 * s + 0.01 * seed)
                )
    return pd.DataFrame(rows)


def test_accuracy_curves_means_bands_baseline():
    df = _sweep()
    fig = F.accuracy_curves(df)
    means = by_meta(fig, kind="mean")
    assert [t.name for t in means] == ["magnitude", "random"]
    for t in means:
        sub = df[df.strategy == t.name].groupby("sparsity").accuracy
        np.testing.assert_allclose(arr(t.x), 100 * np.array([0.0, 0.5, 0.9]))
        np.testing.assert_allclose(arr(t.y), 100 * sub.mean().to_numpy())
        (lo,) = by_meta(fig, kind="band_lower", group=t.name)
        (hi,) = by_meta(fig, kind="band_upper", group=t.name)
        np.testing.assert_allclose(arr(lo.y), 100 * sub.min().to_numpy())
        np.testing.assert_allclose(arr(hi.y), 100 * sub.max().to_numpy())
        assert lo.fill == "tonexty"
    (base,) = by_meta(fig, kind="baseline")
    assert arr(base.y) == pytest.approx([100 * df[df.sparsity == 0].accuracy.mean()] * 2)
    assert "%" in fig.layout.xaxis.title.text and "%" in fig.layout.yaxis.title.text

    std = F.accuracy_curves(df, band="std", dense_accuracy=0.99)
    (lo,) = by_meta(std, kind="band_lower", group="magnitude")
    sub = df[df.strategy == "magnitude"].groupby("sparsity").accuracy
    np.testing.assert_allclose(arr(lo.y), 100 * (sub.mean() - sub.std()).to_numpy())
    assert arr(by_meta(std, kind="baseline")[0].y)[0] == pytest.approx(99.0)

    comp = F.accuracy_curves(df, x_axis="compression", band=None)
    assert comp.layout.xaxis.type == "log"
    np.testing.assert_allclose(arr(by_meta(comp, kind="mean")[0].x), [1.0, 2.0, 10.0])
    assert not by_meta(comp, kind="band_lower")


def test_accuracy_curves_split_by_finetuning():
    df = pd.concat(
        [_sweep().assign(finetuned=False), _sweep().assign(finetuned=True, accuracy=lambda d: d.accuracy + 0.02)]
    )
    fig = F.accuracy_curves(df, band=None)
    names = [t.name for t in by_meta(fig, kind="mean")]
    assert len(names) == 4 and "magnitude (fine-tuned)" in names
    dashed = [t for t in by_meta(fig, kind="mean") if t.line.dash == "dash"]
    assert len(dashed) == 2
    with pytest.raises(ValueError, match="lacks column"):
        F.accuracy_curves(df.drop(columns="seed"))


def test_scheduled_strategies_are_never_labelled_fine_tuned():
    one_shot = _sweep().assign(kind="one_shot")
    scheduled = _sweep().assign(strategy="gradual", kind="scheduled")
    df = pd.concat([one_shot.assign(finetuned=False), one_shot.assign(finetuned=True), scheduled.assign(finetuned=True)])
    names = [t.name for t in by_meta(F.accuracy_curves(df, band=None), kind="mean")]
    assert "gradual (scheduled training)" in names
    assert not any(n.startswith("gradual (") and "fine-tun" in n for n in names)
    assert "magnitude (fine-tuned)" in names and "magnitude (no fine-tuning)" in names


def test_decision_boundary_grid_and_points():
    model = build_model("moons_mlp", seed=0).train()
    x = torch.randn(40, 2)
    y = (x[:, 0] > 0).long()
    fig = F.decision_boundary(
        model, x, y, x_range=(-1, 1), y_range=(-2, 2), resolution=11, gradient_target=1, gradient_resolution=5
    )
    assert model.training  # mode restored
    (prob,) = by_meta(fig, kind="probability")
    assert isinstance(prob, go.Heatmap)
    xs, ys, z = arr(prob.x), arr(prob.y), arr(prob.z)
    assert z.shape == (11, 11)
    model.eval()
    with torch.no_grad():
        expect = torch.softmax(model(torch.tensor([[xs[3], ys[7]]], dtype=torch.float32)), 1)[0, 1]
    assert z[7, 3] == pytest.approx(float(expect), abs=1e-6)
    assert isinstance(by_meta(fig, kind="boundary")[0], go.Contour)
    pts = by_meta(fig, kind="points")
    assert [len(t.x) for t in pts] == [int((y == 0).sum()), int((y == 1).sum())]
    assert pts[0].marker.symbol != pts[1].marker.symbol
    (shafts,) = by_meta(fig, kind="gradient_shafts")
    assert len(shafts.x) == 3 * 25
    cmp = F.boundary_comparison(model, model, x, y, resolution=9, gradient_target=0, gradient_resolution=4)
    assert len(by_meta(cmp, kind="probability")) == 2
    np.testing.assert_allclose(arr(by_meta(cmp, kind="probability")[0].z), arr(by_meta(cmp, kind="probability")[1].z))


def test_attribution_maps_images_and_points():
    torch.manual_seed(0)
    x, d, p = torch.rand(1, 8, 8), torch.randn(1, 8, 8), torch.randn(1, 8, 8)
    fig = F.attribution_maps(x, d, p, similarity=0.5, method="Saliency", normalize=False)
    assert [type(t) for t in fig.data] == [go.Heatmap] * 4
    np.testing.assert_allclose(arr(fig.data[0].z), x[0].numpy())
    np.testing.assert_allclose(arr(fig.data[1].z), d[0].numpy())
    np.testing.assert_allclose(arr(fig.data[2].z), p[0].numpy())
    np.testing.assert_allclose(arr(fig.data[3].z), (p - d)[0].numpy(), rtol=1e-6)
    assert fig.data[1].coloraxis == fig.data[2].coloraxis != fig.data[3].coloraxis
    assert fig.layout.coloraxis.cmid == 0
    assert "0.50" in fig.layout.title.text
    scaled = F.attribution_maps(x, d, 0.01 * p)
    np.testing.assert_allclose(arr(scaled.data[2].z), (p / p.abs().max())[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(arr(scaled.data[1].z), (d / d.abs().max())[0].numpy(), rtol=1e-6)
    assert np.nanmax(np.abs(arr(scaled.data[2].z))) == pytest.approx(1.0)
    bars = F.attribution_maps(torch.tensor([0.1, 0.2]), torch.tensor([1.0, -1.0]), torch.tensor([0.5, 0.0]),
                              normalize=False)
    assert [type(t) for t in bars.data] == [go.Bar] * 3
    np.testing.assert_allclose(arr(bars.data[2].y), [-0.5, 1.0])


def test_fanout_map():
    model = build_model("digits_mlp", seed=0)
    mask = torch.ones(32, 64, dtype=torch.bool)
    mask[:, :8] = False  # first pixel row disconnected
    mask[:5, 9] = False
    fan = input_fanout(model, {"fc1.weight": mask})
    fig = F.fanout_map(fan)
    z, grey = arr(fig.data[0].z), arr(fig.data[1].z)
    assert z.shape == (8, 8) and np.isnan(z[0]).all() and (grey[0] == 1).all()
    assert z[1, 1] == 27 and z[2, 2] == 32 and np.isnan(grey[1:]).all()
    bars = F.fanout_map(torch.tensor([3, 0]))
    assert isinstance(bars.data[0], go.Bar) and arr(bars.data[0].y).tolist() == [3, 0]


@pytest.mark.skipif(
    not (os.path.exists("/usr/bin/chromium") or shutil.which("chromium") or shutil.which("google-chrome")),
    reason="kaleido needs a Chrome/Chromium browser; none found (/usr/bin/chromium missing)",
)
def test_png_export():
    fig = F.weight_heatmap(torch.randn(3, 4), torch.rand(3, 4) > 0.3, title="tiny")
    png = F.to_png_bytes(fig, width=300, height=200)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


def test_training_history_plots_each_epoch():
    history = [
        {"epoch": 1, "train_loss": 1.0, "test_loss": 1.2, "test_accuracy": 0.5, "sparsity": 0.1},
        {"epoch": 2, "train_loss": 0.5, "test_loss": 0.7, "test_accuracy": 0.8, "sparsity": 0.4},
    ]
    fig = F.training_history(history, "L1")
    by_kind = {t.meta["kind"]: t for t in fig.data}
    assert arr(by_kind["train loss"].y).tolist() == [1.0, 0.5]
    assert arr(by_kind["test accuracy"].y).tolist() == [50.0, 80.0]
    assert arr(by_kind["sparsity"].y).tolist() == [10.0, 40.0]
    assert arr(by_kind["test loss"].x).tolist() == [1, 2]


def test_training_history_shows_train_vs_test_accuracy_and_the_gap():
    history = [
        {"epoch": 1, "train_loss": 1.0, "test_loss": 1.2, "test_accuracy": 0.5, "sparsity": 0.0,
         "train_accuracy": 0.4, "train_eval_accuracy": 0.6},
        {"epoch": 2, "train_loss": 0.5, "test_loss": 0.7, "test_accuracy": 0.8, "sparsity": 0.0,
         "train_accuracy": 0.7, "train_eval_accuracy": 0.95},
    ]
    fig = F.training_history(history, "dropout")
    by_kind = {t.meta["kind"]: t for t in fig.data}
    train_acc, test_acc = by_kind["train accuracy (eval mode)"], by_kind["test accuracy"]
    assert arr(train_acc.y).tolist() == [60.0, 95.0] and arr(test_acc.y).tolist() == [50.0, 80.0]
    assert train_acc.xaxis == test_acc.xaxis == "x2"  # side by side in the accuracy panel
    gap = [a for a in fig.layout.annotations if a.text.startswith("gap")]
    assert len(gap) == 1 and gap[0].text == "gap +15.0 pts" and gap[0].xref == "x2"
    assert "train vs test accuracy (%)" in [a.text for a in fig.layout.annotations]
    assert F.training.accuracy_gap(history) == pytest.approx(15.0)
    # legend in its own band under the panels (LEGEND_BELOW: plotly reserves it), never on an axis title
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.yref == "container" and fig.layout.legend.y == 0


def test_training_history_without_train_eval_has_no_gap():
    history = [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.2, "test_accuracy": 0.5, "sparsity": 0.1,
                "train_eval_accuracy": None}]
    fig = F.training_history(history)
    assert "train accuracy (eval mode)" not in {t.meta["kind"] for t in fig.data}
    assert not [a for a in fig.layout.annotations if a.text.startswith("gap")]
    assert F.training.accuracy_gap(history) is None and F.training.accuracy_gap([]) is None
