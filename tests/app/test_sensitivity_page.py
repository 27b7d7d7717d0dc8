"""The Layer sensitivity page under AppTest: real widget changes; the figure and targets equal the library's."""

from __future__ import annotations

import pytest
from apptools import MODELS, charts, check, open_app
from test_quantize_page import _array

from app_state import keys
from sparsity_viz.data import load_dataset
from sparsity_viz.pruning.sensitivity_guided import suggest_targets
from sparsity_viz.run_config import run_id
from sparsity_viz.sensitivity import scan_summary, sensitivity_scan

PAGE = "16_sensitivity"
MODEL = "digits_mlp"


def _curves(at) -> dict:
    found = [f for f in charts(at) if "one layer pruned" in (f["layout"].get("title") or {}).get("text", "")]
    assert len(found) == 1
    return found[0]


def _targets(at):
    return at.dataframe[-1].value  # the per-layer targets table is the page's last table


@pytest.fixture
def at():
    return open_app(MODEL, PAGE)


def test_before_a_scan_an_info_line_and_no_figure(at):
    assert at.title[0].value == "Layer sensitivity"
    assert any("Press **Scan**" in i.value for i in at.info)
    assert charts(at) == []
    at.multiselect(key="sens_levels").set_value([]).run()
    check(at)
    assert any("at least one level" in i.value for i in at.info) and charts(at) == []


def test_scan_draws_the_library_scan_and_targets_follow_the_slider(at):
    at.selectbox(key="sens_strategy").set_value("random").run()
    at.multiselect(key="sens_levels").set_value([50, 90]).run()
    at.number_input(key="sens_seeds").set_value(2).run()
    at.button(key="sens_scan_run").click().run()
    check(at)
    wb = at.session_state[keys.BENCH]
    expected = sensitivity_scan(wb.dense, load_dataset(wb.dataset), (0.5, 0.9), strategy="random", seeds=(0, 1))
    summary = scan_summary(expected)
    fig = _curves(at)
    for layer in ("fc1", "fc2"):
        mean = next(t for t in fig["data"] if t.get("meta") == {"kind": "mean", "layer": layer})
        rows = summary[summary["layer"] == layer]
        assert list(_array(mean["x"])) == pytest.approx(list(100 * rows["level"]))
        assert list(_array(mean["y"])) == pytest.approx(list(100 * rows["mean"]))
        assert any(t.get("meta") == {"kind": "band_upper", "layer": layer} for t in fig["data"])
    assert any("tolerates" in m.value or "already at" in m.value for m in at.markdown)
    rid = run_id(expected.attrs["config"])  # the scan's CSV is named by its run id (configuration header inside)
    assert {keys.csv_download(f"sensitivity_{MODEL}_random_{rid}"),
            keys.csv_download(f"sensitivity_targets_{MODEL}")} <= {b.key for b in at.get("download_button")}
    assert any(f"Run id `{rid}`" in c.value for c in at.caption)
    assert not [b for b in at.button if b.key == "sens_scan_run"]  # kept: no Scan button any more

    total = 2048 + 320
    seen = []
    for target in (90, 60):
        at.slider(key="sens_target").set_value(target).run()
        check(at)
        table = _targets(at)
        assert int(table["zeros"].sum()) == round(target / 100 * total)
        assert table["zeros"].tolist() == suggest_targets(expected, target / 100)["zeros"].tolist()
        seen.append(table["zeros"].tolist())
    assert seen[0] != seen[1]
    zeros = round(0.6 * total)
    assert any(f"{zeros:,} of {total:,} weights pruned = {100 * zeros / total:.2f} % overall" in c.value
               for c in at.caption)


def test_stop_keeps_a_partial_scan_and_offers_to_scan_again(at):
    at.multiselect(key="sens_levels").set_value([50, 90]).run()
    at.session_state[keys.STOP] = True  # what the Stop button's click does to the running scan
    at.button(key="sens_scan_run").click().run()
    check(at)
    assert any("Stopped" in w.value for w in at.warning)
    assert [b for b in at.button if b.key == "sens_scan_run"]
    assert not at.session_state[keys.STOP]


def test_the_scan_uses_the_dense_model_and_leaves_a_pruned_workbench_alone():
    at = open_app(MODEL, "2_prune")
    at.slider(key="prune_sparsity").set_value(80).run()
    before = at.session_state[keys.BENCH]
    at.switch_page(f"views/{PAGE}.py").run()
    at.multiselect(key="sens_levels").set_value([90]).run()
    at.button(key="sens_scan_run").click().run()
    check(at)
    wb = at.session_state[keys.BENCH]
    assert wb.current is before.current and wb.sparsity == pytest.approx(0.8, abs=0.01)
    dense = sensitivity_scan(wb.dense, load_dataset(wb.dataset), (0.9,)).attrs["dense_accuracy"]
    assert f"(Dense model: {100 * dense:.1f} %.)" in " ".join(m.value for m in at.markdown)


@pytest.mark.parametrize("model", [m for m in MODELS if m != MODEL][:1])
def test_another_model_before_a_scan(model):
    at = open_app(model, PAGE)
    assert any("Press **Scan**" in i.value for i in at.info)
