"""Activation sparsity against hand counts; hooks removed and the model never mutated; k-WTA keeps exactly k;
the CLI's JSON equals the library."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sparsity_viz.activations import (
    KWinners,
    activation_modules,
    activation_sparsity,
    activations_of_input,
    collect_activations,
    compare_reports,
    kwinners,
    per_class_table,
    shared_range,
    value_histogram,
    with_kwinners,
)
from sparsity_viz.masks import masks_from_zeros
from sparsity_viz.models import MLP

ROOT = Path(__file__).resolve().parent.parent


def _no_forward_hooks(model) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


@pytest.fixture
def hand_net() -> MLP:
    """MLP 2-4-2-2 with hand-set weights.

    fc1: h = relu([x0, x1, x0 + x1 - 10, 10]); unit 2 dead on small inputs, unit 3 always on.
    fc2: g = relu([h0, -h3]); unit 1 dead (always -10).
    """
    net = MLP(2, (4, 2), 2)
    with torch.no_grad():
        net.fc1.weight.copy_(torch.tensor([[1.0, 0], [0, 1], [1, 1], [0, 0]]))
        net.fc1.bias.copy_(torch.tensor([0.0, 0, -10, 10]))
        net.fc2.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, -1]]))
        net.fc2.bias.zero_()
    return net


X = torch.tensor([[1.0, 1], [-1, 1], [1, -1], [2, 3]])
Y = torch.tensor([0, 1, 1, 0])


def test_hand_made_relu_net_equals_the_hand_count(hand_net):
    report = activation_sparsity(hand_net, X, Y)
    assert [l.name for l in report.layers] == ["fc1", "fc2"] and report.count == 4
    fc1, fc2 = report.layers
    # fc1 activations: [1,1,0,10], [0,1,0,10], [1,0,0,10], [2,3,0,10] -> zeros 1, 2, 2, 1 of 4
    assert fc1.units == fc1.elements == 4
    assert fc1.per_input.tolist() == [0.25, 0.5, 0.5, 0.25]
    assert fc1.zero_fraction == 6 / 16
    assert fc1.per_class == {0: 0.25, 1: 0.5}
    assert fc1.dead == (2,) and fc1.always_on == (3,)
    # fc2 activations: [1,0], [0,0], [1,0], [2,0] -> zeros 1, 2, 1, 1 of 2
    assert fc2.per_input.tolist() == [0.5, 1.0, 0.5, 0.5]
    assert fc2.zero_fraction == 5 / 8
    assert fc2.per_class == {0: 0.5, 1: 0.75}
    assert fc2.dead == (1,) and fc2.always_on == ()
    assert report.frame()["zero_fraction"].tolist() == [6 / 16, 5 / 8]


def test_batches_do_not_change_the_numbers(hand_net):
    a, b = activation_sparsity(hand_net, X, Y), activation_sparsity(hand_net, X, Y, batch_size=3)
    assert a.to_dict() == b.to_dict()
    assert all(torch.equal(la.per_input, lb.per_input) for la, lb in zip(a.layers, b.layers))


def test_masks_are_measured_on_a_copy(hand_net):
    before = copy.deepcopy(hand_net.state_dict())
    masks = masks_from_zeros(hand_net)
    masks["fc1.weight"] = masks["fc1.weight"].clone()
    masks["fc1.weight"][0] = False  # prune unit 0's inputs: h0 = relu(0) = 0, and so g0 = 0
    report = activation_sparsity(hand_net, X, Y, masks=masks)
    assert report.layer("fc1").dead == (0, 2) and report.layer("fc2").dead == (0, 1)
    assert all(torch.equal(v, before[k]) for k, v in hand_net.state_dict().items())


@pytest.mark.parametrize("training", [True, False])
def test_model_is_never_mutated_and_no_hooks_are_left(small_model, batch_for, training):
    small_model.train(training)
    before = copy.deepcopy(small_model.state_dict())
    x, y = batch_for(small_model)
    activation_sparsity(small_model, x, y)
    assert small_model.training is training
    assert _no_forward_hooks(small_model)
    state = small_model.state_dict()
    assert state.keys() == before.keys() and all(torch.equal(state[k], before[k]) for k in before)


def test_conv_layers_count_channels_as_units(tiny_conv, batch_for):
    x, y = batch_for(tiny_conv)
    report = activation_sparsity(tiny_conv, x, y)
    assert [(l.name, l.units, l.elements) for l in report.layers] == [
        ("conv1", 4, 4 * 24 * 24), ("conv2", 6, 6 * 8 * 8), ("fc1", 24, 24)]
    acts = collect_activations(tiny_conv, x)
    conv1 = acts["conv1"]
    assert report.layers[0].zero_fraction == pytest.approx(float((conv1 == 0).double().mean()))
    dead = tuple(int(c) for c in torch.nonzero(~(conv1 != 0).any(dim=(0, 2, 3))).flatten())
    assert report.layers[0].dead == dead


def test_kwinners_keeps_exactly_k_per_sample():
    x = torch.randn(16, 50, generator=torch.Generator().manual_seed(0))
    out = kwinners(x, 7)
    assert ((out != 0).sum(1) == 7).all()
    top = x.topk(7, dim=1).values
    assert torch.equal(out.sort(1, descending=True).values[:, :7], top)  # the winners keep their values
    ties = kwinners(torch.ones(3, 10), 4)  # all tied: still exactly k
    assert ((ties != 0).sum(1) == 4).all()
    conv = kwinners(torch.randn(2, 3, 4, 4), 5)  # over channels x positions
    assert conv.shape == (2, 3, 4, 4) and ((conv != 0).flatten(1).sum(1) == 5).all()
    assert ((kwinners(x, 500) != 0).sum(1) == 50).all()  # k capped at the layer size
    with pytest.raises(ValueError):
        KWinners(0)


def test_kwinners_gradient_reaches_the_winners_only():
    x = torch.tensor([[3.0, -1.0, 2.0, 0.5]], requires_grad=True)
    kwinners(x, 2).sum().backward()
    assert x.grad.tolist() == [[1.0, 0.0, 1.0, 0.0]]


def test_with_kwinners_gives_the_exact_activation_sparsity(tiny_mlp):
    x = torch.randn(32, 5, generator=torch.Generator().manual_seed(1))
    net = with_kwinners(tiny_mlp, 3)
    assert isinstance(tiny_mlp.act, torch.nn.ReLU) and isinstance(net.act, KWinners)
    assert [type(m) for m in activation_modules(net)] == [KWinners]
    report = activation_sparsity(net, x)
    assert report.layer("fc1").zero_fraction == pytest.approx(1 - 3 / 7)
    assert report.layer("fc2").zero_fraction == pytest.approx(1 - 3 / 9)


def test_report_totals_weight_layers_by_their_elements(hand_net):
    report = activation_sparsity(hand_net, X, Y)
    assert report.zero_fraction == (6 + 5) / (16 + 8)  # fc1 6 of 16 zeros, fc2 5 of 8
    assert report.never_active_units == 2 and report.units == 6


def test_kwinners_zero_share_is_exactly_one_minus_k_over_units_per_layer():
    """All pre-activations > 0 (positive weights, biases and inputs): every kept value is non-zero."""
    net = MLP(6, (40, 25), 3)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for layer in (net.fc1, net.fc2, net.fc3):
            layer.weight.copy_(torch.rand(layer.weight.shape, generator=gen) + 0.01)
            layer.bias.copy_(torch.rand(layer.bias.shape, generator=gen) + 0.01)
    x = torch.rand(64, 6, generator=gen)
    for k in (1, 5, 25):
        report = activation_sparsity(with_kwinners(net, k), x)
        acts = collect_activations(with_kwinners(net, k), x)
        for layer, units in (("fc1", 40), ("fc2", 25)):
            assert ((acts[layer] != 0).sum(1) == k).all()  # exactly k per sample
            assert report.layer(layer).zero_fraction == pytest.approx(1 - k / units, abs=1e-12)
            assert report.layer(layer).per_input.tolist() == pytest.approx([1 - k / units] * 64)
    assert isinstance(net.act, torch.nn.ReLU)  # the original keeps its ReLU


def test_activations_of_input_is_one_row_of_the_batch(small_model, batch_for):
    x, _ = batch_for(small_model)
    before = copy.deepcopy(small_model.state_dict())
    one = activations_of_input(small_model, x[3])
    batch = collect_activations(small_model, x)
    assert list(one) == list(batch)
    for name, a in one.items():
        assert a.shape == batch[name].shape[1:]
        torch.testing.assert_close(a, batch[name][3])  # batch 1 vs 8: the matmul may round differently
    if "conv1" in one:
        assert one["conv1"].dim() == 3 and one["fc1"].dim() == 1  # (C, H, W) and (units,)
    assert _no_forward_hooks(small_model)
    assert all(torch.equal(v, before[k]) for k, v in small_model.state_dict().items())


def test_value_histogram_counts_zeros_apart_by_hand(hand_net):
    # fc1 activations: [1,1,0,10], [0,1,0,10], [1,0,0,10], [2,3,0,10]: 6 zeros, non-zero 1 x4, 2, 3, 10 x4
    h = value_histogram(hand_net, X, "fc1", bins=10, value_range=(0.0, 10.0))
    assert (h.zeros, h.total) == (6, 16) and h.zero_fraction == activation_sparsity(hand_net, X).layers[0].zero_fraction
    assert h.edges.tolist() == [float(i) for i in range(11)]
    assert h.counts.tolist() == [0, 4, 1, 1, 0, 0, 0, 0, 0, 4]  # 10 is the right edge: the last bin
    auto = value_histogram(hand_net, X, "fc1", bins=5, batch_size=3)
    assert (float(auto.edges[0]), float(auto.edges[-1])) == (0.0, 10.0) and int(auto.counts.sum()) == 10
    assert shared_range([h, value_histogram(hand_net, X, "fc2", bins=2)]) == (0.0, 10.0)
    with pytest.raises(ValueError, match="No hidden layer 'fc9'"):
        value_histogram(hand_net, X, "fc9")
    assert _no_forward_hooks(hand_net)


def test_value_histogram_matches_a_numpy_histogram(lenet300):
    x = torch.randn(50, 784, generator=torch.Generator().manual_seed(0))
    h = value_histogram(lenet300, x, "fc2", bins=7)
    values = collect_activations(lenet300, x)["fc2"].flatten().double()
    nz = values[values != 0].numpy()
    import numpy as np

    expected, _ = np.histogram(nz, h.edges.numpy())
    assert h.counts.tolist() == expected.tolist() and h.zeros == int((values == 0).sum())


def test_compare_reports_and_per_class_table_against_the_hand_net(hand_net):
    masks = masks_from_zeros(hand_net)
    masks["fc1.weight"] = masks["fc1.weight"].clone()
    masks["fc1.weight"][0] = False  # h0 = 0 on every input, so g0 = 0 too
    dense, pruned = activation_sparsity(hand_net, X, Y), activation_sparsity(hand_net, X, Y, masks=masks)
    table = compare_reports(dense, pruned)
    assert table["layer"].tolist() == ["fc1", "fc2"] and table["units"].tolist() == [4, 2]
    assert table["dense_zero_pct"].tolist() == [100 * 6 / 16, 100 * 5 / 8]
    # pruned fc1: [0,1,0,10], [0,1,0,10], [0,0,0,10], [0,3,0,10] -> 9 of 16; fc2 all zero -> 8 of 8
    assert table["current_zero_pct"].tolist() == [100 * 9 / 16, 100.0]
    assert table["dense_dead"].tolist() == [1, 1] and table["current_dead"].tolist() == [2, 2]
    assert table["dense_always_on"].tolist() == [1, 0] and table["current_always_on"].tolist() == [1, 0]
    classes = per_class_table({"dense": dense, "current": pruned}, ("zero", "one"))
    assert classes["class"].tolist() == ["zero", "one"]
    assert classes["fc1 dense (%)"].tolist() == [25.0, 50.0] and classes["fc2 dense (%)"].tolist() == [50.0, 75.0]
    assert classes["fc2 current (%)"].tolist() == [100.0, 100.0]
    other = activation_sparsity(MLP(2, (3, 2), 2), X)
    with pytest.raises(ValueError, match="different layers|units"):
        compare_reports(dense, other)


def test_a_fully_pruned_model_measures_relu_of_the_bias(hand_net):
    masks = {k: torch.zeros_like(v) for k, v in masks_from_zeros(hand_net).items()}
    report = activation_sparsity(hand_net, X, Y, masks=masks)
    # every weight 0: fc1 = relu(bias) = [0, 0, 0, 10] on every input, fc2 = relu(0) = 0
    assert report.layer("fc1").zero_fraction == 0.75 and report.layer("fc2").zero_fraction == 1.0
    assert report.layer("fc1").always_on == (3,) and report.layer("fc2").dead == (0, 1)
    assert all(v == v for layer in report.layers for v in layer.per_class.values())  # no NaN


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "sparsity_viz", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_cli_json_equals_the_library():
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.data import data_batch, load_dataset
    from sparsity_viz.pruning import prune

    proc = _cli("activations", "--model", "lenet300", "--strategy", "magnitude", "--sparsity", "0.9", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    model, card = load_sample("lenet300")
    data = load_dataset("mnist5k", seed=card.get("dataset", {}).get("seed", 0))
    dense = activation_sparsity(model, data.x_test, data.y_test)
    pruned = prune(model, "magnitude", 0.9, seed=0, batch=data_batch(data, seed=0))
    sparse = activation_sparsity(pruned.model, data.x_test, data.y_test)
    assert out["dense"] == dense.to_dict()["layers"] and out["pruned"] == sparse.to_dict()["layers"]
    assert [r["layer"] for r in out["dense"]] == ["fc1", "fc2"] and out["inputs"] == len(data.y_test)


@pytest.mark.parametrize("args, message", [
    (("activations", "--model", "lenet300", "--strategy", "magnitude"), "--strategy and --sparsity go together"),
    (("activations", "--model", "nope"), "Unknown model"),
    (("prune", "--model", "lenet300", "--strategy", "magnitude", "--sparsity", "0.5", "--dropout", "0.3"),
     "--finetune-epochs"),
    (("prune", "--model", "lenet300", "--strategy", "magnitude", "--sparsity", "0.5", "--dropconnect", "1"),
     "rate must be in [0, 1)"),
])
def test_cli_bad_input_is_one_line_exit_2(args, message, capsys):
    from sparsity_viz.cli import main

    try:  # in process: cli.main is what `python -m sparsity_viz` runs (tests/test_cli.py runs one in a real process)
        status = main(list(args))
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err
    assert status == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cli_prune_finetunes_with_dropconnect():
    proc = _cli("prune", "--model", "digits_mlp", "--strategy", "magnitude", "--sparsity", "0.8",
                "--finetune-epochs", "1", "--dropconnect", "0.3", "--dropout", "0.2", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["dropconnect"] == 0.3 and out["dropout"] == 0.2 and out["finetuned_accuracy"] is not None
    one_shot = json.loads(_cli("prune", "--model", "digits_mlp", "--strategy", "magnitude", "--sparsity", "0.8",
                               "--json").stdout)
    assert out["achieved_sparsity"] >= one_shot["achieved_sparsity"]  # pruned weights stayed exactly 0


def test_kwinners_checks_k_and_zeros_losers_with_plus_zero():
    """Found by an audit: KWinners(True) was taken as k = 1, kwinners(x, -1) raised a RuntimeError from topk, and a
    losing negative activation became -0.0 (x * False)."""
    for bad in (True, False, 0, -1, 2.5, "3"):
        with pytest.raises(ValueError, match="whole number >= 1"):
            KWinners(bad)
        with pytest.raises(ValueError, match="whole number >= 1"):
            kwinners(torch.randn(2, 5), bad)
    x = -torch.arange(1.0, 7.0).view(1, 6)  # all negative: -1 wins at k = 1
    out = kwinners(x, 1)
    assert out.tolist() == [[-1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    assert not bool(torch.signbit(out[0, 1:]).any())  # +0.0, not -0.0
