"""A class on one server: work that is the same for every student is done once, shared read-only, never kept alive
by a session that moved on."""

from __future__ import annotations

import gc
import json
import weakref

import numpy as np
from apptools import chart_specs, check, open_app

import app_state
from app_state import cache, evaluation, keys, units
from app_state.reports import model_report
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.connectivity import effective_sparsity
from sparsity_viz.reports import sparsity_report
from sparsity_viz.data import load_dataset
from sparsity_viz.pruning import prune
from sparsity_viz.receptive_fields import receptive_fields
from sparsity_viz.session import new_workbench
from sparsity_viz.training import evaluate_dataset


def _student(level: int):
    at = open_app("lenet300", "2_prune")
    at.slider(key="prune_sparsity").set_value(level).run()
    check(at)
    return at


def test_two_students_at_the_same_level_evaluate_once(monkeypatch):
    calls = []

    def counting(model, ds, **kw):
        calls.append(id(model))
        return evaluate_dataset(model, ds, **kw)

    monkeypatch.setattr(evaluation, "evaluate_dataset", counting)
    first = _student(90)
    n = len(calls)
    assert n >= 2  # the dense model and the pruned one
    second = _student(90)
    assert len(calls) == n  # nothing evaluated again: same weights, same dataset
    a, b = first.session_state[keys.BENCH], second.session_state[keys.BENCH]
    assert a.current is not b.current  # each student has an own copy ...
    assert cache.content_key(a.current) == cache.content_key(b.current)  # ... of the same weights
    assert first.metric[0].value == second.metric[0].value
    ds = load_dataset("mnist5k")
    expected = evaluate_dataset(prune(load_sample("lenet300")[0], "magnitude", 0.9).model, ds, device="cpu").accuracy
    assert first.metric[0].value == f"{100 * expected:.1f} %"
    reports = cache.shared_cache(cache.REPORTS)
    assert len(reports) == 2  # the dense model and the 90 % one: computed by the first student only
    pruned = prune(load_sample("lenet300")[0], "magnitude", 0.9)
    table = first.dataframe[0].value
    expected_table = sparsity_report(pruned.model, pruned.masks)
    assert table["nonzeros"].tolist() == expected_table["nonzeros"].tolist()
    assert second.dataframe[0].value["nonzeros"].tolist() == expected_table["nonzeros"].tolist()
    second.slider(key="prune_sparsity").set_value(91).run()
    assert len(calls) == n + 1  # a new level is new work
    assert len(reports) == 3


def test_shared_reports_are_copies():
    model, _ = load_sample("digits_mlp")
    pruned = prune(model, "magnitude", 0.5)
    one = model_report(pruned.model, pruned.masks)
    one.table.loc[0, "nonzeros"] = -1
    two = model_report(pruned.model, pruned.masks)
    assert two.table["nonzeros"].tolist() == sparsity_report(pruned.model, pruned.masks)["nonzeros"].tolist()
    assert two.effective == effective_sparsity(pruned.masks)
    assert model_report(pruned.model, {k: ~v for k, v in pruned.masks.items()}).table is not two.table
    assert len(cache.shared_cache(cache.REPORTS)) == 2  # other masks, other entry


def test_shared_receptive_fields_are_handed_out_as_copies():
    model, card = load_sample("lenet300")
    wb = new_workbench("lenet300", "mnist5k", model, card=card)
    one = units.shared_fields(wb.dense, None, "fc1", (1, 28, 28))
    one.images[:] = 0.0  # a careless caller scribbles on its copy
    one.dead[:] = True
    two = units.shared_fields(wb.dense, None, "fc1", (1, 28, 28))
    reference = receptive_fields(model, input_shape=(1, 28, 28))
    np.testing.assert_array_equal(two.images, reference.images)
    assert not two.dead.any() and two is not one
    assert len(cache.shared_cache(cache.UNITS)) == 1


def test_a_session_does_not_keep_old_models_alive():
    at = _student(90)
    old = weakref.ref(at.session_state[keys.BENCH].current)
    assert cache.recall(at.session_state[keys.ACC_CACHE], (id(old()), "mnist5k"), old())[0]
    at.slider(key="prune_sparsity").set_value(50).run()
    at.slider(key="prune_sparsity").set_value(51).run()  # Streamlit keeps the previous run's state until the next
    check(at)
    gc.collect()
    assert old() is None  # neither the accuracy nor the compiled-model cache held the replaced model
    at.slider(key="prune_sparsity").set_value(52).run()  # the next lookup drops the dead entries
    acc = at.session_state[keys.ACC_CACHE]
    assert all(entry[0] is not None for entry in acc.values())


