"""``quantize`` and ``compress`` on the command line: in-process ``main([...])`` calls, output checked against the library."""

from __future__ import annotations

import json

import pytest
import torch

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.cli import main
from sparsity_viz.compression.checkpoint import load_compressed
from sparsity_viz.compression.size import size_table
from sparsity_viz.data import load_dataset
from sparsity_viz.pruning import prune
from sparsity_viz.quantization import quantize_model
from sparsity_viz.quantize_cli import METHOD_ALIASES, resolve_method
from sparsity_viz.training import evaluate_dataset


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_quantize_json_matches_the_library(capsys, tmp_path):
    path = tmp_path / "q.safetensors"
    code, out, err = run(capsys, "quantize", "--model", "digits_mlp", "--method", "uniform_affine", "--bits", "3",
                         "--per-channel", "--sparsity", "0.7", "--strategy", "global_magnitude", "--json",
                         "--save", str(path))
    assert code == 0, err
    result = json.loads(out)
    model, _ = load_sample("digits_mlp")
    data = load_dataset("digits")
    pruned = prune(model, "global_magnitude", 0.7)
    q = quantize_model(pruned.model, "uniform_affine", 3, per_channel=True, masks=pruned.masks)
    assert result["dense_accuracy"] == evaluate_dataset(model, data).accuracy
    assert result["pruned_accuracy"] == result["accuracy_before"] == evaluate_dataset(pruned.model, data).accuracy
    assert result["accuracy_after"] == result["ptq_accuracy"] == evaluate_dataset(q.model, data).accuracy
    report = q.report()
    assert result["zeros_created"] == int(report.iloc[-1]["zeros_created"])
    assert [r["zeros_after"] for r in result["layers"]] == report["zeros_after"].tolist()
    sizes = size_table(pruned.model, pruned.masks, quantized=q)
    assert [r["huffman_bytes"] for r in result["sizes"]] == sizes["huffman_bytes"].tolist()
    assert result["saved"]["bytes"] == path.stat().st_size
    loaded = load_compressed(path)
    with torch.no_grad():
        assert torch.equal(loaded(data.x_test), q.model(data.x_test))


def test_quantize_alias_finetune_and_human_output(capsys):
    assert resolve_method("uniform") == "uniform_symmetric" == METHOD_ALIASES["uniform"]
    code, out, err = run(capsys, "quantize", "--model", "digits_mlp", "--method", "uniform", "--bits", "2",
                         "--finetune-epochs", "3")
    assert code == 0, err
    assert "uniform_symmetric 2 bits per tensor" in out
    assert "quantization-aware fine-tuned (3 epochs)" in out and "zeros created by quantization" in out
    assert "huffman_bytes" in out and "total" in out
    code, out, err = run(capsys, "quantize", "--model", "digits_mlp", "--method", "uniform", "--bits", "2",
                         "--finetune-epochs", "3", "--json")
    result = json.loads(out)
    assert result["method"] == "uniform_symmetric" and result["accuracy_after"] > result["ptq_accuracy"]


def test_compress_json_runs_the_pipeline(capsys, tmp_path):
    path = tmp_path / "c.safetensors"
    code, out, err = run(capsys, "compress", "--model", "digits_mlp", "--sparsity", "0.8", "--bits-fc", "4",
                         "--finetune-epochs", "1", "--qat-epochs", "1", "--json", "--save", str(path))
    assert code == 0, err
    result = json.loads(out)
    stages = [row["stage"] for row in result["stages"]]
    assert stages == ["dense", "pruned", "pruned+finetuned", "quantized", "quantized+QAT", "huffman"]
    assert result["bits"] == {"fc1.weight": 4, "fc2.weight": 4}
    assert result["checkpoint_bytes"] == path.stat().st_size
    huffman = result["stages"][-1]
    model = load_compressed(path)
    assert evaluate_dataset(model, load_dataset("digits")).accuracy == huffman["accuracy"]
    assert huffman["ratio_vs_dense"] > 5
    assert sum(r["huffman_bytes"] for r in result["layers"][:-1]) == huffman["bytes"]


@pytest.mark.parametrize("args,needle", [
    (["quantize", "--model", "lenet300", "--bits", "0"], "bits, got 0"),
    (["quantize", "--model", "lenet300", "--bits", "33"], "bits, got 33"),
    (["quantize", "--model", "lenet300", "--method", "fp4"], "Unknown quantization method 'fp4'"),
    (["quantize", "--model", "nope", "--bits", "4"], "Unknown model 'nope'"),
    (["quantize", "--model", "lenet300", "--method", "kmeans", "--per-channel"], "per tensor only"),
    (["quantize", "--model", "lenet300", "--bits", "four"], "invalid int value"),
    (["quantize", "--model", "lenet300", "--sparsity", "1.5"], "sparsity must be in [0, 1]"),
    (["quantize", "--model", "lenet300", "--strategy", "nope", "--sparsity", "0.5"], "Unknown strategy"),
    (["compress", "--model", "lenet300", "--bits-fc", "33"], "bits, got 33"),
    (["compress", "--model", "lenet300", "--bits-conv", "99"], "bits, got 99"),  # no conv layer: it passed
    (["compress", "--model", "nope"], "Unknown model 'nope'"),
    (["compress", "--model", "digits_mlp", "--sparsity", "paper"], "No per-layer targets"),
    (["compress", "--model", "lenet300", "--method", "fp4"], "Unknown quantization method"),
    # a scheduled strategy's one-shot masks are magnitude's: they were used under its name (an audit)
    (["compress", "--model", "moons_mlp", "--strategy", "gradual"], "gradual prunes while it trains"),
    (["quantize", "--model", "moons_mlp", "--strategy", "rigl", "--sparsity", "0.5"], "rigl prunes while it trains"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, needle):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert err.startswith("error: ") and needle in err
    assert err.count("\n") == 1 and "Traceback" not in err and out == ""


def test_default_bits_fit_the_method_and_the_help_lists_each_range(capsys):
    """Ternary takes exactly 2 bits: compress refused its own default (`--bits-fc` 5) that the user never gave."""
    from sparsity_viz.quantization import QUANTIZERS

    code, out, err = run(capsys, "compress", "--model", "moons_mlp", "--method", "ternary", "--finetune-epochs", "0",
                         "--qat-epochs", "0", "--json")
    assert code == 0, err
    assert set(json.loads(out)["bits"].values()) == {2}
    code, out, err = run(capsys, "quantize", "--model", "moons_mlp", "--method", "ternary", "--json")
    assert code == 0 and json.loads(out)["bits"] == 2, err
    code, out, _ = run(capsys, "quantize", "--model", "moons_mlp", "--json")
    assert code == 0 and json.loads(out)["bits"] == 8
    code, _, err = run(capsys, "compress", "--model", "moons_mlp", "--method", "ternary", "--bits-fc", "5")
    assert code == 2 and "'ternary' uses exactly 2 bits, got 5" in err  # given explicitly: still refused
    with pytest.raises(SystemExit):
        main(["quantize", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name, cls in QUANTIZERS.items():
        span = f"{cls.min_bits}-{cls.max_bits}" if cls.max_bits > cls.min_bits else f"{cls.min_bits}"
        assert f"{name} {span}" in help_text
