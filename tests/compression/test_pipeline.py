"""Deep Compression end to end on a small model: stages, bytes from the size table, the checkpoint loads back."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.compression.checkpoint import load_compressed
from sparsity_viz.compression.pipeline import (
    PAPER_SPARSITY,
    STAGE_COLUMNS,
    STAGES,
    compress,
    deep_compression,
    finetune_config,
    prune_masks,
)
from sparsity_viz.compression.size import size_table
from sparsity_viz.data import load_dataset
from sparsity_viz.models import MLP, build_model, prunable_parameters
from sparsity_viz.pruning import prune
from sparsity_viz.training import evaluate_dataset


@pytest.fixture(scope="module")
def digits():
    model, card = load_sample("digits_mlp")
    return model, card, load_dataset("digits", seed=card["dataset"].get("seed", 0))


@pytest.fixture(scope="module")
def run(digits):
    model, card, data = digits
    config = finetune_config(lr=card["recipe"]["lr"], batch_size=card["recipe"]["batch_size"], device="cpu")
    return compress(model, data, sparsity=0.8, strategy="global_magnitude", bits={"fc": 4}, finetune_epochs=3,
                    qat_epochs=2, config=config)


def test_one_row_per_stage_with_bytes_from_the_size_table(digits, run):
    model, _, data = digits
    stages = run.stages.set_index("stage")
    assert list(run.stages.columns) == STAGE_COLUMNS and tuple(run.stages["stage"]) == STAGES
    dense_bytes = 4 * sum(p.numel() for p in prunable_parameters(model).values())
    assert stages.loc["dense", "bytes"] == dense_bytes and stages.loc["dense", "ratio_vs_dense"] == 1.0
    assert stages.loc["dense", "accuracy"] == evaluate_dataset(model, data).accuracy
    pruned = prune(model, "global_magnitude", 0.8)
    assert stages.loc["pruned", "accuracy"] == evaluate_dataset(pruned.model, data).accuracy
    assert stages.loc["pruned", "bytes"] == int(size_table(pruned.model, pruned.masks).iloc[-1]["sparse_csr_bytes"])
    assert stages.loc["pruned", "sparsity"] == pytest.approx(0.8, abs=1e-3)
    final = size_table(run.quantized.model, quantized=run.quantized).iloc[-1]
    assert stages.loc["quantized+QAT", "bytes"] == int(final["quantized_bytes"])
    assert stages.loc["huffman", "bytes"] == int(final["huffman_bytes"])
    assert stages.loc["quantized+QAT", "accuracy"] == evaluate_dataset(run.quantized.model, data).accuracy
    # every stage is smaller than the one before it (fine-tuning keeps the mask, so its size is the pruned one)
    b = run.stages["bytes"].tolist()
    assert b[0] > b[1] == b[2] > b[3] == b[4] > b[5]
    assert run.stages["ratio_vs_dense"].tolist() == pytest.approx([dense_bytes / x for x in b])
    assert run.stages["error_pct"].tolist() == pytest.approx([100 * (1 - a) for a in run.stages["accuracy"]])
    # fine-tuning recovers accuracy lost to pruning (measured: 0.92 -> 0.96 on digits)
    assert stages.loc["pruned+finetuned", "accuracy"] > stages.loc["pruned", "accuracy"]


def test_masks_held_and_checkpoint_loads_back_to_the_same_predictions(digits, run):
    _, _, data = digits
    for name, mask in run.masks.items():
        assert bool((run.pruned.get_parameter(name)[~mask] == 0).all())
        assert bool((run.quantized.model.get_parameter(name)[~mask] == 0).all())
        assert run.quantized.tensors[name].bits == 4
    loaded = load_compressed(run.checkpoint)
    with torch.no_grad():
        assert torch.equal(loaded(data.x_test).argmax(1), run.quantized.model(data.x_test).argmax(1))
    assert run.stages.set_index("stage").loc["huffman", "accuracy"] == evaluate_dataset(loaded, data).accuracy
    assert run.stages.attrs["checkpoint_bytes"] == len(run.checkpoint)


def test_per_layer_targets_prune_each_layer_to_its_own_sparsity():
    model = build_model("lenet5", seed=0)
    data = load_dataset("digits")  # only used for data-driven strategies; magnitude needs none
    masks = prune_masks(model, data, PAPER_SPARSITY["lenet5"])
    for layer, target in PAPER_SPARSITY["lenet5"].items():
        m = masks[f"{layer}.weight"]
        assert int((~m).sum()) == int(round(target * m.numel()))
    with pytest.raises(ValueError, match="no prunable layer"):
        prune_masks(model, data, {"fc9": 0.5})


def test_deep_compression_returns_the_stage_frame_and_refuses_bad_input(digits):
    model, card, data = digits
    frame = deep_compression(model, data, sparsity=0.5, bits=3, finetune_epochs=0, qat_epochs=0,
                             config=finetune_config(device="cpu"))
    assert tuple(frame["stage"]) == STAGES
    stages = frame.set_index("stage")
    # no training: the fine-tuned stage is the pruned one, QAT is post-training quantization
    assert stages.loc["pruned+finetuned", "accuracy"] == stages.loc["pruned", "accuracy"]
    assert stages.loc["quantized+QAT", "accuracy"] == stages.loc["quantized", "accuracy"]
    for kwargs, match in [({"bits": 0}, "bits"), ({"bits": 33}, "bits"), ({"method": "fp4"}, "Unknown"),
                          ({"bits": {"conv": 8}}, "no width"), ({"strategy": "nope"}, "nope"),
                          ({"finetune_epochs": -1}, ">= 0"), ({"finetune_epochs": float("nan")}, "whole numbers"),
                          ({"qat_epochs": 1.5}, "whole numbers"),
                          ({"strategy": "iterative"}, "iterative prunes while it trains"),
                          ({"sparsity": {}}, "names no layer"),
                          ({"sparsity": {"fc1": 0.5, "fc1.weight": 0.9}}, "names fc1.weight twice")]:
        with pytest.raises(ValueError, match=match):
            deep_compression(model, data, **kwargs)


def test_quantized_stage_counts_the_zeros_quantization_made():
    """Found by an audit: the PTQ row counted the fp32 model's nonzeros (179) where its codes held 122."""
    torch.manual_seed(0)
    data = load_dataset("moons", n=200)
    model = MLP(2, (64,), 2)
    result = compress(model, data, sparsity=0.3, bits=2, method="uniform_symmetric", finetune_epochs=0,
                      qat_epochs=0, config=finetune_config(device="cpu"))  # no QAT: its codes are the PTQ codes
    stages = result.stages.set_index("stage")
    nonzeros = sum(int((t.dequantize() != 0).sum()) for t in result.quantized.tensors.values())
    assert nonzeros < stages.loc["pruned+finetuned", "nonzeros"]  # a 2-bit grid rounds small weights to zero
    assert stages.loc["quantized", "nonzeros"] == stages.loc["quantized+QAT", "nonzeros"] == nonzeros


def test_zero_threshold_applies_to_retraining_only():
    torch.manual_seed(0)
    data = load_dataset("moons", n=200)
    config = dataclasses.replace(finetune_config(device="cpu"), zero_threshold=1e-3)
    result = compress(MLP(2, (16,), 2), data, sparsity=0.5, bits=4, finetune_epochs=1, qat_epochs=1, config=config)
    assert tuple(result.stages["stage"]) == STAGES  # codebook training ran; it takes no threshold of its own