def test_weak_entries_leave_with_their_object():
    store = cache.BoundedCache(max_entries=4, max_bytes=1 << 20)
    model = load_sample("digits_mlp")[0]
    cache.remember(store, id(model), model, 0.5)
    assert cache.recall(store, id(model), model) == (True, 0.5)
    holder, value = store[id(model)]
    assert holder is model and value == 0.5  # unpacks as (object, value) while the object lives
    other = load_sample("digits_mlp")[0]
    assert cache.recall(store, id(model), other) == (False, None)  # another object under a recycled id: a miss
    del model, holder
    gc.collect()
    cache.recall(store, 0, other)
    assert len(store) == 0
    assert app_state.eval_model  # still exported for the pages that evaluate


def test_one_trace_per_architecture(monkeypatch):
    """torch.fx patches nn.Module for every thread while it traces: the live path must not trace each new model."""
    from sparsity_viz import layers
    from sparsity_viz.models import MLP

    traces = []
    real = layers._chain
    monkeypatch.setattr(layers, "_chain", lambda model: traces.append(type(model)) or real(model))
    monkeypatch.setattr(layers, "_TRACED", {})
    dense = load_sample("lenet300")[0]
    first, second = prune(dense, "magnitude", 0.5).model, prune(dense, "random", 0.9).model
    assert [c.name for c in layers.chain_layers(first)] == ["fc1", "fc2", "fc3"]
    assert [c.module for c in layers.chain_layers(second)] == [second.fc1, second.fc2, second.fc3]  # its own modules
    assert len(traces) == 1  # the pruned copies share one trace
    layers.chain_layers(MLP(784, (300, 50), 10))  # another shape: another architecture
    assert len(traces) == 2


def test_students_at_the_same_weights_share_one_heatmap_figure_never_changed():
    from sparsity_viz import figures

    first = _student(90)
    figs = cache.shared_cache(cache.FIGURES)
    n = len(figs)
    assert n >= 1
    (stored,) = [v for k, v in figs.items() if k[2][0] == "layer_heatmap" and k[0] == cache.content_key(
        first.session_state[keys.BENCH].current)]
    before = stored.to_json()
    second = _student(90)
    assert len(figs) == n  # drawn once for both
    assert chart_specs(first)[0] == chart_specs(second)[0]
    pruned = prune(load_sample("lenet300")[0], "magnitude", 0.9)
    reference = figures.layer_heatmap(pruned.model, pruned.masks, "fc1", max_cells=figures.PREVIEW_CELLS, height=400)
    assert json.loads(chart_specs(second)[0])["data"] == json.loads(reference.to_json())["data"]
    second.toggle(key=keys.PROJECTOR).set_value(True).run()  # projector mode draws a copy
    check(second)
    assert json.loads(chart_specs(second)[0])["layout"]["font"]["size"] > json.loads(before)["layout"]["font"]["size"]
    assert stored.to_json() == before  # the shared figure itself never changed
    second.slider(key="prune_sparsity").set_value(91).run()
    assert len(figs) == n + 1  # other weights: another figure


def test_the_server_skips_the_full_collection_after_every_run():
    """Streamlit's default gc.collect(2) after each run held the GIL ~400 ms per run under a class of 30
    (docs/classroom.md): the app's config turns it off."""
    import tomllib
    from pathlib import Path

    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert config["runner"]["postScriptGC"] is False


def test_the_server_sends_no_forward_message_references():
    """The ForwardMsg cache is off (.streamlit/config.toml): a reference the frontend cannot resolve after fast
    reruns is fatal to the page. The option must still be one Streamlit knows, and above any message."""
    import tomllib
    from pathlib import Path

    from streamlit import config as st_config

    config = tomllib.loads((Path(__file__).resolve().parents[2] / ".streamlit" / "config.toml").read_text())
    assert "global.minCachedMessageSize" in st_config._config_options_template
    assert config["global"]["minCachedMessageSize"] >= 1e12
