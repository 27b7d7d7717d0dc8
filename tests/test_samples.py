"""Bundled sample models: cards match checkpoints, accuracies are what the cards say, recipes reproduce."""

from __future__ import annotations

import json

import pytest
import torch

from sparsity_viz.checkpoints import SAMPLE_DIR, available_samples, load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.models import MODELS
from sparsity_viz.samples import RECIPES, train_sample
from sparsity_viz.training import evaluate_dataset

TARGETS = {"moons_mlp": 0.97, "circles_mlp": 0.97, "xor_mlp": 0.97, "spiral_mlp": 0.97,
           "digits_mlp": 0.96, "lenet300": 0.94, "lenet5": 0.97}


def test_every_registered_model_is_bundled():
    assert available_samples() == list(MODELS)
    assert set(RECIPES) == set(MODELS)


@pytest.mark.parametrize("name", list(MODELS))
def test_card_accuracy_is_reproduced_and_meets_target(name):
    model, card = load_sample(name)
    data = load_dataset(card["dataset"]["name"], seed=card["dataset"]["seed"])
    accuracy = evaluate_dataset(model, data).accuracy
    assert accuracy == pytest.approx(card["test_accuracy"], abs=1e-4)
    assert accuracy >= TARGETS[name]
    assert card["torch_version"].startswith("2.13.0")
    assert card["parameters"] == sum(p.numel() for p in model.parameters())


def test_retraining_reproduces_the_bundled_weights(tmp_path):
    card = train_sample("digits_mlp", tmp_path)
    fresh, _ = load_sample("digits_mlp", tmp_path)
    bundled, bundled_card = load_sample("digits_mlp")
    for (k, a), b in zip(fresh.state_dict().items(), bundled.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"{k} differs from the committed checkpoint")
    assert card["test_accuracy"] == bundled_card["test_accuracy"]
    assert json.loads((tmp_path / "digits_mlp.json").read_text())["recipe"] == bundled_card["recipe"]


def test_sample_files_are_plain_safetensors():
    for name in MODELS:
        head = (SAMPLE_DIR / f"{name}.safetensors").read_bytes()[:8]
        header_len = int.from_bytes(head, "little")
        assert 0 < header_len < 100_000, "a safetensors header, not a pickle"


def test_train_samples_cli_trains_a_named_moe_sample(tmp_path, capsys):
    from sparsity_viz.checkpoints import available_moe_samples
    from sparsity_viz.cli import main
    from sparsity_viz.samples import SAMPLE_NAMES

    assert SAMPLE_NAMES == [*MODELS, "moe_moons", "moe_mnist"]  # train-samples without --only trains all nine
    assert main(["train-samples", "--only", "moe_moons", "--dir", str(tmp_path), "--threads", "1"]) == 0
    assert "moe_moons    test accuracy" in capsys.readouterr().out
    assert available_moe_samples(tmp_path) == ["moe_moons"] and available_samples(tmp_path) == []
    assert json.loads((tmp_path / "moe_moons.json").read_text())["architecture"]["kind"] == "moe"
