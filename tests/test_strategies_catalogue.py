"""Hand-computable cases for the strategy catalogue: N:M, SNIP, Taylor, SynFlow, GraSP,
Erdős–Rényi densities, the AGP schedule, SET / RigL budgets, IMP rounds.

The shared contract (exact counts, no revival, seeds, untouched input) runs on
every registered strategy in ``test_pruning.py``; here each strategy is checked
against what it should compute.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsity_viz import STRATEGIES, get_strategy, prune
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import data_batch, load_dataset
from sparsity_viz.masks import full_masks
from sparsity_viz.models import MLP, build_model
from sparsity_viz.pruning import one_shot_strategy_names, scheduled_strategy_names, wants_batch
from sparsity_viz.pruning.dynamic import cosine_drop_fraction, drop_and_grow
from sparsity_viz.pruning.erdos_renyi import er_densities, er_zero_counts
from sparsity_viz.pruning.gradual import agp_sparsity
from sparsity_viz.pruning.iterative import imp_round_masks, random_masks_like, round_rates
from sparsity_viz.pruning.n_m import NMStrategy, n_m_keep
from sparsity_viz.pruning.synflow import synflow_scores
from sparsity_viz.training import TrainConfig, evaluate_dataset, train


def _mlp(weights: list, biases: list | None = None) -> MLP:
    """An MLP whose layers carry the given weight matrices (and biases, default 0)."""
    sizes = [len(weights[0][0])] + [len(w) for w in weights]
    model = MLP(sizes[0], tuple(sizes[1:-1]), sizes[-1])
    with torch.no_grad():
        for i, w in enumerate(weights):
            layer = getattr(model, f"fc{i + 1}")
            layer.weight.copy_(torch.tensor(w))
            layer.bias.copy_(torch.tensor(biases[i]) if biases else torch.zeros(len(w)))
    return model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


# --- N:M ---------------------------------------------------------------------------------

M = [[1.0, -5.0, 2.0, 0.5, 3.0, 0.1, -0.2, 4.0],
     [-0.3, 0.2, 0.1, 0.4, -6.0, 7.0, 8.0, -9.0]]


def test_two_four_on_a_known_matrix():
    keep = n_m_keep(torch.tensor(M), 2, 4)
    assert keep.tolist() == [
        [False, True, True, False, True, False, False, True],
        [True, False, False, True, False, False, True, True],
    ]
    one = n_m_keep(torch.tensor(M), 1, 4)
    assert one.tolist() == [
        [False, True, False, False, False, False, False, True],
        [False, False, False, True, False, False, False, True],
    ]


def test_n_m_strategy_at_its_natural_sparsity_is_the_pattern():
    model = _mlp([M, [[1.0, 2.0]]])
    masks = prune(model, "n_m_2_4", 0.5).masks
    assert masks["fc1.weight"].tolist() == n_m_keep(torch.tensor(M), 2, 4).tolist()
    assert get_strategy("n_m_2_4").is_n_m(masks)["fc1.weight"]
    masks = prune(model, "n_m_1_4", 0.75).masks
    assert masks["fc1.weight"].tolist() == n_m_keep(torch.tensor(M), 1, 4).tolist()
    assert get_strategy("n_m_1_4").natural_sparsity == 0.75


def test_n_m_above_natural_sparsity_stays_hardware_valid_below_is_partial():
    model = _mlp([M, [[1.0, 2.0]]])
    strategy = get_strategy("n_m_2_4")
    high = prune(model, strategy, 0.75).masks
    assert strategy.is_n_m(high)["fc1.weight"]  # at most 2 of every 4 survive
    # the extra pruning takes the smallest kept |w|: 2.0 in row 0 (of 5, 2, 3, 4) ...
    assert int((~high["fc1.weight"]).sum()) == 12
    low = prune(model, strategy, 0.25).masks
    # ... and below 50 % only pattern-dropped weights go, smallest first: 0.1, 0.1, 0.2 (row 1), -0.2
    dropped = torch.tensor(M).abs()[~low["fc1.weight"]].sort().values.tolist()
    assert dropped == pytest.approx([0.1, 0.1, 0.2, 0.2])
    assert not strategy.is_n_m(low)["fc1.weight"]


def test_n_m_partial_group_and_conv_layout():
    w = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0, 0.5]])  # groups (1,2,3,4) and the partial (5, 0.5)
    assert n_m_keep(w, 2, 4).tolist() == [[False, False, True, True, True, True]]
    conv = torch.arange(1.0, 17.0).view(2, 2, 2, 2)  # fan-in 8 = in_ch * kh * kw, flattened
    keep = n_m_keep(conv, 2, 4)
    assert keep.shape == conv.shape
    assert keep.flatten(1).tolist()[0] == [False, False, True, True, False, False, True, True]
    with pytest.raises(ValueError):
        NMStrategy(n=5, m=4)


# --- SNIP and Taylor ---------------------------------------------------------------------


def test_snip_scores_by_hand():
    # one linear layer z = W x: dL/dW = (softmax(z) - onehot(y)) x^T, so SNIP = |W * that|
    W = [[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]
    model = _mlp([W])
    x = torch.tensor([[1.0, 0.5, -2.0]])
    y = torch.tensor([1])
    z = torch.tensor(W) @ x[0]
    p = torch.exp(z) / torch.exp(z).sum()
    grad = (p - torch.tensor([0.0, 1.0]))[:, None] * x[0][None, :]
    expected = (torch.tensor(W) * grad).abs()
    scores = get_strategy("snip").scores(model, (x, y))
    torch.testing.assert_close(scores["fc1.weight"], expected)
    masks = prune(model, "snip", 0.5, batch=(x, y)).masks
    kept = expected[masks["fc1.weight"]]
    assert kept.min() >= expected[~masks["fc1.weight"]].max()


def test_snip_two_layers_by_hand():
    # x -> fc1 (ReLU) -> fc2; with x = (1, 1), W1 = diag(2, -1): h = relu(2, -1) = (2, 0)
    model = _mlp([[[2.0, 0.0], [0.0, -1.0]], [[1.0, 3.0], [-1.0, 0.5]]])
    x, y = torch.tensor([[1.0, 1.0]]), torch.tensor([0])
    z = torch.tensor([2.0, -2.0])  # W2 @ h
    dz = torch.softmax(z, 0) - torch.tensor([1.0, 0.0])
    g2 = dz[:, None] * torch.tensor([2.0, 0.0])[None, :]
    dh = torch.tensor([[1.0, 3.0], [-1.0, 0.5]]).T @ dz * torch.tensor([1.0, 0.0])  # ReLU gate
    g1 = dh[:, None] * torch.tensor([1.0, 1.0])[None, :]
    s = get_strategy("snip").scores(model, (x, y))
    torch.testing.assert_close(s["fc2.weight"], (torch.tensor([[1.0, 3.0], [-1.0, 0.5]]) * g2).abs())
    torch.testing.assert_close(s["fc1.weight"], (torch.tensor([[2.0, 0.0], [0.0, -1.0]]) * g1).abs())


def test_taylor_averages_per_micro_batch():
    W = [[1.0, -2.0], [0.5, 1.5]]
    model = _mlp([W])
    x = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    y = torch.tensor([0, 1])
    strategy = get_strategy("taylor")
    strategy.chunk = 1
    per_sample = []
    for i in range(2):
        p = torch.softmax(torch.tensor(W) @ x[i], 0)
        g = (p - F.one_hot(y[i], 2).float())[:, None] * x[i][None, :]
        per_sample.append((torch.tensor(W) * g).abs())
    torch.testing.assert_close(strategy.scores(model, (x, y))["fc1.weight"], (per_sample[0] + per_sample[1]) / 2)


# --- SynFlow and GraSP ---------------------------------------------------------------------


def test_synflow_scores_by_hand():
    W1 = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    b1 = torch.tensor([0.5, -1.0])
    W2 = torch.tensor([[2.0, -1.0]])
    model = _mlp([W1.tolist(), W2.tolist()], [b1.tolist(), [0.25]])
    s = synflow_scores(model, {}, (2,))
    # R = |W2| (|W1| 1 + |b1|) + |b2|: dR/dW1[i,j] = |W2|[0,i] * 1, dR/dW2[0,i] = (|W1| 1 + |b1|)_i
    torch.testing.assert_close(s["fc1.weight"], (W1.abs() * W2.abs().T).double())  # float64, as ranked
    h = W1.abs().sum(1) + b1.abs()
    torch.testing.assert_close(s["fc2.weight"], (W2.abs() * h[None, :]).double())


@pytest.mark.parametrize("scale", [1e14, 1e-18])
def test_synflow_masks_do_not_depend_on_a_global_weight_scale(scale):
    """Without biases every score scales by scale**3 (three layers), so the masks must not move. Cast to float32,
    scores past 3.4e38 became inf (and tiny ones 0) and tied, ranked by position (an audit)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 30, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(30, 30, bias=False), torch.nn.ReLU(), torch.nn.Linear(30, 5, bias=False))
    batch = (torch.randn(4, 20), torch.arange(4))
    reference = prune(model, get_strategy("synflow", iterations=1), 0.9, batch=batch).masks
    big = copy.deepcopy(model)
    with torch.no_grad():
        for p in big.parameters():
            p.mul_(scale)
    masks = prune(big, get_strategy("synflow", iterations=1), 0.9, batch=batch).masks
    assert all(torch.equal(masks[k], reference[k]) for k in reference)


