"""Projector mode and figure conventions: one colour per strategy, larger fonts and thicker lines, fixed accuracy
axes, legends in their own band, no "nan" over a blank attribution map, slow strategies from a measurement."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from sparsity_viz import figures as F
from sparsity_viz.attribution import compare_attributions
from sparsity_viz.comparison import strategy_profiles
from sparsity_viz.data import load_dataset
from sparsity_viz.figures import style
from sparsity_viz.models import MODELS, build_model
from sparsity_viz.pruning import live_cost, prune, strategy_names

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits_mlp():
    return build_model("digits_mlp", seed=0)


def _frame(strategies: list[str]) -> pd.DataFrame:
    rows = [dict(strategy=s, sparsity=level, seed=0, accuracy=0.9 - 0.1 * i * level)
            for i, s in enumerate(strategies) for level in (0.0, 0.5, 0.9)]
    return pd.DataFrame(rows)


def _line_colors(fig: go.Figure) -> dict[str, str]:
    return {t.name: t.line.color for t in fig.data if isinstance(t.meta, dict) and t.meta.get("kind") == "mean"}


def test_every_registry_strategy_has_its_own_colour():
    colors = [F.strategy_color(n) for n in strategy_names()]
    assert len(set(colors)) == len(colors) == len(strategy_names())
    assert all(re.fullmatch(r"#[0-9A-Fa-f]{6}", c) for c in colors)
    assert F.strategy_color("not_a_strategy", fallback=3) == F.palette(3)


def test_a_strategy_keeps_its_colour_whatever_else_is_drawn(digits_mlp):
    """The bug: colours were given by position in the chart, so SNIP changed colour with the chosen set."""
    a = _line_colors(F.accuracy_curves(_frame(["magnitude", "snip"])))
    b = _line_colors(F.accuracy_curves(_frame(["random", "erdos_renyi", "snip"])))
    assert a["snip"] == b["snip"] == F.strategy_color("snip")
    assert a["magnitude"] == F.strategy_color("magnitude") != a["snip"]
    profile = strategy_profiles(digits_mlp, ["snip", "magnitude"], 0.9,
                                batch=(torch.randn(32, 64), torch.randint(0, 10, (32,))))
    bars = {t.name: t.marker.color for t in F.sparsity_profile_chart(profile).data if t.type == "bar"}
    assert bars == {"snip": a["snip"], "magnitude": a["magnitude"]}  # same colours as on the curves


def test_projector_enlarges_fonts_lines_and_markers():
    fig = F.accuracy_curves(pd.concat([_frame(["magnitude"]), _frame(["magnitude"]).assign(seed=1, accuracy=0.5)]),
                            band="minmax")
    before = fig.to_plotly_json()
    F.projector(fig)
    assert fig.layout.font.size == style.PROJECTOR_FONT_SIZE > before["layout"]["font"]["size"]
    assert fig.layout.title.font.size == style.PROJECTOR_TITLE_FONT_SIZE
    assert fig.layout.legend.font.size == style.PROJECTOR_FONT_SIZE
    widths = [t["line"].get("width", 2) for t in before["data"] if t["line"].get("width") != 0]
    shift = max(0.0, style.PROJECTOR_MIN_LINE_WIDTH - min(widths))  # one shift: the thinnest becomes the minimum
    for old, new in zip(before["data"], fig.data):
        if old["line"].get("width") == 0:  # the band's invisible edges stay invisible
            assert new.line.width == 0
            continue
        assert new.line.width == old["line"].get("width", 2) + shift >= style.PROJECTOR_MIN_LINE_WIDTH
        if "size" in old.get("marker", {}):
            assert new.marker.size == pytest.approx(old["marker"]["size"] * style.PROJECTOR_MARKER_SCALE)


def test_projector_scales_explicit_annotation_and_tick_fonts():
    fig = F.apply_style(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), "t")
    fig.add_annotation(text="note", font=dict(size=13))
    fig.update_xaxes(tickfont_size=14)
    F.projector(fig)
    assert fig.layout.annotations[0].font.size == pytest.approx(13 * style.PROJECTOR_SCALE, abs=0.1)
    assert fig.layout.xaxis.tickfont.size == pytest.approx(14 * style.PROJECTOR_SCALE, abs=0.1)
    maps = F.attribution_maps(np.zeros((8, 8)), np.eye(8), np.eye(8) * 2, similarity=0.5)  # colour axes, size 14
    sizes = (maps.layout.coloraxis.colorbar.tickfont.size, maps.layout.coloraxis2.colorbar.title.font.size)
    margin = maps.layout.margin.t
    F.projector(maps)
    assert maps.layout.coloraxis.colorbar.tickfont.size == pytest.approx(sizes[0] * style.PROJECTOR_SCALE, abs=0.1)
    assert maps.layout.coloraxis2.colorbar.title.font.size == pytest.approx(sizes[1] * style.PROJECTOR_SCALE, abs=0.1)
    assert maps.layout.margin.t > margin  # the larger title gets more room above the plot


def test_a_multi_line_title_gets_room_for_every_line():
    one, three = style.title_margin("t"), style.title_margin("t<br><sup>a</sup><br><sup>b</sup>")
    assert three == one + 2 * style.SUBTITLE_LINE
    fig = F.apply_style(go.Figure(), "t<br><sup>a</sup>")
    assert fig.layout.margin.t == style.title_margin("t<br><sup>a</sup>") and fig.layout.title.yanchor == "top"


def test_fixed_accuracy_axis_pins_accuracy_axes_only():
    curves = F.fixed_accuracy_axis(F.accuracy_curves(_frame(["magnitude"])))
    assert list(curves.layout.yaxis.range) == [0.0, 100.0]
    hist = F.fixed_accuracy_axis(F.weight_histogram(torch.randn(20, 10)))
    assert hist.layout.yaxis.range is None and hist.layout.xaxis.range is None
    assert style.is_accuracy_title("test accuracy (%)") and not style.is_accuracy_title("accuracy drop (points)")


FIXED_PAPER_LEGEND = re.compile(r"legend=dict\(orientation=\"h\",[^)]*y=-")


def test_no_figure_puts_a_legend_at_a_fixed_paper_position_under_the_plot():
    """Such a legend lands on the x-axis title of a short plot (the browser test measures the real boxes)."""
    files = [*(ROOT / "sparsity_viz" / "figures").glob("*.py"), *(ROOT / "views").glob("*.py")]
    offenders = [str(p.relative_to(ROOT)) for p in files if FIXED_PAPER_LEGEND.search(p.read_text())]
    assert not offenders, offenders
    hist = F.weight_histogram(torch.randn(20, 10), torch.randn(20, 10))
    assert hist.layout.legend.yref == "container" and hist.layout.legend.y == 0


def test_attribution_of_a_fully_pruned_model_says_why_instead_of_nan(digits_mlp):
    ds = load_dataset("digits")
    x, label = ds.x_test[:1], int(ds.y_test[0])
    pruned = prune(digits_mlp, "magnitude", 1.0).model  # no weight left: the output ignores the input
    comp = compare_attributions(digits_mlp, pruned, x, label, "saliency")
    assert comp.mean_similarity != comp.mean_similarity  # the library's nan: rank correlation undefined
    reason = F.attribution_blank_reason(comp.dense[0], comp.pruned[0])
    assert reason and "pruned" in reason and "zero at every input" in reason
    fig = F.attribution_maps(ds.denormalize(x)[0], comp.dense[0], comp.pruned[0], similarity=comp.mean_similarity)
    assert "nan" not in fig.layout.title.text.lower() and "undefined" in fig.layout.title.text
    notes = [a for a in fig.layout.annotations if "zero everywhere" in (a.text or "")]
    assert [a.xref for a in notes] == ["x3 domain"]  # on the pruned map, the one that is empty
    healthy = compare_attributions(digits_mlp, prune(digits_mlp, "magnitude", 0.5).model, x, label, "saliency")
    assert F.attribution_blank_reason(healthy.dense[0], healthy.pruned[0]) is None
    title = F.attribution_maps(ds.denormalize(x)[0], healthy.dense[0], healthy.pruned[0],
                               similarity=healthy.mean_similarity).layout.title.text
    assert f"{healthy.mean_similarity:.2f}" in title


def test_blank_reason_for_constant_and_non_finite_maps():
    ok = np.arange(6.0)
    assert "same at every input" in F.attribution_blank_reason(ok, np.full(6, 2.0))
    assert "non-finite" in F.attribution_blank_reason(np.array([1.0, np.nan, 2.0]), ok)
    fig = F.attribution_maps(ok, ok, np.zeros(6), similarity=float("nan"))  # flat features: bars, the note named
    title = fig.layout.title.text  # under the title: on the plot's top edge it ran into the title (a browser walk)
    assert "nan" not in title and "zero or constant: see the note" in title


def test_live_cost_record_covers_every_strategy_and_bundled_model():
    data = live_cost.load()
    assert set(data["seconds"]) >= set(MODELS)
    for model, per in data["seconds"].items():
        assert set(per) == set(strategy_names()), model
        assert all(v > 0 for v in per.values())
        assert live_cost.slow_strategies(model) == [n for n, v in per.items() if v > live_cost.LIVE_SLOW_S]
        for name, v in per.items():
            assert live_cost.is_slow(name, model) == (v > live_cost.LIVE_SLOW_S)
    assert live_cost.seconds("magnitude", "no_such_model") is None and not live_cost.is_slow("magnitude", "x")


def test_live_cost_table_in_the_docs_is_the_record():
    text = (ROOT / "docs" / "app.md").read_text()
    block = text.split("<!-- live-prune:begin -->\n")[1].split("\n<!-- live-prune:end -->")[0]
    assert block == live_cost.markdown_table(live_cost.load())


def test_projector_keeps_line_widths_that_encode_data_apart_and_grows_trace_text():
    """Found by an audit: a 4 px floor drew the graph's 1.6, 2.6 and 3.6 px |w| classes as one width, and bar
    labels and heatmap cells (text sized per trace) stayed small."""
    fig = go.Figure([go.Scatter(x=[0, 1], y=[i, i], line=dict(width=w)) for i, w in enumerate((1.59, 2.57, 3.56))])
    fig.add_bar(x=["a"], y=[1], text=["0.50x"], textfont=dict(size=13))
    fig.add_heatmap(z=[[1, 2]], texttemplate="%{z}", textfont=dict(size=16))
    F.projector(F.apply_style(fig, "t"))
    widths = [t.line.width for t in fig.data[:3]]
    assert widths[0] == style.PROJECTOR_MIN_LINE_WIDTH and widths == sorted(widths)
    assert [round(b - a, 6) for a, b in zip(widths, widths[1:])] == [0.98, 0.99]  # the gaps between classes kept
    assert fig.data[3].textfont.size == pytest.approx(13 * style.PROJECTOR_SCALE, abs=0.1)
    assert fig.data[4].textfont.size == pytest.approx(16 * style.PROJECTOR_SCALE, abs=0.1)
