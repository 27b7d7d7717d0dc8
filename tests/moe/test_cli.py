"""``python -m sparsity_viz experts``: the JSON equals the library; bad input is one line, exit 2."""

import json

import pytest

from sparsity_viz.cli import main
from sparsity_viz.data import load_dataset
from sparsity_viz.experts_cli import experts_result
from sparsity_viz.moe import expert_report, get_moe_spec


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_json_equals_the_library_untrained(capsys):
    out = _json(capsys, ["experts", "--model", "moe_moons", "--json"])
    expected = expert_report(get_moe_spec("moe_moons").build(0), load_dataset("moons"))
    assert {k: out[k] for k in expected} == json.loads(json.dumps(expected))
    table = out["routing_table"]
    assert len(table) == 2 and len(table[0]) == 4
    assert sum(map(sum, table)) == out["inputs"] * out["top_k"] == sum(out["load"])
    assert out["active_parameters"] < out["total_parameters"]


def test_json_equals_the_library_trained_top2_with_a_pruned_expert(capsys):
    argv = ["experts", "--model", "moe_moons", "--top-k", "2", "--epochs", "1", "--prune-experts", "1", "--json"]
    out = _json(capsys, argv)
    assert out == json.loads(json.dumps(experts_result("moe_moons", top_k=2, epochs=1, prune_experts=[1])))
    assert out["top_k"] == 2 and out["pruned_experts"] == [1] and out["balance_weight"] == 0.01


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
])
def test_bad_input_is_one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err