def test_synflow_reads_the_input_shape_off_the_data_it_is_run_on():
    """Found by an audit: run() passed no batch to SynFlow, which guessed 28x28 images: a 3x32x32 conv model
    raised torch's matmul error, and a pooled one got masks scored on the wrong input."""
    from sparsity_viz.data import Dataset

    class Pooled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2, self.fc = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 6, 3), nn.Linear(6, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.conv2(torch.relu(self.conv1(x)))).mean(dim=(2, 3)))

    x, y = torch.randn(40, 3, 32, 32), torch.arange(40) % 10
    data = Dataset("toy", x, y, x[:10], y[:10], (3, 32, 32), tuple(str(i) for i in range(10)), "image")
    torch.manual_seed(0)
    for model in (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 30 * 30, 10)), Pooled()):
        strategy = get_strategy("synflow")
        assert wants_batch(strategy) and not strategy.needs_data
        result = strategy.run(model, data, 0.5, TrainConfig(epochs=0, device="cpu"))
        reference = prune(model, get_strategy("synflow"), 0.5, batch=(x[:2], y[:2])).masks  # the right shape
        assert all(torch.equal(result.masks[n], reference[n]) for n in reference)


def test_synflow_avoids_layer_collapse_where_global_magnitude_collapses():
    # a "bottleneck" classifier with tiny weights: global magnitude empties it at high sparsity
    torch.manual_seed(0)
    model = MLP(20, (30,), 3)
    with torch.no_grad():
        model.fc2.weight.mul_(0.001)
    mag = prune(model, "global_magnitude", 0.9).masks
    assert not mag["fc2.weight"].any()
    syn = prune(model, get_strategy("synflow", iterations=20), 0.9).masks
    assert all(m.any() for m in syn.values())


