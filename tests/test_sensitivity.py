"""The per-layer sensitivity scan, the sensitivity-guided strategy and their figures.

Every scan row is checked against a model pruned by hand (the strategy's own masks, that one
layer only) and evaluated directly; the guided allocation against hand-computed counts.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from sparsity_viz import figures, prune
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import data_batch, load_dataset
from sparsity_viz.models import prunable_parameters
from sparsity_viz.pruning import get_strategy, zeros_to_prune
from sparsity_viz.pruning.magnitude import MagnitudeStrategy
from sparsity_viz.pruning.sensitivity_guided import allocate_zeros, cost_curves, suggest_targets
from sparsity_viz.sensitivity import (
    SCAN_COLUMNS, describe_scan, scan_arrays, scan_summary, sensitivity_scan, tolerated_level,
)
from sparsity_viz.training import evaluate_dataset

LEVELS = (0.0, 0.5, 0.9, 0.99)


@pytest.fixture(scope="module")
def digits():
    model, _ = load_sample("digits_mlp")
    return model, load_dataset("digits")


@pytest.fixture(scope="module")
def digits_scan(digits):
    model, ds = digits
    return sensitivity_scan(model, ds, LEVELS)


@pytest.fixture(scope="module")
def lenet300_scan():
    model, _ = load_sample("lenet300")
    ds = load_dataset("mnist5k")
    return model, ds, sensitivity_scan(model, ds, (0.5, 0.7, 0.9, 0.95, 0.99))


def _by_hand(model, ds, strategy: str, seed: int, layer: str, level: float):
    """``model`` with only ``layer`` pruned by ``strategy`` at ``level``: the mask ``prune`` gives for that layer."""
    batch = data_batch(ds, seed=seed) if get_strategy(strategy).needs_data else None
    masks = prune(model, strategy, level, scope="layer", seed=seed, batch=batch).masks
    net = copy.deepcopy(model)
    with torch.no_grad():
        net.get_parameter(f"{layer}.weight").mul_(masks[f"{layer}.weight"])
    return net


@pytest.mark.parametrize(("strategy", "seeds"), [("magnitude", (0,)), ("random", (0, 1)), ("snip", (3,))])
def test_every_row_is_that_layer_pruned_by_hand(strategy, seeds, digits):
    model, ds = digits
    before = {k: v.clone() for k, v in model.state_dict().items()}
    scan = sensitivity_scan(model, ds, LEVELS, strategy=strategy, seeds=seeds)
    assert list(scan.columns) == SCAN_COLUMNS
    assert len(scan) == 2 * len(LEVELS) * len(seeds) and not scan.attrs["cancelled"]
    dense = evaluate_dataset(model, ds, device="cpu").accuracy
    assert scan.attrs["dense_accuracy"] == dense
    assert scan.attrs["strategy"] == strategy and scan.attrs["seeds"] == list(seeds)
    params = prunable_parameters(model)
    assert all(int((p == 0).sum()) == 0 for p in params.values())  # precondition: no zeros in the dense model
    for row in scan.itertuples():
        net = _by_hand(model, ds, strategy, row.seed, row.layer, row.level)
        zeros = {n: int((p == 0).sum()) for n, p in prunable_parameters(net).items()}
        n = params[f"{row.layer}.weight"].numel()
        assert zeros == {k: (zeros_to_prune(row.level, n) if k == f"{row.layer}.weight" else 0) for k in zeros}
        assert row.zeros == zeros_to_prune(row.level, n) and row.weights == n
        acc = evaluate_dataset(net, ds, device="cpu").accuracy
        assert row.accuracy == acc, (row.layer, row.level, row.seed)
        assert row.accuracy_drop == pytest.approx(dense - acc)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the model is never mutated


def test_random_seeds_give_different_rows_magnitude_the_same(digits):
    model, ds = digits
    scan = sensitivity_scan(model, ds, (0.9,), strategy="random", seeds=(0, 1))
    a, b = (scan[scan["seed"] == s]["accuracy"].tolist() for s in (0, 1))
    assert a != b
    scan = sensitivity_scan(model, ds, (0.9,), seeds=(0, 1))
    a, b = (scan[scan["seed"] == s]["accuracy"].tolist() for s in (0, 1))
    assert a == b


def test_the_ranking_is_computed_once_per_seed_and_cut_at_every_level(digits, monkeypatch):
    model, ds = digits
    calls = {"ranking": 0, "scores": 0}
    ranking, scores = MagnitudeStrategy.ranking, MagnitudeStrategy.scores

    def spy_ranking(self, *a, **k):
        calls["ranking"] += 1
        return ranking(self, *a, **k)

    def spy_scores(self, *a, **k):
        calls["scores"] += 1
        return scores(self, *a, **k)

    monkeypatch.setattr(MagnitudeStrategy, "ranking", spy_ranking)
    monkeypatch.setattr(MagnitudeStrategy, "scores", spy_scores)
    scan = sensitivity_scan(model, ds, (0.3, 0.5, 0.7, 0.9, 0.99), seeds=(0, 1))
    assert len(scan) == 2 * 5 * 2
    assert calls == {"ranking": 2, "scores": 2}  # one sort per seed (every layer sorted once), five cuts each


def test_layers_chooses_rows_and_keeps_the_order_given(digits):
    model, ds = digits
    scan = sensitivity_scan(model, ds, (0.9, 0.5), layers=["fc2"])
    assert scan["layer"].tolist() == ["fc2", "fc2"] and scan["level"].tolist() == [0.5, 0.9]
    full = sensitivity_scan(model, ds, (0.5, 0.9))
    assert scan["accuracy"].tolist() == full[full["layer"] == "fc2"]["accuracy"].tolist()


def test_stop_returns_the_finished_rows(digits, digits_scan):
    model, ds = digits
    done = []
    scan = sensitivity_scan(model, ds, LEVELS, progress=lambda f, text: done.append((f, text)),
                            stop=lambda: len(done) >= 3)
    assert len(scan) == 3 and scan.attrs["cancelled"]
    pd.testing.assert_frame_equal(scan, digits_scan.iloc[:3], check_like=False)
    assert [f for f, _ in done] == pytest.approx([1 / 8, 2 / 8, 3 / 8]) and done[0][1] == "fc1 at 0 %"


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"levels": []}, "at least one sparsity level"),
    ({"levels": [0.5, 1.5]}, r"levels must lie in \[0, 1\], got 1.5"),
    ({"levels": [float("nan")]}, r"levels must lie in \[0, 1\]"),
    ({"levels": [0.5], "strategy": "gradual"}, "cannot prune one layer on its own"),
    ({"levels": [0.5], "strategy": "global_magnitude"}, "cannot prune one layer on its own"),
    ({"levels": [0.5], "strategy": "sensitivity_guided"}, "cannot prune one layer on its own"),
    ({"levels": [0.5], "strategy": "nope"}, "Unknown strategy 'nope'; choose one of magnitude"),
    ({"levels": [0.5], "layers": ["fc9"]}, "Unknown layer.*'fc9'.*fc1, fc2"),
    ({"levels": [0.5], "layers": []}, "Unknown layer"),
    ({"levels": [0.5], "seeds": [0.5]}, "Seeds must be whole numbers"),
    ({"levels": [0.5], "seeds": []}, "at least one seed"),
])
def test_bad_input_says_what_is_wrong(kwargs, needle, digits):
    model, ds = digits
    with pytest.raises(ValueError, match=needle):
        sensitivity_scan(model, ds, **kwargs)


# --- the sensitivity-guided allocation -----------------------------------------------------------


def test_allocation_by_hand():
    # A: free to 50 %, 1 point at 90 %; B: 5 points already at 50 %, 20 at 90 %
    curves = cost_curves(pd.DataFrame({"layer": ["A", "A", "B", "B"], "level": [0.5, 0.9, 0.5, 0.9],
                                       "accuracy_drop": [0.0, 0.01, 0.05, 0.2]}))
    assert curves["A"] == [(0.0, 0.0), (0.5, 0.0), (0.9, 0.01), (1.0, float("inf"))]
    numel, layer_of = {"A": 100, "B": 100}, {"A": "A", "B": "B"}
    # tolerance 0: A 50; 0.01: A 90; 0.05: B steps to 50 -> B gets the 10 that are left
    assert allocate_zeros(curves, numel, layer_of, 100) == ({"A": 90, "B": 10}, 0.05)
    assert allocate_zeros(curves, numel, layer_of, 50) == ({"A": 50, "B": 0}, 0.0)
    assert allocate_zeros(curves, numel, layer_of, 70) == ({"A": 70, "B": 0}, 0.01)
    # beyond every scanned level both step to 100 % together, in proportion to what is left
    assert allocate_zeros(curves, numel, layer_of, 190) == ({"A": 95, "B": 95}, float("inf"))
    assert allocate_zeros(curves, numel, layer_of, 200)[0] == {"A": 100, "B": 100}


def test_cost_is_a_running_maximum_of_the_mean_drop_over_seeds():
    scan = pd.DataFrame({"layer": ["A"] * 4, "level": [0.5, 0.5, 0.9, 0.9], "seed": [0, 1, 0, 1],
                         "accuracy_drop": [0.02, 0.04, -0.01, 0.01]})
    assert cost_curves(scan)["A"] == [(0.0, 0.0), (0.5, pytest.approx(0.03)), (0.9, pytest.approx(0.03)),
                                      (1.0, float("inf"))]


@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.8, 0.9, 0.97, 0.995, 1.0])
def test_suggested_targets_sum_to_the_target_exactly(sparsity, digits_scan):
    targets = suggest_targets(digits_scan, sparsity)
    total = int(targets["weights"].sum())
    assert int(targets["zeros"].sum()) == zeros_to_prune(sparsity, total) == targets.attrs["target_zeros"]
    assert (targets["zeros"] <= targets["weights"]).all() and (targets["zeros"] >= 0).all()


def test_guided_strategy_with_a_scan_prunes_the_suggested_counts(digits, digits_scan):
    model, _ = digits
    masks = prune(model, "sensitivity_guided", 0.8, scan=digits_scan).masks
    targets = suggest_targets(digits_scan, 0.8).set_index("layer")
    assert {n: int((~m).sum()) for n, m in masks.items()} == {f"{k}.weight": v for k, v in targets["zeros"].items()}
    # inside each layer the base strategy (magnitude) chose: the pruned weights are the smallest
    for n, p in prunable_parameters(model).items():
        k = int((~masks[n]).sum())
        assert torch.equal(masks[n], prune(model, "magnitude", k / p.numel(), scope="layer").masks[n])


def test_guided_strategy_prunes_the_least_sensitive_layer_most_on_lenet300(lenet300_scan):
    model, ds, scan = lenet300_scan
    # the scan itself: fc1 keeps its accuracy longest, the output layer fc3 is the most sensitive
    tolerated = [tolerated_level(scan, layer, 0.01) for layer in ("fc1", "fc2", "fc3")]
    assert tolerated == sorted(tolerated, reverse=True)
    assert "fc1 is the least sensitive, fc3 the most" in describe_scan(scan)
    for sparsity in (0.5, 0.8, 0.9, 0.95):
        masks = prune(model, "sensitivity_guided", sparsity, scan=scan).masks
        zeros = {n: int((~m).sum()) for n, m in masks.items()}
        total = sum(m.numel() for m in masks.values())
        assert sum(zeros.values()) == zeros_to_prune(sparsity, total)  # exactly, to the element
        level = {n: zeros[n] / masks[n].numel() for n in masks}
        assert level["fc3.weight"] <= min(level["fc1.weight"], level["fc2.weight"]), level  # the sensitive one: least
        if sparsity >= 0.9:  # at high sparsity, fc1 (Han et al.'s least sensitive layer) is pruned most
            assert level["fc1.weight"] >= level["fc2.weight"] >= level["fc3.weight"], level
    # and it beats uniform magnitude pruning at 95 % (the sensitive output layer is spared)
    guided = prune(model, "sensitivity_guided", 0.95, scan=scan).model
    uniform = prune(model, "magnitude", 0.95).model
    assert evaluate_dataset(guided, ds, device="cpu").accuracy > evaluate_dataset(uniform, ds, device="cpu").accuracy


def test_guided_strategy_without_a_scan_scans_its_batch(digits):
    model, ds = digits
    batch = data_batch(ds, seed=0)
    a = prune(model, "sensitivity_guided", 0.7, batch=batch).masks
    from sparsity_viz.sensitivity import scan_arrays

    scan = scan_arrays(model, *batch, (0.25, 0.5, 0.75, 0.9, 0.95, 0.99), batch_for=lambda s: batch)
    b = prune(model, "sensitivity_guided", 0.7, scan=scan).masks
    assert all(torch.equal(a[n], b[n]) for n in a)
    with pytest.raises(ValueError, match="needs a batch of data"):
        prune(model, "sensitivity_guided", 0.7)
    with pytest.raises(ValueError, match="cannot prune one layer on its own to an exact level"):
        get_strategy("sensitivity_guided", base="structured")
    with pytest.raises(ValueError, match="needs the columns"):
        prune(model, "sensitivity_guided", 0.7, scan=pd.DataFrame({"layer": ["fc1"]}))


def test_describe_scan_by_hand():
    scan = pd.DataFrame({"layer": ["a", "a", "b", "b"], "level": [0.5, 0.9, 0.5, 0.9], "seed": 0,
                         "accuracy": [0.9, 0.89, 0.85, 0.5], "accuracy_drop": [0.004, 0.006, 0.05, 0.4],
                         "weights": 10, "zeros": [5, 9, 5, 9]})
    assert describe_scan(scan) == ("Within 1 point of the dense accuracy, a tolerates 90 % pruned (a 0.6-point drop), "
                                   "b loses 5.0 points already at 50 %; a is the least sensitive, b the most.")



def test_describe_scan_at_exactly_one_point_with_ties_and_gains():
    """An audit: fc3 "loses 1.0 points already at 50 %" in a sentence about what stays within 1 point (1.0 - 0.99
    is 0.010000000000000009); equal layers got a least and a most sensitive one; a gain read "a -33.3-point drop"."""
    scan = pd.DataFrame({"layer": ["a", "b"], "level": [0.5, 0.5], "seed": 0, "accuracy": [0.99, 0.99],
                         "accuracy_drop": [1.0 - 0.99, 1.0 - 0.99], "weights": 10, "zeros": 5})
    assert describe_scan(scan) == ("Within 1 point of the dense accuracy, a tolerates 50 % pruned (a 1.0-point drop), "
                                   "b tolerates 50 % pruned (a 1.0-point drop); no layer is more sensitive than "
                                   "another here.")
    gain = scan.assign(accuracy_drop=[-1 / 3, 0.0])
    assert describe_scan(gain) == ("Within 1 point of the dense accuracy, a tolerates 50 % pruned (a 33.3-point gain), "
                                   "b tolerates 50 % pruned (no change); a is the least sensitive, b the most.")


# --- figures -------------------------------------------------------------------------------------


def test_curves_draw_the_scan_mean_band_and_dense_line(digits):
    model, ds = digits
    scan = sensitivity_scan(model, ds, (0.5, 0.9), strategy="random", seeds=(0, 1, 2))
    fig = figures.sensitivity_curves(scan, title="t")
    summary = scan_summary(scan)
    for layer in ("fc1", "fc2"):
        mean = next(t for t in fig.data if t.meta == {"kind": "mean", "layer": layer})
        rows = summary[summary["layer"] == layer]
        assert list(mean.x) == pytest.approx(100 * rows["level"]) and list(mean.y) == pytest.approx(100 * rows["mean"])
        upper = next(t for t in fig.data if t.meta == {"kind": "band_upper", "layer": layer})
        assert list(upper.y) == pytest.approx(100 * (rows["mean"] + rows["std"]))
        assert rows["std"].gt(0).any()
    dense = next(t for t in fig.data if t.meta == {"kind": "dense"})
    assert list(dense.y) == pytest.approx([100 * scan.attrs["dense_accuracy"]] * 2)
    assert fig.layout.legend.x >= 1.0  # beside the plot, never on an axis title
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text == "test accuracy (%)"
    one_seed = figures.sensitivity_curves(scan[scan["seed"] == 0])
    assert not [t for t in one_seed.data if "band" in str(t.meta)]


def test_heatmap_holds_the_drop_in_points(digits_scan):
    fig = figures.sensitivity_heatmap(digits_scan)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert list(fig.data[0].y) == ["fc1", "fc2"] and list(fig.data[0].x) == ["0 %", "50 %", "90 %", "99 %"]
    expected = 100 * digits_scan.pivot(index="layer", columns="level", values="accuracy_drop").to_numpy()
    assert z == pytest.approx(expected)
    with pytest.raises(ValueError, match="needs the columns"):
        figures.sensitivity_curves(pd.DataFrame({"layer": ["fc1"]}))


def test_scan_frame_round_trips_through_csv(digits_scan, tmp_path):
    path = tmp_path / "scan.csv"
    digits_scan.to_csv(path, index=False)
    back = pd.read_csv(path)
    pd.testing.assert_frame_equal(back, digits_scan.reset_index(drop=True), check_dtype=False)


def test_any_module_layers_are_found_by_type_and_labelled_uniquely():
    """A model with non-standard names: the scan and the guided strategy use ``prunable_parameters``, not names."""
    from torch import nn

    from sparsity_viz.data import Dataset
    from sparsity_viz.sensitivity import layer_labels

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Sequential(nn.Linear(6, 3)))
    x = torch.randn(40, 4)
    y = torch.randint(0, 3, (40,))
    ds = Dataset(name="toy", x_train=x, y_train=y, x_test=x, y_test=y, input_shape=(4,), class_names=("a", "b", "c"),
                 kind="points")
    scan = sensitivity_scan(net, ds, (0.5,))
    assert scan["layer"].tolist() == ["0", "2.0"] and scan["zeros"].tolist() == [12, 9]
    masks = prune(net, "sensitivity_guided", 0.5, scan=scan, include_bias=True).masks
    assert sum(int((~m).sum()) for m in masks.values()) == zeros_to_prune(0.5, sum(m.numel() for m in masks.values()))
    assert layer_labels(["a.in_proj_weight", "a.q_weight", "b.weight"]) == {
        "a.in_proj_weight": "a.in_proj_weight", "a.q_weight": "a.q_weight", "b.weight": "b"}


def test_a_scan_carries_its_configuration_and_run_id(digits, digits_scan):
    from sparsity_viz.run_config import run_id

    config = digits_scan.attrs["config"]
    assert config["kind"] == "sensitivity_scan" and config["strategies"][0]["name"] == "magnitude"
    assert config["levels"] == sorted(set(config["levels"])) and config["versions"]["torch"] == torch.__version__
    again = sensitivity_scan(digits[0], digits[1], config["levels"], seeds=config["seeds"])
    assert run_id(again.attrs["config"]) == run_id(config)  # same configuration, same id, same rows
    pd.testing.assert_frame_equal(again, digits_scan)
    other = sensitivity_scan(digits[0], digits[1], [0.5], seeds=config["seeds"])
    assert run_id(other.attrs["config"]) != run_id(config)



def test_structured_pruning_is_not_offered_to_a_scan(digits):
    """Found by an audit: a structured scan labelled fc3 '99 %, no drop' with no weight pruned (it never prunes
    the classifier, and cuts whole rows elsewhere), and the guided targets then took 99 % of fc3 as free."""
    from sparsity_viz.sensitivity import scan_strategy_names

    model, ds = digits
    assert "structured" not in scan_strategy_names() and "magnitude" in scan_strategy_names()
    with pytest.raises(ValueError, match="cannot prune one layer on its own to an exact level.*structured"):
        scan_arrays(model, *data_batch(ds, seed=0), (0.5,), strategy="structured")
