"""Classroom recipes, inference and export helpers the app's pages start from (moved out of the app)."""

from __future__ import annotations

import io

import torch

from sparsity_viz.exports import export_stem, torch_prune_bytes
from sparsity_viz.inference import predict_classes
from sparsity_viz.models import build_model
from sparsity_viz.pruning import prune
from sparsity_viz.recipes import (
    DEFAULT_LR,
    L1_TOY_RECIPE,
    card_lr,
    finetune_config,
    finetune_lr,
    l1_recipe,
    lottery_recipe,
    schedule_epochs,
)


def test_finetune_is_a_tenth_of_the_cards_learning_rate():
    card = {"recipe": {"lr": 3e-3}}
    assert card_lr(card) == 3e-3 and finetune_lr(card) == 3e-3 / 10
    assert card_lr({}) == card_lr(None) == card_lr({"recipe": "odd"}) == DEFAULT_LR
    cfg = finetune_config(card, 2)
    assert (cfg.epochs, cfg.lr, cfg.optimizer, cfg.batch_size) == (2, 3e-3 / 10, "adam", 64)
    assert finetune_config(card, 1, device="cpu").device == "cpu"


def test_per_model_recipes():
    assert l1_recipe("lenet300").strength == 3e-3 and l1_recipe("moons_mlp") == L1_TOY_RECIPE
    assert (lottery_recipe("lenet5").max_rounds, lottery_recipe("lenet5").max_epochs) == (3, 2)
    assert lottery_recipe("lenet300").rounds == 8 and lottery_recipe("spiral_mlp").lr == 1e-2
    assert (schedule_epochs("moons"), schedule_epochs("digits"), schedule_epochs("mnist5k")) == (16, 5, 3)


def test_torch_prune_bytes_load_into_torch_prune_form():
    pruned = prune(build_model("moons_mlp", seed=0), "magnitude", 0.5)
    state = torch.load(io.BytesIO(torch_prune_bytes(pruned.model, pruned.masks)), weights_only=True)
    assert torch.equal(state["fc1.weight_mask"].bool(), pruned.masks["fc1.weight"])
    assert "fc1.weight_orig" in state
    assert export_stem("lenet300", 0.904) == "lenet300_90pct"


def test_predict_classes_is_the_argmax_without_gradients():
    model = build_model("moons_mlp", seed=0)
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    got = predict_classes(model, x)
    assert got == model(x).argmax(1).tolist() and all(isinstance(c, int) for c in got)