def test_grasp_scores_are_w_times_hessian_gradient():
    torch.manual_seed(0)
    model = MLP(3, (4,), 2, activation="tanh")  # smooth, so the Hessian is not trivial
    x, y = torch.randn(5, 3), torch.randint(0, 2, (5,))
    strategy = get_strategy("grasp")
    params = dict(model.named_parameters())
    names = list(params)

    def loss(*flat):
        out = torch.func.functional_call(model, dict(zip(names, flat)), (x,))
        return F.cross_entropy(out / strategy.temperature, y)

    values = tuple(p.detach() for p in params.values())
    g = torch.autograd.grad(loss(*[v.requires_grad_() for v in values]), values)
    _, hg = torch.autograd.functional.hvp(loss, values, g)
    scores = strategy.scores(model, (x, y))
    for n in ("fc1.weight", "fc2.weight"):
        i = names.index(n)
        torch.testing.assert_close(scores[n], values[i] * hg[i], rtol=1e-4, atol=1e-7)


# --- Erdős–Rényi ---------------------------------------------------------------------------


def test_er_densities_by_hand():
    # raw densities (4+4)/16 = 0.5 and (2+8)/16 = 0.625; 16 weights each; total density 0.5
    d = er_densities({"a": (4, 4), "b": (2, 8)}, 0.5)
    eps = 16 / (0.5 * 16 + 0.625 * 16)
    assert d["a"] == pytest.approx(0.5 * eps) and d["b"] == pytest.approx(0.625 * eps)
    assert d["a"] * 16 + d["b"] * 16 == pytest.approx(16)


