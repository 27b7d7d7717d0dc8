"""The playground library: specs and their URL form, training through ``training.train`` in epochs that can be
grouped any way (so a link replays a run exactly), sparse starts from the registry, AGP and SET / RigL as hooks,
hand cuts, unit maps, and the figures' data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from sparsity_viz.data import _split, data_batch, load_dataset
from sparsity_viz.figures.playground import handle_positions, playground_network, tile_unit_maps, unit_output_maps
from sparsity_viz.masks import full_masks
from sparsity_viz.playground import (
    Cut,
    PlaygroundSpec,
    dead_hidden_units,
    describe_changes,
    from_params,
    playground_dataset,
    replay,
    start,
    to_params,
    toggle,
    train_epochs,
    unit_maps,
)
from sparsity_viz.playground.run import epoch_config, steps_per_epoch
from sparsity_viz.pruning import get_strategy
from sparsity_viz.pruning.gradual import GradualStrategy, agp_sparsity
from sparsity_viz.training import train

SMALL = PlaygroundSpec(dataset="moons", hidden=(5, 4), epochs=8, batch_size=32, seed=3)


def _same(a, b):
    for (na, pa), (nb, pb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert na == nb
        assert torch.equal(pa, pb), na
    assert all(torch.equal(a.masks[n], b.masks[n]) for n in a.masks)


# --- spec and URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [dict(dataset="mnist5k"), dict(noise=0.9), dict(test_fraction=0.95), dict(hidden=()),
                                 dict(hidden=(9,)), dict(hidden=(2,) * 5), dict(activation="gelu"), dict(lr=0.0),
                                 dict(lr=float("nan")), dict(epochs=0), dict(init="magnitude"), dict(dynamics="imp"),
                                 dict(sparsity=1.0), dict(l1=-1.0), dict(dropout=0.95), dict(seed=-1)])
def test_bad_settings_raise_one_clear_error(bad):
    with pytest.raises(ValueError, match="Invalid playground settings"):
        PlaygroundSpec(**bad)


def test_url_round_trip_and_bad_values_fall_back():
    spec = PlaygroundSpec(dataset="spiral", noise=0.25, test_fraction=0.3, hidden=(8, 3, 2), activation="relu",
                          lr=0.01, epochs=40, init="snip", sparsity=0.7, dynamics="rigl", target=0.6, l1=1e-3,
                          dropout=0.1, seed=7)
    cuts = [Cut(0, "edge", 1, 2, 1), Cut(5, "unit", 2, 0), Cut(5, "edge", 4, 1, 1)]
    params = to_params(spec, 12, cuts)
    assert all(k.startswith("pg_") for k in params)
    assert from_params(params) == (spec, 12, cuts)
    # invalid values are ignored one by one; a cut that does not fit the network or lies after pg_at is dropped
    bad = {**params, "pg_noise": "abc", "pg_layers": "9-9", "pg_lr": "inf", "pg_at": "99",
           "pg_cuts": "0e1x2x1,junk,3e1x99x0,50u2x0,5u3x5"}
    got, at, got_cuts = from_params(bad)
    assert got == replace(spec, noise=PlaygroundSpec().noise, hidden=PlaygroundSpec().hidden, lr=PlaygroundSpec().lr)
    assert at == 0  # past the budget: ignored, as every out-of-range value (an audit: it was clamped to the budget)
    assert got_cuts == [Cut(0, "edge", 1, 2, 1)]  # 3e1x99x0: no unit 99; 50u2x0: after the budget; 5u3x5: no layer 3
    assert from_params({}) == (PlaygroundSpec(), 0, [])


def test_a_link_keeps_what_the_page_keeps():
    """Found by an audit: noise 0.123 was replayed, then the page (two-decimal sliders) rounded it and started anew;
    a learning rate of 0.0123456789 came back as 0.0123457 (':g'), a different run."""
    spec, at, _ = from_params({"pg_noise": "0.123", "pg_drop": "0.071", "pg_at": "3"})
    assert spec.noise == 0.12 and spec.dropout == 0.07 and at == 3
    precise = replace(PlaygroundSpec(), lr=0.0123456789, l1=1.23456789e-4)
    assert from_params(to_params(precise))[0] == precise


def test_dataset_has_the_noise_and_split_asked_for():
    ds = playground_dataset(SMALL)
    base = load_dataset("moons", seed=3, noise=SMALL.noise, n=500)
    assert len(ds.y_train) + len(ds.y_test) == 500
    assert len(ds.y_test) == sum(round(int((torch.cat([base.y_train, base.y_test]) == c).sum()) * 0.5)
                                 for c in (0, 1))
    x = torch.cat([base.x_train, base.x_test])
    y = torch.cat([base.y_train, base.y_test])
    tr, te = _split(500, 0.5, y.numpy(), 3)
    assert torch.equal(ds.x_test, x[te]) and torch.equal(ds.y_train, y[tr])
    noisy = playground_dataset(replace(SMALL, noise=0.4))
    assert not torch.equal(noisy.x_train, ds.x_train)


# --- starting masks and training -----------------------------------------------------------------


@pytest.mark.parametrize("init", ["erdos_renyi", "snip", "synflow"])
def test_sparse_start_is_the_registry_strategy(init):
    spec = replace(SMALL, init=init, sparsity=0.6)
    run = start(spec)
    fresh = start(replace(SMALL, init="dense")).model  # the same seeded weights before masking
    strategy = get_strategy(init, seed=spec.seed)
    batch = data_batch(playground_dataset(spec), seed=spec.seed) if strategy.needs_data else None
    expected = strategy.compute_masks(fresh, 0.6, batch=batch)
    assert all(torch.equal(run.masks[n], expected[n]) for n in expected)
    total = sum(m.numel() for m in run.masks.values())
    assert sum(int((~m).sum()) for m in run.masks.values()) == round(0.6 * total)
    for n, m in run.masks.items():
        assert (run.model.get_parameter(n)[~m] == 0).all()


def test_one_epoch_is_one_call_of_the_training_loop():
    run = start(SMALL)
    ours = train_epochs(run, 1)
    theirs = train(run.model, playground_dataset(SMALL), epoch_config(SMALL, 0), masks=full_masks(run.model))
    for n, p in theirs.model.state_dict().items():
        assert_close(ours.model.state_dict()[n], p.cpu(), rtol=0, atol=0)
    assert ours.history[0].test_loss == pytest.approx(theirs.history[0].test_loss)
    assert run.epoch == 0 and ours.epoch == 1  # the old run is untouched


@pytest.mark.parametrize("dynamics", ["none", "gradual", "set", "rigl"])
def test_grouping_of_epochs_does_not_change_the_result(dynamics):
    spec = replace(SMALL, dynamics=dynamics, l1=1e-3 if dynamics == "none" else 0.0)
    run = start(spec)
    at_once = train_epochs(run, 6)
    piecewise = train_epochs(train_epochs(train_epochs(run, 1), 3), 2)
    _same(at_once, piecewise)
    assert [h.test_loss for h in at_once.history] == [h.test_loss for h in piecewise.history]
    assert [h.epoch for h in at_once.history] == list(range(1, 7))


def test_gradual_pruning_reaches_its_target_and_never_revives():
    spec = replace(SMALL, dynamics="gradual", target=0.75)
    run, previous = start(spec), None
    for _ in range(spec.epochs):
        run = train_epochs(run, 1)
        if previous is not None:
            assert not any((run.masks[n] & ~previous[n]).any() for n in run.masks)  # nothing comes back
        previous = run.masks
    for n, m in run.masks.items():  # layer scope: each layer exactly at the target (AGP ends at 70 % of the budget)
        assert int((~m).sum()) == round(0.75 * m.numel()), n
    assert run.epoch == spec.epochs
    assert train_epochs(run, 5).epoch == spec.epochs  # never past the budget


def test_gradual_events_are_laid_out_over_the_whole_budget():
    """Epoch by epoch, every layer holds exactly the zeros of the cubic schedule's last event so far (global steps)."""
    spec = replace(SMALL, dynamics="gradual", target=0.75)
    per_epoch = steps_per_epoch(spec)
    when = GradualStrategy(seed=spec.seed).event_steps(per_epoch * spec.epochs)
    run = start(spec)
    for k in range(1, spec.epochs + 1):
        run = train_epochs(run, 1)
        done = [s for s in when if s <= k * per_epoch]
        level = 0.0 if not done else 0.75 if done[-1] == when[-1] else agp_sparsity(done[-1], 0.75, 0.0, when[0],
                                                                                      when[-1])
        for n, m in run.masks.items():
            assert int((~m).sum()) == round(level * m.numel()), (k, n)
    assert len(when) == GradualStrategy.events and when[-1] < per_epoch * spec.epochs  # the last event before the end


