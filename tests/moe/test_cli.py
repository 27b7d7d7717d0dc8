"""``python -m sparsity_viz experts``: the JSON equals the library; bad input is one line, exit 2."""

import json

import pytest

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.cli import main
from sparsity_viz.data import load_dataset
from sparsity_viz.experts_cli import experts_result
from sparsity_viz.moe import expert_report, get_moe_spec, prune_moe, with_top_k
from sparsity_viz.samples import MOE_RECIPES


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_default_is_the_bundled_checkpoint(capsys):
    out = _json(capsys, ["experts", "--model", "moe_moons", "--json"])
    model, card = load_sample("moe_moons")
    expected = expert_report(model, load_dataset("moons"))
    assert {k: out[k] for k in expected} == json.loads(json.dumps(expected))
    assert out["source"] == "bundled checkpoint" and out["epochs"] is None
    assert out["accuracy"] == pytest.approx(card["test_accuracy"], abs=1e-4)
    assert out["load"] == card["load"]
    table = out["routing_table"]
    assert len(table) == 2 and len(table[0]) == 4
    assert sum(map(sum, table)) == out["inputs"] * out["top_k"] == sum(out["load"])
    assert out["active_parameters"] < out["total_parameters"]


def test_epochs_0_is_the_seeded_untrained_init(capsys):
    out = _json(capsys, ["experts", "--model", "moe_moons", "--epochs", "0", "--json"])
    expected = expert_report(get_moe_spec("moe_moons").build(0), load_dataset("moons"))
    assert {k: out[k] for k in expected} == json.loads(json.dumps(expected))
    assert out["balance_weight"] is None


def test_json_equals_the_library_trained_top2_with_a_pruned_expert(capsys):
    argv = ["experts", "--model", "moe_moons", "--top-k", "2", "--epochs", "1", "--prune-experts", "1", "--json"]
    out = _json(capsys, argv)
    assert out == json.loads(json.dumps(experts_result("moe_moons", top_k=2, epochs=1, prune_experts=[1])))
    # with --epochs, the balance weight defaults to the bundled recipe's
    assert out["top_k"] == 2 and out["pruned_experts"] == [1] and out["balance_weight"] == MOE_RECIPES["moe_moons"].balance_weight


def test_bundled_top_k_and_weight_pruning_equal_the_library(capsys):
    out = _json(capsys, ["experts", "--model", "moe_moons", "--top-k", "2", "--sparsity", "0.5", "--strategy",
                         "magnitude", "--prune-experts", "3", "--json"])
    model, _ = load_sample("moe_moons")
    pruned, masks = prune_moe(with_top_k(model, 2), experts=[3], sparsity=0.5, strategy="magnitude")
    expected = expert_report(pruned, load_dataset("moons"))
    assert {k: out[k] for k in expected} == json.loads(json.dumps(expected))
    assert out["top_k"] == 2 and out["sparsity"] == 0.5 and out["strategy"] == "magnitude"
    # magnitude prunes half of each expert layer; expert 3 is pruned whole on top
    kept = {name: int(m.sum()) for name, m in masks.items()}
    assert kept["experts.3.fc1.weight"] == 0 and kept["experts.0.fc1.weight"] == 8


def test_text_output(capsys):
    assert main(["experts", "--model", "moe_moons"]) == 0
    text = capsys.readouterr().out
    assert "balance loss" in text and "active parameters per input" in text


@pytest.mark.parametrize("argv,needle", [
    (["experts", "--model", "nope", "--json"], "Unknown MoE model"),
    (["experts", "--top-k", "5", "--json"], "--top-k"),
    (["experts", "--prune-experts", "9"], "--prune-experts"),
    (["experts", "--epochs", "-1"], "epochs"),
    (["experts", "--balance-weight", "-1", "--epochs", "1"], "--balance-weight"),
    (["experts", "--sparsity", "1"], "--sparsity must be in [0, 1)"),
    (["experts", "--sparsity", "2"], "sparsity must be in [0, 1]"),
    (["experts", "--sparsity", "0.5", "--strategy", "synflow"], "--strategy must be one of"),
    (["experts", "--sparsity", "0.5", "--strategy", "nope"], "--strategy must be one of"),
    # ignored without --epochs, and the JSON said balance_weight null (an audit)
    (["experts", "--lr", "5", "--balance-weight", "1000"], "--lr and --balance-weight act while training"),
    (["experts", "--balance-weight", "0.1"], "--balance-weight act while training; add --epochs N"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err