def test_er_caps_small_layers_at_dense_and_counts_are_exact():
    shapes = {"fc1": (300, 784), "fc2": (100, 300), "fc3": (10, 100)}
    d = er_densities(shapes, 0.5)
    assert d["fc3"] == 1.0  # (10 + 100) / 1000 * eps > 1: kept dense, eps re-solved
    assert d["fc2"] == 1.0
    total = sum(math.prod(s) for s in shapes.values())
    assert sum(d[n] * math.prod(s) for n, s in shapes.items()) == pytest.approx(0.5 * total)
    for s in (0.0, 0.3, 0.9, 0.99, 1.0):
        counts = er_zero_counts(shapes, s)
        assert sum(counts.values()) == round(s * total)
    d = er_densities(shapes, 0.02)
    assert d["fc1"] < d["fc2"] < d["fc3"]
    ratio = d["fc1"] / d["fc2"]
    assert ratio == pytest.approx(((300 + 784) / (300 * 784)) / ((100 + 300) / (100 * 300)))


def test_er_strategy_layer_counts_follow_the_formula(lenet300):
    masks = prune(lenet300, "erdos_renyi", 0.9, seed=3).masks
    counts = er_zero_counts({n: tuple(m.shape) for n, m in masks.items()}, 0.9)
    assert {n: int((~m).sum()) for n, m in masks.items()} == counts


# --- AGP -------------------------------------------------------------------------------------


def test_agp_cubic_schedule_values():
    assert agp_sparsity(0, 0.9, 0.0, 0, 100) == 0.0
    assert agp_sparsity(50, 0.9, 0.0, 0, 100) == pytest.approx(0.9 - 0.9 * 0.5**3)
    assert agp_sparsity(25, 0.8, 0.2, 0, 100) == pytest.approx(0.8 - 0.6 * 0.75**3)
    assert agp_sparsity(100, 0.9, 0.0, 0, 100) == 0.9
    assert agp_sparsity(500, 0.9, 0.0, 0, 100) == 0.9


def test_gradual_run_reaches_the_target_monotonically(digits):
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    strategy = get_strategy("gradual", events=5)
    result = strategy.run(model, digits, 0.8, TrainConfig(epochs=2, lr=3e-3, batch_size=64))
    for n, m in result.masks.items():
        assert int((~m).sum()) == round(0.8 * m.numel())
    levels = [lvl for _, lvl in result.schedule]
    assert len(levels) == 5 and levels == sorted(levels) and levels[-1] == 0.8
    steps = result.timeline.steps
    dead = [sum(int((~m).sum()) for m in result.timeline.mask_at(s).values()) for s in steps]
    assert dead == sorted(dead)  # never revives
    assert not any(int(r.max()) >= 0 for r in result.timeline.regrow_step().values())
    death = result.timeline.death_step()["fc1.weight"]
    assert torch.equal(death >= 0, ~result.masks["fc1.weight"])
    assert all(p.eq(0)[~result.masks[n]].all() for n, p in result.model.named_parameters() if n in result.masks)


def test_gradual_initial_above_the_target_is_refused(digits):
    """Found by an audit: initial 0.6 with target 0.3 ended at 60 % while the schedule recorded 30 %."""
    strategy = get_strategy("gradual", initial=0.6)
    for epochs in (0, 1):
        with pytest.raises(ValueError, match=r"initial sparsity \(0.6\) is above the target \(0.3\)"):
            strategy.run(MLP(64, (32,), 10), digits, 0.3, TrainConfig(epochs=epochs))
    result = strategy.run(MLP(64, (32,), 10), digits, 0.6, TrainConfig(epochs=0))  # equal: allowed
    assert all(int((~m).sum()) == round(0.6 * m.numel()) for m in result.masks.values())


# --- SET / RigL --------------------------------------------------------------------------


def test_drop_and_grow_by_hand():
    w = torch.tensor([[0.0, 5.0, -0.1, 2.0], [0.0, 0.0, 3.0, -0.3]])
    mask = w != 0
    grads = torch.tensor([[9.0, 0.0, 0.0, 0.0], [1.0, 4.0, 0.0, 0.0]])
    new = drop_and_grow(w, mask, grads, 2)  # drop -0.1 and -0.3; regrow the 2 dead with largest |g|
    assert new.tolist() == [[True, True, False, True], [False, True, True, False]]
    assert int(new.sum()) == int(mask.sum())


