"""The Playground page in AppTest: a link rebuilds its network, Train runs live through the library, a hand cut
(by name; a click is decoded by ``clicked`` and driven in a real browser in tests/e2e) lands in the URL, and any
setting change starts afresh. The workbench (the sidebar's model) is never touched."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from apptools import charts, check, open_app

from app_state import keys
from app_state.playground import clicked, cut_choices
from sparsity_viz.playground import Cut, PlaygroundSpec, replay, to_params

SPEC = PlaygroundSpec(dataset="xor", noise=0.12, test_fraction=0.35, hidden=(4, 3), lr=0.02, epochs=4, batch_size=32,
                      dynamics="set", sparsity=0.4, l1=0.004, seed=2)  # values off the widgets' grids: kept


def _run(at):
    return at.session_state[keys.PLAYGROUND]


def _kinds(at):
    return [[t.get("meta", {}).get("kind") for t in c["data"]] for c in charts(at)]


def _text(at) -> str:
    return " ".join(m.value for m in at.markdown)


def test_a_link_rebuilds_the_network_then_train_and_cut_by_name():
    cuts = [Cut(1, "unit", 1, 2)]
    at = open_app(page="18_playground", query=to_params(SPEC, 2, cuts))
    assert at.title[0].value == "Playground"
    expected = replay(SPEC, 2, cuts)
    run = _run(at)
    assert run.spec == SPEC and run.cuts == cuts and run.epoch == 2
    for n, p in expected.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[n], p), n
    assert any("Rebuilt from the link" in i.value for i in at.info)
    h = expected.history[-1]
    assert f"test loss **{h.test_loss:.3f}**" in _text(at) and "Epoch 2 / 4" in _text(at)
    kinds = _kinds(at)
    assert any("edge_handles" in k and "units" in k for k in kinds)  # the clickable network
    assert any("unit_maps" in k for k in kinds) and any("boundary" in k for k in kinds)
    dense_origin = at.session_state[keys.BENCH].origin

    at.button(key="pg_train_all").click().run()  # live, to the end of the budget
    check(at)
    run = _run(at)
    assert run.epoch == 4 and at.query_params["pg_at"] == "4"
    trained = replay(SPEC, 4, cuts)
    assert [h.test_loss for h in run.history] == [h.test_loss for h in trained.history]
    assert any("Trained 2 epochs" in s.value for s in at.success)
    loss = next(c for c in charts(at) if any(t.get("name") == "test loss" for t in c["data"]))
    assert [t["name"] for t in loss["data"]][:2] == ["train loss", "test loss"]
    assert at.button(key="pg_train_all").disabled

    choices = cut_choices(_run(at))
    assert list(at.selectbox(key="pg_cut_pick").options) == list(choices)
    pick = next(o for o, (_, cut) in choices.items() if o.startswith("connection") and not cut)
    at.selectbox(key="pg_cut_pick").set_value(pick).run()
    assert at.button(key="pg_cut_go").label == "Cut"
    at.button(key="pg_cut_go").click().run()
    check(at)
    # the pick stays (its name did not change with its state), and the button now restores it: a name with
    # "(alive)" in it had sent the box back to its first option, a unit, which the next press cut (an audit)
    assert at.selectbox(key="pg_cut_pick").value == pick and at.button(key="pg_cut_go").label == "Restore"
    (kind, layer, a, b), _ = choices[pick]
    new = Cut(4, kind, layer, a, b)
    run = _run(at)
    assert run.cuts == [*cuts, new] and not run.masks[f"fc{layer}.weight"][a, b] and run.model.get_parameter(
        f"fc{layer}.weight")[a, b] == 0
    assert at.query_params["pg_cuts"] == f"1u1x2,{new.text()}"
    assert any(f"Cut {pick} at epoch 4" in s.value for s in at.success)
    network = next(c for c in charts(at) if any(t.get("meta", {}).get("kind") == "edge_handles" for t in c["data"]))
    handles = next(t for t in network["data"] if t["meta"]["kind"] == "edge_handles")
    index = [list(d) for d in handles["customdata"]].index(["edge", layer, a, b])
    assert handles["marker"]["symbol"][index] == "circle-open"  # drawn as pruned
    assert at.session_state[keys.BENCH].origin == dense_origin  # the sidebar's model is left alone


def test_defaults_bad_link_values_and_a_setting_change():
    at = open_app(page="18_playground", query={"pg_noise": "abc", "pg_layers": "99", "pg_init": "magnitude",
                                               "pg_epochs": "3", "pg_batch": "32"})
    run = _run(at)
    assert run.spec == PlaygroundSpec(epochs=3, batch_size=32)  # the bad values fell back to the defaults
    assert at.query_params["pg_noise"] == f"{PlaygroundSpec().noise:g}" and at.query_params["pg_at"] == "0"
    assert "pg_cuts" not in at.query_params
    at.session_state[keys.STOP] = True  # as if Stop was pressed: the live run ends before its first epoch
    at.button(key="pg_train_all").click().run()
    check(at)
    assert _run(at).epoch == 0 and any("Trained 0 epochs" in w.value and "(stopped)" in w.value for w in at.warning)
    assert not at.session_state[keys.STOP]  # the flag is cleared for the next run
    at.button(key="pg_step").click().run()
    check(at)
    assert _run(at).epoch == 1 and at.query_params["pg_at"] == "1"
    at.selectbox(key="pg_w_init").set_value("snip").run()  # a setting change: a fresh network, sparse at init
    check(at)
    run = _run(at)
    assert run.epoch == 0 and run.spec.init == "snip" and at.query_params["pg_init"] == "snip"
    assert at.query_params["pg_at"] == "0"
    total = sum(m.numel() for m in run.masks.values())
    assert sum(int((~m).sum()) for m in run.masks.values()) == round(run.spec.sparsity * total)
    at.button(key="pg_reset").click().run()
    check(at)
    assert _run(at).epoch == 0


@pytest.mark.parametrize("seed", ["10000", "50000"])
def test_a_link_seed_past_the_seed_box_falls_back_instead_of_crashing_the_page(seed):
    """pg_seed=50000 passed the spec (any seed below 2**31) and crashed the page's Seed box (max 9999): an audit."""
    at = open_app(page="18_playground", query={"pg_seed": seed})
    assert _run(at).spec.seed == PlaygroundSpec().seed
    assert at.number_input(key="pg_w_seed").value == PlaygroundSpec().seed


@pytest.mark.parametrize("points, expected", [
    ([{"customdata": ["edge", 2, 1, 0], "x": 1.4}], ("edge", 2, 1, 0)),
    ([{"x": 0.0}, {"customdata": ["unit", 1, 3, 0]}], ("unit", 1, 3, 0)),
    ([{"customdata": ["io", 0, 0, 0]}], None),
    ([{"customdata": ["edge", "a", 0, 0]}], None),
    ([], None),
])
def test_a_chart_selection_names_what_was_clicked(points, expected):
    assert clicked(SimpleNamespace(selection=SimpleNamespace(points=points))) == expected
    assert clicked(None) is None
