"""The bundled MoE checkpoints: they load without pickle, fit, and their cards' numbers are recomputed here."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from sparsity_viz.checkpoints import (SAMPLE_DIR, CheckpointError, available_moe_samples, available_samples,
                                      load_sample, state_dict_to_bytes)
from sparsity_viz.data import load_dataset
from sparsity_viz.models import MODELS
from sparsity_viz.moe import MOE_ARCHITECTURES, MoEMLP, active_parameters, expert_report, total_parameters
from sparsity_viz.samples import MOE_RECIPES, SAMPLE_NAMES, train_moe_sample

NAMES = list(MOE_ARCHITECTURES)


def test_both_moe_models_are_bundled_and_kept_out_of_the_chain_models():
    assert available_moe_samples() == NAMES == list(MOE_RECIPES)
    assert not set(NAMES) & set(MODELS) and not set(NAMES) & set(available_samples())
    assert SAMPLE_NAMES[-2:] == NAMES  # train-samples trains them too


@pytest.fixture(scope="module", params=NAMES)
def bundled(request):
    model, card = load_sample(request.param)
    return request.param, model, card, load_dataset(card["dataset"]["name"], seed=card["dataset"]["seed"])


def test_card_numbers_equal_recomputation(bundled):
    name, model, card, data = bundled
    spec = MOE_ARCHITECTURES[name]
    assert isinstance(model, MoEMLP) and not model.training
    assert card["architecture"] == {"kind": "moe", "kwargs": spec.kwargs}
    assert (model.num_experts, model.top_k, model.expert_hidden) == (spec.num_experts, spec.top_k, spec.expert_hidden)
    report = expert_report(model, data)
    assert report["accuracy"] == pytest.approx(card["test_accuracy"], abs=1e-4)
    assert report["load"] == card["load"] and sum(card["load"]) == card["dataset"]["test_size"] * spec.top_k
    assert report["balance_loss"] == pytest.approx(card["balance_loss"], abs=1e-4)
    assert card["parameters"] == total_parameters(model) == sum(p.numel() for p in model.parameters())
    assert card["active_parameters"] == active_parameters(model)
    recipe = MOE_RECIPES[name]
    assert card["recipe"]["balance_weight"] == recipe.balance_weight
    assert card["recipe"]["epochs"] == recipe.config.epochs and card["recipe"]["lr"] == recipe.config.lr
    assert len(card["balance_loss_per_epoch"]) == recipe.config.epochs
    assert card["train_seconds"] > 0 and card["torch_version"].startswith("2.13.0")


def test_bundled_models_learned_and_spread_their_load(bundled):
    name, model, card, data = bundled
    assert card["test_accuracy"] >= {"moe_moons": 0.97, "moe_mnist": 0.9}[name]
    assert min(card["load"]) > 0  # the balance loss kept every expert in use
    assert card["balance_loss"] < 1.2  # near uniform (1.0), far from one expert (4.0)


def test_retraining_the_moons_recipe_reproduces_the_bundled_weights(tmp_path):
    card = train_moe_sample("moe_moons", tmp_path)
    fresh, _ = load_sample("moe_moons", tmp_path)
    bundled, bundled_card = load_sample("moe_moons")
    for (k, a), b in zip(fresh.state_dict().items(), bundled.state_dict().values()):
        torch.testing.assert_close(a, b, msg=f"{k} differs from the bundled checkpoint")
    for key in ("test_accuracy", "load", "balance_loss", "recipe", "architecture", "balance_loss_per_epoch"):
        assert card[key] == bundled_card[key], key


def _copy(tmp_path, name="moe_moons"):
    for suffix in (".json", ".safetensors"):
        shutil.copy(SAMPLE_DIR / f"{name}{suffix}", tmp_path / f"{name}{suffix}")
    return json.loads((tmp_path / f"{name}.json").read_text())


def _write_card(tmp_path, card, name="moe_moons"):
    (tmp_path / f"{name}.json").write_text(json.dumps(card))


def test_a_card_with_the_wrong_shape_arguments_is_refused_by_check_fits(tmp_path):
    card = _copy(tmp_path)
    card["architecture"]["kwargs"]["expert_hidden"] = [16]
    _write_card(tmp_path, card)
    with pytest.raises(CheckpointError, match=r"does not fit MoEMLP: shape mismatch experts\.0\.fc1\.weight: "
                                              r"checkpoint \(8, 2\) vs model \(16, 2\)"):
        load_sample("moe_moons", tmp_path)


def test_a_card_with_more_experts_names_the_missing_ones(tmp_path):
    card = _copy(tmp_path)
    card["architecture"]["kwargs"]["num_experts"] = 5
    _write_card(tmp_path, card)
    with pytest.raises(CheckpointError, match=r"missing experts\.4\.fc1\.weight"):
        load_sample("moe_moons", tmp_path)


@pytest.mark.parametrize("edit,needle", [
    (lambda a: a["kwargs"].update(bogus=1), "unexpected keyword argument 'bogus'"),
    (lambda a: a["kwargs"].update(num_experts=1), "at least 2 experts"),
    (lambda a: a["kwargs"].update(top_k=9), "top_k must be between 1 and num_experts"),
    (lambda a: a.update(kind="transformer"), "Unknown architecture 'transformer'"),
    (lambda a: a.pop("kwargs"), "not a usable model card: architecture must be a JSON object with a string kind "
                                "and an object kwargs"),
])
def test_a_hostile_card_is_one_checkpoint_error(tmp_path, edit, needle):
    card = _copy(tmp_path)
    edit(card["architecture"])
    _write_card(tmp_path, card)
    with pytest.raises(CheckpointError) as info:
        load_sample("moe_moons", tmp_path)
    message = str(info.value)
    prefix = "moe_moons.json: " + ("" if "usable" in needle else "cannot build its architecture")
    assert message.startswith(prefix) and needle in message, message


def test_a_state_dict_of_the_wrong_shape_is_refused(tmp_path):
    _copy(tmp_path)
    wrong = MOE_ARCHITECTURES["moe_moons"]
    other = MoEMLP(wrong.in_features, (4,), wrong.num_classes, wrong.num_experts, wrong.top_k)
    (tmp_path / "moe_moons.safetensors").write_bytes(state_dict_to_bytes(other))
    with pytest.raises(CheckpointError, match=r"moe_moons\.safetensors does not fit MoEMLP: shape mismatch "
                                              r"experts\.0\.fc1\.weight: checkpoint \(4, 2\) vs model \(8, 2\)"):
        load_sample("moe_moons", tmp_path)


def test_the_files_are_plain_safetensors_not_pickles():
    for name in NAMES:
        head = (SAMPLE_DIR / f"{name}.safetensors").read_bytes()[:8]
        assert 0 < int.from_bytes(head, "little") < 100_000, "a safetensors header, not a pickle"


def test_docs_table_and_pruning_claims_are_the_cards_and_the_library():
    from pathlib import Path

    from sparsity_viz.experts_cli import experts_result

    doc = (Path(__file__).resolve().parents[2] / "docs" / "moe.md").read_text()
    table = doc.split("<!-- moe-cards:begin -->")[1].split("<!-- moe-cards:end -->")[0]
    for name in NAMES:
        _, card = load_sample(name)
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} "))
        cells = [c.strip() for c in row.strip("|").split("|")]
        recipe = card["recipe"]
        assert cells[1].startswith(f"{recipe['epochs']} epochs") and f"batch {recipe['batch_size']}" in cells[1]
        assert f"weight {recipe['balance_weight']:g}" in cells[1]
        assert cells[2] == f"{100 * card['test_accuracy']:.1f} %"
        assert cells[3] == " / ".join(map(str, card["load"]))
        assert cells[4] == f"{card['balance_loss']:.2f}" and cells[5] == f"{card['train_seconds']:.1f} s"
        pruned = experts_result(name, prune_experts=[0])["accuracy"]
        assert f"from {100 * card['test_accuracy']:.1f} % to {100 * pruned:.1f} %" in " ".join(doc.split())
