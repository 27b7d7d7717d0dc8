"""Lessons: the registry's shape, and every reveal's numbers against references computed here.

References: masks from ``torch.nn.utils.prune`` (l1_unstructured per layer, global_unstructured), ReLU outputs
and fan-out counted on the tensors, Jaccard from the masks' set operations, L1 zeros counted on the trained
weights, the lottery rerun from its config. Each reveal is computed once per module (the same call the app
makes), then compared; its text must show the numbers it names.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.utils.prune as tprune

from sparsity_viz.checkpoints import available_samples, load_sample
from sparsity_viz.data import data_batch, load_dataset
from sparsity_viz.lessons import LESSONS, AppState, Lesson, LessonContext, Step, first_steps, get_lesson
from sparsity_viz.lessons import l1_zeros, lottery_tickets, survivors
from sparsity_viz.lessons.base import pct
from sparsity_viz.lottery import METHODS, LotteryConfig, ticket_advantage
from sparsity_viz.models import prunable_parameters
from sparsity_viz.pruning import STRATEGIES, prune
from sparsity_viz.quantization.model import quantize_model
from sparsity_viz.training import evaluate_dataset, train

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("magnitude_vs_random", "layer_vs_global", "l1_zeros", "survivors", "lottery_tickets",
            "activations_quantization")


@pytest.fixture(scope="module")
def ctxs():
    cache = {}

    def get(name: str) -> LessonContext:
        if name not in cache:
            model, card = load_sample(name)
            cache[name] = LessonContext(model, load_dataset(card["dataset"]["name"]), card, name)
        return cache[name]
    return get


@pytest.fixture(scope="module")
def reveal(ctxs):
    """``reveal(lesson, step)``: the step's reveal, computed once."""
    done = {}

    def get(lesson: str, index: int):
        if (lesson, index) not in done:
            step = get_lesson(lesson).step(index)
            ctx = ctxs(step.state.model)
            before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
            done[lesson, index] = step.reveal(ctx)
            after = ctx.model.state_dict()
            assert all(torch.equal(before[k], after[k]) for k in before), "a reveal modified the model"
        return done[lesson, index]
    return get


def acc(model, ds) -> float:
    return float(evaluate_dataset(model, ds, device="cpu").accuracy)


def torch_pruned(model, amount: float, scope: str):
    """``model`` pruned by torch.nn.utils.prune's magnitude pruning (per layer or global) and made permanent."""
    work = copy.deepcopy(model)
    params = [(work.get_submodule(n.rsplit(".", 1)[0]), "weight") for n in prunable_parameters(work)]
    if scope == "layer":
        for module, name in params:
            tprune.l1_unstructured(module, name, amount=amount)
    else:
        tprune.global_unstructured(params, pruning_method=tprune.L1Unstructured, amount=amount)
    for module, name in params:
        tprune.remove(module, name)
    return work


# --- the registry ---------------------------------------------------------------------------------------


def test_the_six_lessons_are_registered_in_order_with_valid_states():
    assert tuple(LESSONS)[:6] == REQUIRED
    views = {p.stem for p in (ROOT / "views").glob("*.py")}
    for lesson in LESSONS.values():
        assert isinstance(lesson, Lesson) and lesson.title and lesson.summary and lesson.steps
        for step in lesson.steps:
            assert isinstance(step, Step) and isinstance(step.state, AppState)
            assert step.question.strip() and step.state.page in views, step.state.page
            assert step.state.model in available_samples()
            if step.state.prune is not None:
                cls = STRATEGIES[step.state.prune.strategy]
                assert cls.kind == "one_shot" and step.state.prune.scope in cls.scopes


def test_unknown_lesson_or_step_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown lesson 'nope'"):
        get_lesson("nope")
    with pytest.raises(ValueError, match="has steps 1..3, not 4"):
        get_lesson("magnitude_vs_random").step(3)
    with pytest.raises(ValueError, match="no steps"):
        Lesson("empty", "Empty", "", ())


# --- magnitude vs random, layer-wise vs global ----------------------------------------------------------


def test_magnitude_and_random_numbers_match_torch_prune_and_evaluate(ctxs, reveal):
    ctx = ctxs("lenet300")
    late, rnd = reveal("magnitude_vs_random", 1), reveal("magnitude_vs_random", 2)
    assert late.numbers["dense"] == pytest.approx(acc(ctx.model, ctx.dataset))
    for level in (50, 90, 99):
        expected = acc(torch_pruned(ctx.model, level / 100, "layer"), ctx.dataset)
        assert late.numbers[f"magnitude_{level}"] == pytest.approx(expected)
        assert pct(expected) in late.text
    random90 = acc(prune(ctx.model, "random", 0.9, seed=0).model, ctx.dataset)
    assert rnd.numbers["random_90"] == pytest.approx(random90) and pct(random90) in rnd.text
    assert rnd.numbers["gap"] == pytest.approx(late.numbers["magnitude_90"] - random90)
    assert f"{abs(100 * rnd.numbers['gap']):.1f} points" in rnd.text
    assert len(rnd.table) == 6 and set(rnd.table["strategy"]) == {"magnitude", "random"}
    assert reveal("magnitude_vs_random", 0).numbers["magnitude_50"] == late.numbers["magnitude_50"]


