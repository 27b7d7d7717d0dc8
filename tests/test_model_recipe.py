"""model_recipe: a trained model's seeded recipe survives its URL text and rebuilds the same weights."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from torch.nn.utils import prune as torch_prune

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.masks import masked_copy, masks_from_zeros
from sparsity_viz.model_recipe import MAX_EPOCHS, ModelRecipe, TrainStep, rebuild
from sparsity_viz.pruning import prune
from sparsity_viz.session import PruneConfig
from sparsity_viz.training import TrainConfig, train


@pytest.fixture(scope="module")
def moons():
    model, _ = load_sample("moons_mlp")
    return model, load_dataset("moons")


FINETUNE = TrainStep(TrainConfig(epochs=2, lr=1.2e-3 / 10, dropout=0.2, seed=3))  # lr: not exact in decimal
L1_FROM_DENSE = TrainStep(TrainConfig(epochs=2, lr=0.05, optimizer="sgd", regularizer="l1", strength=3e-2,
                                      zero_threshold=0.01), start="dense")


def test_text_round_trip_is_exact():
    recipe = ModelRecipe().then_prune(PruneConfig("random", "global", 0.07, seed=2)).then_train(FINETUNE)
    recipe = recipe.then_train(TrainStep(TrainConfig(epochs=1, lr=3e-5, train_fraction=0.25)))
    text = recipe.to_text()
    assert text.startswith("prune:strategy=random,scope=global,sparsity=7,seed=2;train:start=current,epochs=2,")
    back = ModelRecipe.from_text(text)
    assert back == recipe
    assert back.steps[0].config.lr == 1.2e-3 / 10  # bit-exact, so the rebuilt training is the same
    assert ModelRecipe().to_text() == "" and ModelRecipe.from_text("") == ModelRecipe()


def test_training_from_dense_starts_over_and_pruning_drops_training():
    pruned = ModelRecipe().then_prune(PruneConfig(sparsity=0.9)).then_train(FINETUNE)
    assert pruned.then_train(L1_FROM_DENSE) == ModelRecipe(steps=(L1_FROM_DENSE,))
    assert pruned.then_prune(PruneConfig(sparsity=0.5)) == ModelRecipe(PruneConfig(sparsity=0.5))
    assert pruned.trained and pruned.epochs == 2 and not ModelRecipe(PruneConfig()).trained
    # the device and eval_train never change the weights: not part of the recipe
    assert TrainStep(replace(FINETUNE.config, device="cpu", eval_train=True)) == FINETUNE


@pytest.mark.parametrize("text, reason", [
    ("shuffle:epochs=2", "Unknown recipe step"),
    ("prune:strategy=nope", "Unknown pruning strategy"),
    ("prune:sparsity=120", "percentage"),
    ("prune:sparsity=abc", "not a number"),
    ("prune:strategy=magnitude,scope=sideways", "not 'sideways'"),
    ("train:epochs=2;prune:sparsity=50", "must come first"),
    ("train:epochs=0", "1 to"),
    (f"train:epochs={MAX_EPOCHS + 1}", "1 to"),
    ("train:epochs=2.5", "not an integer"),
    ("train:lr=-1", r"lr must be in \[0, 10000\], got -1"),
    ("train:lr=0", "Learning rate"),
    ("train:lr=nan", "finite"),
    ("train:optimizer=lbfgs", "Unknown optimizer"),
    ("train:regularizer=l7", "Unknown regulariser"),
    ("train:dropout=1.5", "dropout rate"),
    ("train:start=middle", "starts from"),
    ("train:device=cuda", "Unknown training field"),
    ("train:epochs", "has no value"),
    (";".join(["train:epochs=1"] * 8), "at most"),
    # from a link anyone can send: each of these reached training (an uncaught overflow, or hours of work)
    ("prune:strategy=random,sparsity=50,seed=99999999999999999999999", "seed is a whole number from 0 to 4294967295"),
    ("train:seed=4294967296", "training seed is a whole number from 0 to 4294967295"),
    ("train:lr=1e300", r"lr must be in \[0, 10000\], got 1e\+300"),
    ("train:weight_decay=1e300", r"weight_decay must be in \[0, 1000\]"),
    ("train:strength=-1", r"strength must be in \[0, 1000\], got -1"),
    ("train:batch_size=1", "batch size is 16 to 4096, got 1"),
    # an audit: each step within its limits, six of them kept a server busy for about 2 hours
    (";".join(["train:epochs=200,batch_size=32"] * 3), "add up to 600 epochs at batch 32"),
    ("train:epochs=201,batch_size=16", "1 to 200"),
    (";".join(["train:epochs=150,batch_size=16"] * 2), "add up to 600 epochs at batch 32"),
    # an audit: the unknown step was blamed on its field, an empty name read "Unknown training field(s) .", and a
    # field given twice kept the last silently
    ("foo:bar", "Unknown recipe step 'foo'"),
    ("train:=3", "has no name"),
    ("train:epochs=1,epochs=2", "'epochs' is given twice"),
    # an audit: a scheduled strategy's one-shot masks are plain magnitude's, made under its name
    ("prune:strategy=gradual,sparsity=90", "gradual prunes while it trains, and a prune step prunes once"),
    ("prune:strategy=rigl,sparsity=90", "rigl prunes while it trains"),
])
def test_bad_text_raises_a_clear_value_error(text, reason):
    with pytest.raises(ValueError, match=reason):
        ModelRecipe.from_text(text)


def test_rebuild_equals_the_library_calls_it_names(moons):
    dense, ds = moons
    before = copy.deepcopy(dense.state_dict())
    cfg = PruneConfig("magnitude", "layer", 0.8)
    recipe = ModelRecipe().then_prune(cfg).then_train(FINETUNE)
    fractions = []
    out = rebuild(recipe, dense, ds, device="cpu", progress=lambda f, _t: fractions.append(f))

    # by hand, as the app does it (the app's training also measures the train split: eval_train=True)
    masks = prune(dense, "magnitude", 0.8, scope="layer").masks
    ref = train(masked_copy(dense, masks), ds, replace(FINETUNE.config, device="cpu", eval_train=True), masks=masks)
    for name, tensor in ref.model.state_dict().items():
        torch.testing.assert_close(out.model.state_dict()[name], tensor.cpu(), rtol=0, atol=0)
    assert all(torch.equal(out.masks[k], masks[k]) for k in masks)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "fine" not in out.origin and "magnitude pruning" in out.origin and "dropout 0.2" in out.origin
    for name, tensor in dense.state_dict().items():  # the dense model is untouched
        assert torch.equal(tensor, before[name])

    # the prune step's masks are torch.nn.utils.prune's layer-wise L1 masks
    first = next(m for m in dense.modules() if isinstance(m, torch.nn.Linear))
    ref_layer = copy.deepcopy(first)
    torch_prune.l1_unstructured(ref_layer, "weight", amount=0.8)
    name = next(k for k, v in masks.items() if v.shape == first.weight.shape)
    assert torch.equal(masks[name], ref_layer.weight_mask.bool())


def test_rebuild_twice_is_bit_identical_and_l1_from_dense_makes_zeros(moons):
    dense, ds = moons
    recipe = ModelRecipe(PruneConfig(sparsity=0.5)).then_train(FINETUNE).then_train(L1_FROM_DENSE)
    a, b = (rebuild(recipe, dense, ds, device="cpu") for _ in range(2))
    for name, tensor in a.model.state_dict().items():
        assert torch.equal(tensor, b.model.state_dict()[name])
    zeros = masks_from_zeros(a.model)
    assert all(torch.equal(a.masks[k], zeros[k]) for k in zeros)
    assert sum(int((~m).sum()) for m in zeros.values()) > 0  # L1 with a threshold made exact zeros


def test_rebuild_stops_when_asked(moons):
    dense, ds = moons
    assert rebuild(ModelRecipe(steps=(L1_FROM_DENSE,)), dense, ds, device="cpu", stop=lambda: True) is None


def test_the_live_slider_refuses_a_scheduled_strategy():
    """The slider's pruner gave gradual / iterative / SET / RigL the masks of magnitude pruning (an audit)."""
    from sparsity_viz.backend.live import live_pruner

    model, _ = load_sample("digits_mlp")
    with pytest.raises(ValueError, match="gradual prunes while it trains .* a live slider"):
        live_pruner(model, "gradual")
    assert live_pruner(model, "magnitude") is not None