@pytest.mark.parametrize("dynamics", ["set", "rigl"])
def test_dynamic_sparse_training_keeps_the_budget_and_regrows(dynamics):
    spec = replace(SMALL, dynamics=dynamics, sparsity=0.5, epochs=8, batch_size=8)  # 32 steps an epoch: updates
    run = start(spec)  # every 50 steps until 75 % of the 256
    budget = {n: int(m.sum()) for n, m in run.masks.items()}
    er = get_strategy("erdos_renyi", seed=spec.seed).compute_masks(start(replace(SMALL)).model, 0.5)
    assert all(torch.equal(run.masks[n], er[n]) for n in er)  # a dense start begins from Erdos-Renyi
    appeared = 0
    for _ in range(spec.epochs):
        before = run.masks
        run = train_epochs(run, 1)
        assert {n: int(m.sum()) for n, m in run.masks.items()} == budget
        appeared += sum(int((run.masks[n] & ~before[n]).sum()) for n in before)
    assert appeared > 0


def test_l1_makes_exact_zeros_that_vanish_but_keeps_the_masks():
    spec = replace(SMALL, l1=0.1, epochs=6, batch_size=8)
    run = train_epochs(start(spec), 6)
    assert all(m.all() for m in run.masks.values())  # no structural pruning
    zeros = sum(int((run.model.get_parameter(n) == 0).sum()) for n in run.masks)
    assert zeros > 0
    changes = describe_changes(run)
    assert changes["total"] - changes["alive"] == zeros


