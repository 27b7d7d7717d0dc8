"""The sparsity x bits accuracy grid: every cell equals pruning, quantizing and evaluating directly."""

from __future__ import annotations

import copy

import pytest

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.pruning import prune
from sparsity_viz.quantization import quantize_model
from sparsity_viz.quantization.grid import FP32_BITS, QuantGridConfig, accuracy_grid
from sparsity_viz.training import evaluate_dataset


@pytest.fixture(scope="module")
def moons():
    model, _ = load_sample("moons_mlp")
    return model, load_dataset("moons")


def test_every_cell_equals_the_direct_computation(moons):
    model, ds = moons
    config = QuantGridConfig("uniform_affine", False, "magnitude", (0.0, 0.5, 0.9), (2, 4))
    grid = accuracy_grid(model, ds, config)
    assert len(grid) == 3 * 3 and not grid.attrs["cancelled"]
    for row in grid.itertuples():
        pruned = prune(model, "magnitude", row.sparsity)
        if row.bits == FP32_BITS:
            net, zeros = pruned.model, sum(int((w == 0).sum()) for n, w in pruned.model.named_parameters()
                                           if n.endswith("weight"))
        else:
            q = quantize_model(pruned.model, "uniform_affine", row.bits, masks=pruned.masks)
            net, zeros = q.model, int(q.report().iloc[-1]["zeros_after"])
        assert row.accuracy == evaluate_dataset(net, ds, device="cpu").accuracy
        assert row.zeros == zeros


def test_fp32_and_quantized_cells_count_zeros_alike_on_a_model_with_its_own_zeros(moons):
    """A model with exact zeros and no ``dense_masks`` (a library caller): the fp32 cell counted mask entries (0 at
    0 % pruned) and the quantized one exact zeros (33), one column counted two ways (an audit)."""
    import torch

    model, ds = moons
    holed = copy.deepcopy(model)
    with torch.no_grad():
        holed.fc1.weight[0] = 0.0
    own = sum(int((w == 0).sum()) for n, w in holed.named_parameters() if n.endswith("weight"))
    assert own >= 2
    grid = accuracy_grid(holed, ds, QuantGridConfig("uniform_affine", False, "magnitude", (0.0,), (8,))).set_index("bits")
    assert grid.loc[FP32_BITS, "zeros"] == own and grid.loc[8, "zeros"] >= own  # rounding keeps a zero a zero


def test_a_stop_keeps_the_finished_rows(moons):
    model, ds = moons
    calls = []
    grid = accuracy_grid(model, ds, QuantGridConfig("kmeans", False, "magnitude", (0.0, 0.5), (2, 3)),
                         progress=lambda f, text: calls.append(f), stop=lambda: len(calls) >= 2)
    assert grid.attrs["cancelled"] and len(grid) == 2 and calls == [1 / 6, 2 / 6]


def test_scheduled_strategies_are_refused(moons):
    model, ds = moons
    with pytest.raises(ValueError, match="one-shot"):
        accuracy_grid(model, ds, QuantGridConfig("kmeans", False, "gradual", (0.5,), (2,)))


def test_cheapest_near_dense_picks_the_fewest_bits_per_original_weight():
    import pandas as pd

    from sparsity_viz.quantization.grid import cheapest_near_dense

    grid = pd.DataFrame({"sparsity": [0.0, 0.0, 0.5, 0.9, 0.9], "bits": [FP32_BITS, 2, 4, 4, 8],
                         "accuracy": [0.95, 0.80, 0.945, 0.90, 0.947], "zeros": [0] * 5})
    best = cheapest_near_dense(grid, 0.95)  # candidates within 1 point: 4 bits at 50 % (cost 2.0), 8 bits at 90 % (0.8)
    assert (best["sparsity"], best["bits"]) == (0.9, 8) and best["cost"] == pytest.approx(0.8)
    assert cheapest_near_dense(grid, 0.99) is None  # the fp32 column never counts


def test_the_pages_sentences_state_the_grid_and_size_numbers():
    """Words match numbers: the Quantize page's grid reading and size caption come from the frames themselves."""
    import pandas as pd

    from app_state.quantize import grid_reading, size_caption
    from sparsity_viz.checkpoints import load_sample
    from sparsity_viz.compression.size import size_table
    from sparsity_viz.figures import human_bytes
    from sparsity_viz.quantization import quantize_model

    grid = pd.DataFrame({"sparsity": [0.0, 0.0, 0.5, 0.9, 0.9], "bits": [FP32_BITS, 2, 4, 4, 8],
                         "accuracy": [0.95, 0.80, 0.945, 0.90, 0.947], "zeros": [0] * 5})
    dense, text = grid_reading(grid)
    assert dense == 0.95  # the grid's own 0 % fp32 cell
    assert "**90 % pruned at 8 bits** (94.7 %, about 0.80 bits per original weight" in text
    dense, text = grid_reading(grid.assign(accuracy=[0.95, 0.5, 0.5, 0.5, 0.5]))
    assert text == "No quantized cell stays within 1 point of the dense model's 95.0 %."

    model = load_sample("digits_mlp")[0]
    sizes = size_table(model, quantized=quantize_model(model, "uniform_symmetric", 4))
    total = sizes[sizes["layer"] == "total"].iloc[0]
    caption = size_caption(sizes, 4)
    assert f"Dense fp32 {human_bytes(total['dense_fp32_bytes'])} → " in caption
    assert f"Huffman-coded {human_bytes(total['huffman_bytes'])}: **{total['huffman_ratio']:.1f}×**" in caption