def test_global_numbers_match_torch_global_unstructured(ctxs, reveal):
    ctx = ctxs("lenet300")
    r = reveal("layer_vs_global", 1)
    ref = torch_pruned(ctx.model, 0.9, "global")
    assert r.numbers["global_accuracy"] == pytest.approx(acc(ref, ctx.dataset))
    shares = {n: float((p == 0).double().mean()) for n, p in prunable_parameters(ref).items()}
    assert r.numbers["least_pruned"] == pytest.approx(min(shares.values()), abs=1e-6)
    assert r.numbers["most_pruned"] == pytest.approx(max(shares.values()), abs=1e-6)
    assert pct(r.numbers["global_accuracy"]) in r.text and pct(r.numbers["layer_accuracy"]) in r.text
    layer = reveal("layer_vs_global", 0)
    assert layer.numbers["layer_accuracy"] == r.numbers["layer_accuracy"]
    assert layer.numbers["smallest_weights"] == min(p.numel() for p in prunable_parameters(ctx.model).values())


# --- L1 -----------------------------------------------------------------------------------------------


def test_l1_zeros_are_counted_on_the_trained_weights(ctxs, reveal):
    ctx = ctxs("lenet300")
    r = reveal("l1_zeros", 1)
    model = copy.deepcopy(ctx.model).requires_grad_(True)
    trained = train(model, ctx.dataset, l1_zeros.train_config(l1_zeros.RECIPE.strength)).model
    weights = list(prunable_parameters(trained).values())
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert r.numbers["zeros"] == zeros and r.numbers["weights"] == sum(w.numel() for w in weights)
    assert f"{zeros:,}" in r.text and pct(zeros / r.numbers["weights"]) in r.text
    plain = reveal("l1_zeros", 0)
    assert f"{int(plain.numbers['zeros']):,}" in plain.text
    assert r.numbers["zeros"] > plain.numbers["zeros"], "the L1 lesson must show L1 making more exact zeros"


def test_the_regularize_settings_are_what_the_lesson_trains_with():
    cfg = l1_zeros.train_config(l1_zeros.RECIPE.strength)
    s = l1_zeros.regularize_settings(l1_zeros.RECIPE.strength)
    assert (cfg.epochs, cfg.lr, cfg.regularizer, cfg.strength, cfg.zero_threshold) == (
        s["epochs"], s["lr"], "l1", s["strength"], 0.0)
    assert l1_zeros.train_config(0.0).regularizer is None


# --- which connections survive ------------------------------------------------------------------------


def test_fanout_numbers_are_column_sums_of_the_torch_mask(ctxs, reveal):
    ctx = ctxs("lenet300")
    r = reveal("survivors", 0)
    ref = torch_pruned(ctx.model, 0.9, "layer")
    fan = (ref.fc1.weight != 0).sum(0).reshape(28, 28)  # surviving connections leaving each pixel
    ring = torch.zeros(28, 28, dtype=torch.bool)
    ring[:4], ring[-4:], ring[:, :4], ring[:, -4:] = True, True, True, True
    assert r.numbers["border_mean"] == pytest.approx(float(fan[ring].double().mean()))
    assert r.numbers["centre_mean"] == pytest.approx(float(fan[~ring].double().mean()))
    assert r.numbers["empty_pixels"] == int((fan == 0).sum())
    assert r.numbers["empty_border"] == int(((fan == 0) & ring).sum())
    assert r.numbers["dense_fanout"] == ctx.model.fc1.weight.shape[0]
    assert f"{r.numbers['border_mean']:.1f}" in r.text and f"{r.numbers['centre_mean']:.1f}" in r.text


def test_overlap_is_the_jaccard_of_the_two_masks(ctxs, reveal):
    ctx = ctxs("lenet300")
    r = reveal("survivors", 1)
    batch = data_batch(ctx.dataset, seed=0)
    (a, sa), (b, sb) = survivors.SURVIVAL_A, survivors.SURVIVAL_B
    ma = prune(ctx.model, a, survivors.SURVIVAL_LEVEL, seed=sa).masks
    mb = prune(ctx.model, b, survivors.SURVIVAL_LEVEL, seed=sb, batch=batch).masks
    both = sum(int((ma[n] & mb[n]).sum()) for n in ma)
    either = sum(int((ma[n] | mb[n]).sum()) for n in ma)
    assert r.numbers["both"] == both and r.numbers["jaccard"] == pytest.approx(both / either)
    total = sum(m.numel() for m in ma.values())
    da, db = sum(int(m.sum()) for m in ma.values()) / total, sum(int(m.sum()) for m in mb.values()) / total
    assert r.numbers["chance"] == pytest.approx(da * db / (da + db - da * db))
    assert pct(r.numbers["jaccard"]) in r.text and pct(r.numbers["chance"]) in r.text


# --- lottery tickets ------------------------------------------------------------------------------------