def test_dropout_reaches_the_training_loop():
    assert epoch_config(replace(SMALL, dropout=0.3), 0).dropout == 0.3
    a = train_epochs(start(SMALL), 2)
    b = train_epochs(start(replace(SMALL, dropout=0.3)), 2)
    assert not torch.equal(a.model.fc1.weight, b.model.fc1.weight)


# --- hand cuts and replay ---------------------------------------------------------------------------


def test_cutting_a_unit_equals_removing_it_from_the_network():
    run = train_epochs(start(SMALL), 2)
    cut = toggle(run, "unit", 1, 2)
    x = playground_dataset(SMALL).x_test
    m = run.model
    h = torch.tanh(x @ m.fc1.weight.T + m.fc1.bias)
    h[:, 2] = 0.0  # the unit removed by hand
    h = torch.tanh(h @ m.fc2.weight.T + m.fc2.bias)
    expected = h @ m.fc3.weight.T + m.fc3.bias
    with torch.no_grad():
        assert_close(cut.model(x), expected)
    assert dead_hidden_units(cut.model, cut.alive())[0] == [False, False, True, False, False]
    assert cut.cuts == [Cut(2, "unit", 1, 2)] and run.cuts == []
    back = toggle(cut, "unit", 1, 2)  # a second cut restores the connections, with the weights they had
    assert all(m.all() for m in back.masks.values())
    assert all(torch.equal(back.model.get_parameter(n), run.model.get_parameter(n)) for n in run.masks)
    assert describe_changes(back)["alive"] == describe_changes(run)["alive"]  # drawn and counted alive again


def test_restoring_a_unit_gives_back_only_the_connections_it_had():
    """Found by an audit: restoring set the unit's whole row and column, so a sparse SET run grew from 13 to 18
    connections in fc2 for good."""
    spec = PlaygroundSpec(dynamics="set", sparsity=0.5, epochs=20, seed=0)
    run = start(spec)
    back = toggle(toggle(run, "unit", 1, 0), "unit", 1, 0)
    assert all(torch.equal(back.masks[n], run.masks[n]) for n in run.masks) and back.held == {}
    later = train_epochs(back, 3)  # the budget SET holds stays the sparse start's
    assert {n: int(m.sum()) for n, m in later.masks.items()} == {n: int(m.sum()) for n, m in run.masks.items()}
    assert replay(spec, 0, back.cuts).masks.keys() == back.masks.keys()
    assert all(torch.equal(replay(spec, 0, back.cuts).masks[n], back.masks[n]) for n in back.masks)


def test_cutting_an_edge_zeros_one_weight_and_toggles():
    run = start(SMALL)
    cut = toggle(run, "edge", 2, 3, 1)
    assert int((~cut.masks["fc2.weight"]).sum()) == 1 and not cut.masks["fc2.weight"][3, 1]
    assert cut.model.fc2.weight[3, 1] == 0 and run.model.fc2.weight[3, 1] != 0
    back = toggle(cut, "edge", 2, 3, 1)
    assert back.masks["fc2.weight"].all()
    # restored with its weight, so drawn and counted alive at once: at 0 it stayed drawn as cut, and the
    # "connections alive" count did not move, until the next epoch trained it (an audit)
    assert back.model.fc2.weight[3, 1] == run.model.fc2.weight[3, 1]
    assert describe_changes(back)["alive"] == describe_changes(run)["alive"] == describe_changes(cut)["alive"] + 1
    with pytest.raises(ValueError, match="No connection"):
        toggle(run, "edge", 2, 4, 0)
    with pytest.raises(ValueError, match="No hidden unit"):
        toggle(run, "unit", 3, 0)


def test_replay_rebuilds_the_live_run_exactly():
    spec = replace(SMALL, dynamics="set", sparsity=0.4)
    live = train_epochs(start(spec), 2)
    live = toggle(live, "unit", 2, 1)
    live = train_epochs(live, 3)
    live = toggle(toggle(live, "edge", 1, 0, 1), "edge", 3, 1, 0)
    live = train_epochs(live, 1)
    _, at, cuts = from_params(to_params(spec, live.epoch, live.cuts))
    again = replay(spec, at, cuts)
    _same(live, again)
    assert [h.test_loss for h in again.history] == [h.test_loss for h in live.history]