@pytest.mark.parametrize("name", ["set", "rigl"])
def test_dynamic_update_keeps_budget_and_regrows_the_right_count(name, lenet300):
    strategy = get_strategy(name, drop_fraction=0.3)
    batch = (torch.randn(16, 784), torch.randint(0, 10, (16,)))
    first = prune(lenet300, strategy, 0.9, batch=batch).masks
    second = prune(lenet300, strategy, 0.9, current=first, batch=batch).masks
    for n, m in second.items():
        alive = int(first[n].sum())
        assert int(m.sum()) == alive  # exact budget
        regrown = int((m & ~first[n]).sum())
        assert regrown == round(0.3 * alive)  # dropped as many as regrown
        assert int((first[n] & ~m).sum()) == regrown


def test_rigl_regrows_where_the_gradient_is_largest(lenet300):
    from sparsity_viz.pruning._gradients import loss_gradients

    batch = (torch.randn(16, 784), torch.randint(0, 10, (16,)))
    strategy = get_strategy("rigl", drop_fraction=0.1)
    first = prune(lenet300, strategy, 0.8, batch=batch).masks
    pruned = prune(lenet300, "magnitude", 0.8).model
    second = prune(pruned, strategy, 0.8, current=first, batch=batch).masks
    _, (g,) = loss_gradients(pruned, batch)
    n = "fc2.weight"
    grown = second[n] & ~first[n]
    dead_g = g[n].abs()[~first[n]]
    k = int(grown.sum())
    assert torch.equal(g[n].abs()[grown].sort().values, dead_g.topk(k).values.sort().values)