def test_lottery_numbers_are_the_last_round_of_the_experiment(ctxs, reveal):
    ctx = ctxs(lottery_tickets.MODEL)
    r = reveal("lottery_tickets", 0)
    frame = r.table  # the experiment's rows: method, round, sparsity, best_accuracy (rerunning it doubles the cost)
    assert len(frame) == (1 + lottery_tickets.RECIPE.rounds) * 3 and set(frame["method"]) == set(METHODS)
    last = frame[frame["round"] == frame["round"].max()].set_index("method")["best_accuracy"]
    assert r.numbers["ticket"] == pytest.approx(last["imp_rewind"])
    assert r.numbers["reinit"] == pytest.approx(last["reinit"])
    assert r.numbers["random_mask"] == pytest.approx(last["random_mask"])
    adv = ticket_advantage(frame, low=0.5, high=1.0, metric="best_accuracy").iloc[-1]
    assert r.numbers["sparsity"] == pytest.approx(adv["sparsity"])
    for key in ("ticket", "reinit", "random_mask", "sparsity"):
        assert pct(r.numbers[key]) in r.text
    # the page's defaults for this model run exactly this configuration
    recipe = lottery_tickets.RECIPE
    assert lottery_tickets.config() == LotteryConfig(rounds=recipe.rounds, epochs=recipe.epochs, lr=recipe.lr,
                                                     rewind_step=0, seed=0)
    assert lottery_tickets.PAGE_SETTINGS == {"rounds": recipe.rounds, "epochs": recipe.epochs, "rewind": 0, "seed": 0,
                                             "metric": "best_accuracy"}


# --- sparse activations and quantization -----------------------------------------------------------------


def _relu_zero_share(model, x) -> float:
    with torch.no_grad():
        h1 = torch.relu(model.fc1(x.flatten(1)))
        h2 = torch.relu(model.fc2(h1))
    return float(((h1 == 0).sum() + (h2 == 0).sum()) / (h1.numel() + h2.numel()))


def test_activation_zero_shares_are_counted_on_the_relu_outputs(ctxs, reveal):
    ctx = ctxs("lenet300")
    dense, pruned = reveal("activations_quantization", 0), reveal("activations_quantization", 1)
    assert dense.numbers["zero_fraction"] == pytest.approx(_relu_zero_share(ctx.model, ctx.dataset.x_test))
    ref = torch_pruned(ctx.model, 0.9, "global")
    assert pruned.numbers["pruned"] == pytest.approx(_relu_zero_share(ref, ctx.dataset.x_test))
    assert pct(dense.numbers["zero_fraction"]) in dense.text and pct(pruned.numbers["pruned"]) in pruned.text


def test_quantized_zeros_and_accuracy(ctxs, reveal):
    ctx = ctxs("lenet300")
    r = reveal("activations_quantization", 2)
    ref = torch_pruned(ctx.model, 0.9, "global")
    masks = {n: p != 0 for n, p in prunable_parameters(ref).items()}
    q = quantize_model(ref, "uniform_symmetric", 4, masks=masks).model
    weights = list(prunable_parameters(q).values())
    assert r.numbers["zeros_after"] == sum(int((w == 0).sum()) for w in weights)
    assert r.numbers["zeros_before"] == sum(int((~m).sum()) for m in masks.values())
    assert r.numbers["revived"] == 0  # a pruned weight stays 0
    assert r.numbers["after"] == pytest.approx(acc(q, ctx.dataset))
    assert r.numbers["before"] == pytest.approx(acc(ref, ctx.dataset))
    assert f"{int(r.numbers['zeros_after']):,}" in r.text and pct(r.numbers["after"]) in r.text


# --- the Home page's first steps ------------------------------------------------------------------------


def test_home_first_steps_state_the_measured_numbers(ctxs, reveal):
    ctx = ctxs("lenet300")
    r = first_steps(ctx)
    late, fan = reveal("magnitude_vs_random", 1), reveal("survivors", 0)
    for level in (50, 90, 99):
        assert r.numbers[f"magnitude_{level}"] == late.numbers[f"magnitude_{level}"]
        assert pct(r.numbers[f"magnitude_{level}"]) in r.text
    assert r.numbers["random_90"] == reveal("magnitude_vs_random", 2).numbers["random_90"]
    assert pct(r.numbers["dense"]) in r.text and pct(r.numbers["random_90"]) in r.text
    assert r.numbers["border_mean"] == fan.numbers["border_mean"]
    assert "barely moves" not in r.text


def test_the_number_of_lessons_the_texts_name_is_the_registry_s():
    """'six guided lessons' in Home, the README and docs/lessons.md: a seventh lesson must change the words too."""
    words = {4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine", 10: "ten"}
    word = words[len(LESSONS)]
    assert f"**Lessons**: {word} guided lessons" in (ROOT / "sparsity_viz/lessons/home.py").read_text()
    assert f"| Lessons | {word} guided lessons" in (ROOT / "README.md").read_text()
    assert f"walks a class through {word} short lessons" in (ROOT / "docs/lessons.md").read_text()