# --- unit maps and figures --------------------------------------------------------------------------


def test_unit_maps_are_the_hidden_activations_on_the_grid():
    run = train_epochs(start(replace(SMALL, activation="relu")), 1)
    maps = unit_maps(run.model, (-1.0, 2.0), (-1.5, 1.0), resolution=7)
    gx, gy = np.meshgrid(maps.xs, maps.ys)
    x = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1))
    with torch.no_grad():
        h1 = torch.relu(run.model.fc1(x))
        h2 = torch.relu(run.model.fc2(h1))
    assert_close(torch.from_numpy(maps.maps[0]), h1.T.reshape(5, 7, 7))
    assert_close(torch.from_numpy(maps.maps[1]), h2.T.reshape(4, 7, 7))
    assert maps.xs[0] == -1.0 and maps.ys[-1] == 1.0


def test_network_figure_draws_alive_vanished_and_regrown_connections():
    spec = replace(SMALL, dynamics="set", sparsity=0.5, batch_size=8)
    run = train_epochs(start(spec), 3)
    fig = playground_network(run.model, run.masks, before=run.before)
    alive, before = run.alive(), run.before
    count = lambda kind: sum(sum(v is None for v in t.x) for t in fig.data if t.meta["kind"] == kind)  # noqa: E731
    assert count("edges") == sum(int(m.sum()) for m in alive.values())
    assert count("vanished") == sum(int((before[n] & ~alive[n]).sum()) for n in alive) > 0
    assert count("regrown") == sum(int((alive[n] & ~before[n]).sum()) for n in alive) > 0
    handles = next(t for t in fig.data if t.meta["kind"] == "edge_handles")
    assert len(handles.customdata) == sum(m.numel() for m in run.masks.values())
    for (kind, layer, a, b), symbol in zip(handles.customdata, handles.marker.symbol):
        assert kind == "edge" and symbol == ("circle" if alive[f"fc{layer}.weight"][a, b] else "circle-open")
    units = next(t for t in fig.data if t.meta["kind"] == "units")
    assert [list(c) for c in units.customdata] == [["unit", l, u, 0] for l, n in ((1, 5), (2, 4)) for u in range(n)]
    widths = {t.meta["width_class"]: t.line.width for t in fig.data if t.meta["kind"] == "edges"}
    assert sorted(widths.values()) == [widths[k] for k in sorted(widths)]  # wider class = larger |w|


def test_handles_never_overlap_on_the_largest_network():
    pos = handle_positions((2, 8, 8, 8, 8, 2))
    xy = {(round(x, 9), round(y, 9)) for x, y in pos.values()}
    assert len(xy) == len(pos) == 2 * 8 + 3 * 64 + 16


def test_unit_map_figure_tiles_every_unit_and_greys_dead_ones():
    run = toggle(train_epochs(start(SMALL), 1), "unit", 2, 3)
    maps = unit_maps(run.model, (-1.0, 1.0), (-1.0, 1.0), resolution=6)
    dead = dead_hidden_units(run.model, run.alive())
    z = tile_unit_maps(maps, dead, gap=2)
    assert z.shape == (5 * 8, 2 * 8)
    assert_close(torch.from_numpy(z[2:8, 0:6].copy()), torch.from_numpy(maps.maps[0][0][::-1].copy()))
    assert np.isnan(z[3 * 8 + 2:3 * 8 + 8, 8:14]).all()  # h2.4 was cut: grey, no values
    fig = unit_output_maps(maps, dead)
    assert [s.name for s in fig.layout.shapes] == ["dead h2.4"]
    names = [f"h1.{u}" for u in range(1, 6)] + [f"h2.{u}" for u in range(1, 5)]
    assert [a.text for a in fig.layout.annotations] == names


@pytest.mark.parametrize("field,value", [("hidden", (True,)), ("hidden", [4, 4]), ("epochs", True), ("lr", True),
                                         ("seed", 1.0), ("noise", False)])
def test_a_spec_refuses_bools_and_lists(field, value):
    """Found by an audit: bools passed as numbers, and a list of widths made the frozen cache key unhashable."""
    with pytest.raises(ValueError, match="Invalid playground settings"):
        replace(PlaygroundSpec(), **{field: value})


def test_describe_says_sparse_at_init_only_when_something_is_pruned():
    """A link with SET at 0 % read "sparse at init (erdos_renyi, 0 %)" (an audit)."""
    assert "sparse at init" not in PlaygroundSpec(dynamics="set", sparsity=0.0).describe()
    assert "sparse at init (erdos_renyi, 50 %)" in PlaygroundSpec(dynamics="set", sparsity=0.5).describe()