@pytest.mark.parametrize("name", ["set", "rigl"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_regrown_weight_starts_with_no_optimizer_history(name, optimizer, digits, monkeypatch):
    """Found by an audit: a regrown weight kept the momentum its gradients had built while it was pruned
    (mean |buffer| 0.12 where the surviving weights had 0.05); RigL's reference code zeroes it."""
    from sparsity_viz.pruning import dynamic

    seen = []
    update = dynamic.DropAndGrowHook.after_step

    def spy(self, state):
        before = {n: m.cpu().clone() for n, m in state.masks.items()}
        new = update(self, state)
        if new is not None:
            p = state.model.fc1.weight
            grown = new["fc1.weight"] & ~before["fc1.weight"]
            history = [v for v in state.optimizer.state[p].values() if torch.is_tensor(v) and v.shape == p.shape]
            seen.append((int(grown.sum()), [float(v[grown].abs().max()) for v in history],
                         [float(v[new["fc1.weight"] & before["fc1.weight"]].abs().max()) for v in history]))
        return new

    monkeypatch.setattr(dynamic.DropAndGrowHook, "after_step", spy)
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, lr=0.01, optimizer=optimizer, momentum=0.9, batch_size=32, device="cpu")
    get_strategy(name, every=10, drop_fraction=0.3).run(MLP(64, (32,), 10), digits, 0.8, config)
    assert seen and all(grown > 0 for grown, _, _ in seen)
    for _, at_grown, at_kept in seen:
        assert at_grown and all(v == 0 for v in at_grown) and all(v > 0 for v in at_kept)


def test_cosine_drop_fraction():
    assert cosine_drop_fraction(0, 100, 0.3) == pytest.approx(0.3)
    assert cosine_drop_fraction(37, 100, 0.3, end=0.75) == pytest.approx(0.15 * (1 + math.cos(math.pi * 37 / 75)))
    assert cosine_drop_fraction(75, 100, 0.3, end=0.75) == 0.0


@pytest.mark.parametrize("name", ["set", "rigl"])
def test_dynamic_run_keeps_the_budget_at_every_step_and_records_regrowth(name, digits):
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    strategy = get_strategy(name, every=10, drop_fraction=0.3)
    result = strategy.run(model, digits, 0.8, TrainConfig(epochs=2, lr=3e-3, batch_size=64))
    budget = {n: round(0.8 * m.numel()) for n, m in result.masks.items()}
    assert len(result.timeline.steps) > 3
    for step in result.timeline.steps:
        masks = result.timeline.mask_at(step)
        assert {n: int((~m).sum()) for n, m in masks.items()} == budget
    assert any(int((r >= 0).sum()) > 0 for r in result.timeline.regrow_step().values())
    frame = result.timeline.frame()
    assert (frame.died[frame.step > 0] == frame.regrown[frame.step > 0]).all()
    assert result.history_frame().test_accuracy.iloc[-1] > 0.5


# --- IMP ---------------------------------------------------------------------------------


def test_imp_rounds_reach_the_per_round_rates(lenet300):
    rates = round_rates(lenet300, 0.2, 0.1)
    assert rates == {"fc1.weight": 0.2, "fc2.weight": 0.2, "fc3.weight": 0.1}
    masks = full_masks(lenet300)
    weights = {n: p.detach() for n, p in lenet300.named_parameters() if n in masks}
    alive = {n: m.numel() for n, m in masks.items()}
    for _ in range(3):
        masks = imp_round_masks(weights, masks, rates)
        alive = {n: a - round(rates[n] * a) for n, a in alive.items()}
        assert {n: int(m.sum()) for n, m in masks.items()} == alive
    assert alive["fc1.weight"] / 235_200 == pytest.approx(0.8**3, abs=1e-4)
    assert alive["fc3.weight"] / 1000 == pytest.approx(0.9**3, abs=2e-3)
    rnd = random_masks_like(masks, 0)
    assert {n: int(m.sum()) for n, m in rnd.items()} == alive


def test_imp_run_with_rewinding_and_a_control(digits):
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    strategy = get_strategy("iterative", control="reinit", rewind_step=5)
    assert strategy.rounds_for(0.5) == 4  # 0.8^3 = 0.512 > 0.5, 0.8^4 < 0.5
    result = strategy.run(model, digits, config=TrainConfig(epochs=1, lr=3e-3), rounds=2)
    frame = result.history_frame()
    assert list(frame.control) == ["rewind", "rewind", "reinit", "rewind", "reinit"]
    assert frame["round"].tolist() == [0, 1, 1, 2, 2]
    expected_alive = {"fc1.weight": 2048, "fc2.weight": 320}
    for _ in range(2):
        expected_alive = {n: a - round((0.2 if n == "fc1.weight" else 0.1) * a) for n, a in expected_alive.items()}
    assert {n: int(m.sum()) for n, m in result.masks.items()} == expected_alive
    assert result.timeline.steps == [1, 2]


# --- group lasso (the structured regulariser next to L1) ---------------------------------


def test_group_lasso_penalty_and_prox_by_hand():
    from sparsity_viz.regularizers import GroupLasso

    # rows of fc1 (fan-in 2): norms 5 and 0.1; sqrt(2) * lr * lambda = sqrt(2) * 0.1 = 0.1414
    model = _mlp([[[3.0, 4.0], [0.06, 0.08]], [[1.0, 1.0]]])
    reg = GroupLasso(1.0)
    assert float(reg.penalty(model).detach()) == pytest.approx(math.sqrt(2) * (5.0 + 0.1))
    reg.prox(model, lr=0.1)
    t = 0.1 * math.sqrt(2)
    torch.testing.assert_close(model.fc1.weight[0], torch.tensor([3.0, 4.0]) * (1 - t / 5.0))
    assert model.fc1.weight[1].eq(0).all()  # norm 0.1 < threshold: the whole neuron is removed
    assert model.fc2.weight.tolist() == [[1.0, 1.0]]  # the classifier is not a group


# --- the run contract: one-shot and scheduled strategies ----------------------------------


@pytest.fixture(scope="module")
def moons():
    return load_dataset("moons")


def _same_state(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def _epoch_numbers(history) -> list[dict]:
    return [{k: v for k, v in dataclasses.asdict(h).items() if k != "seconds"} for h in history]


@pytest.mark.parametrize("name", one_shot_strategy_names())
def test_one_shot_run_without_epochs_equals_prune(name, moons):
    model = build_model("moons_mlp", seed=0)
    strategy = get_strategy(name, seed=1)
    config = TrainConfig(epochs=0)
    result = strategy.run(model, moons, 0.5, config)
    batch = data_batch(moons, seed=1) if strategy.needs_data else None
    pruned = prune(model, get_strategy(name, seed=1), 0.5, batch=batch)
    assert result.masks.keys() == pruned.masks.keys()
    assert all(torch.equal(result.masks[n], pruned.masks[n]) for n in pruned.masks)
    assert _same_state(result.model, pruned.model)
    assert result.history == [] and not result.stopped and result.schedule == [(0, 0.5)]
    assert all(torch.equal(m, result.masks[n]) for n, m in result.timeline.mask_at(0).items())
    assert strategy.training_epochs(0.5, config) == 0


def test_one_shot_run_fine_tunes_with_the_masks_held(digits):
    model = build_model("digits_mlp", seed=0)
    config = TrainConfig(epochs=2, lr=3e-3)
    result = get_strategy("magnitude").run(model, digits, 0.8, config)
    pruned = prune(model, "magnitude", 0.8)
    expected = train(pruned.model, digits, config, masks=pruned.masks)
    assert _same_state(result.model, expected.model)
    assert _epoch_numbers(result.history) == _epoch_numbers(expected.history)
    assert get_strategy("magnitude").training_epochs(0.8, config) == 2


SCHEDULED_SCOPES = [(n, s) for n in scheduled_strategy_names() for s in STRATEGIES[n].scopes]


@pytest.mark.parametrize("epochs", [0, 1])
@pytest.mark.parametrize(("name", "scope"), SCHEDULED_SCOPES, ids=[f"{n}-{s}" for n, s in SCHEDULED_SCOPES])
def test_scheduled_run_reaches_exactly_the_target(name, scope, epochs, moons):
    model = build_model("moons_mlp", seed=0)
    strategy = get_strategy(name, scope=scope)
    fractions = []
    result = strategy.run(model, moons, 0.7, TrainConfig(epochs=epochs, lr=1e-2), progress=fractions.append)
    expected = strategy.expected_zeros(model, 0.7)
    zeros = {n: int((~m).sum()) for n, m in result.masks.items()}
    assert (zeros if isinstance(expected, dict) else sum(zeros.values())) == expected
    for n, p in result.model.named_parameters():
        if n in result.masks:
            assert torch.all(p[~result.masks[n]] == 0), n
    assert not result.stopped
    assert fractions == sorted(fractions) and (not fractions or fractions[-1] == pytest.approx(1.0))
    rounds = strategy.rounds_for(0.7) if name == "iterative" else 0
    assert strategy.training_epochs(0.7, TrainConfig(epochs=epochs)) == (rounds + 1) * epochs


def test_imp_training_epochs_count_every_training():
    config = TrainConfig(epochs=2)
    assert get_strategy("iterative").rounds_for(0.7) == 6
    assert get_strategy("iterative").training_epochs(0.7, config) == 7 * 2
    assert get_strategy("iterative", control="reinit").training_epochs(0.7, config) == (1 + 2 * 6) * 2
    assert get_strategy("gradual").training_epochs(0.7, config) == 2


@pytest.mark.parametrize("name", ["gradual", "iterative"])
def test_gradual_and_iterative_are_not_one_shot_magnitude(name, digits):
    model, _ = load_sample("digits_mlp")
    config = TrainConfig(epochs=1, lr=3e-4)
    one_shot = get_strategy("magnitude").run(model, digits, 0.8, config)
    scheduled = get_strategy(name).run(model, digits, 0.8, config)
    assert {n: int((~m).sum()) for n, m in scheduled.masks.items()} == \
        {n: int((~m).sum()) for n, m in one_shot.masks.items()}  # the same budget ...
    assert any(not torch.equal(scheduled.masks[n], one_shot.masks[n]) for n in one_shot.masks)  # ... other weights
    assert not _same_state(scheduled.model, one_shot.model)
    losses = [evaluate_dataset(r.model, digits).loss for r in (one_shot, scheduled)]
    assert losses[0] != losses[1]


def test_iterative_reaches_100_percent_with_one_last_round():
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.masks import sparsity as masks_sparsity
    from sparsity_viz.training import TrainConfig

    strategy = get_strategy("iterative")
    assert strategy.rounds_for(1.0) == strategy.rounds_for(0.99) + 1
    model, _ = load_sample("moons_mlp")
    result = strategy.run(model, load_dataset("moons"), 1.0, TrainConfig(epochs=1))
    assert masks_sparsity(result.masks) == 1.0
    assert all(not m.any() for m in result.masks.values())
