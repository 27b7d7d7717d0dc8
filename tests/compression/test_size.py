"""Size accounting: relative indices with fillers, packed bits and byte counts computed by hand."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from sparsity_viz.compression import huffman
from sparsity_viz.compression.size import (
    CONV_INDEX_BITS, FC_INDEX_BITS, MAX_INDEX_BITS, encode_layer, pack_bits, positions_from_gaps, relative_index, size_table,
    unpack_bits,
)
from sparsity_viz.quantization import QuantizedModel, QuantizedTensor, get_quantizer, quantize_model


def test_pack_bits_exact():
    assert pack_bits(np.array([1, 2, 3]), 2) == bytes([0b01101100])
    assert unpack_bits(bytes([0b01101100]), 2, 3).tolist() == [1, 2, 3]
    assert pack_bits(np.array([], dtype=np.int64), 5) == b""
    with pytest.raises(ValueError, match="fit"):
        pack_bits(np.array([4]), 2)


def test_widest_index_encodes_a_long_zero_run():
    weight = torch.zeros(1, 70_000)
    weight[0, -1] = 1.0  # 69,999 zeros before it: two fillers of the widest gap
    enc = encode_layer(get_quantizer("uniform_symmetric", 4).quantize(weight), index_bits=MAX_INDEX_BITS)
    assert enc.fillers == 69_999 // 2**MAX_INDEX_BITS
    assert huffman.CodeTable.from_bytes(enc.gaps_table.to_bytes()) == enc.gaps_table
    with pytest.raises(ValueError, match="index_bits must be 1..15"):
        relative_index(np.ones(4, dtype=bool), MAX_INDEX_BITS + 1)


def test_relative_index_with_fillers():
    keep = np.zeros(30, dtype=bool)
    keep[[1, 4, 20, 21]] = True
    rel = relative_index(keep, 3)  # gaps up to 7; a filler covers 8 positions
    assert rel.gaps.tolist() == [1, 2, 7, 7, 0]  # 4 -> 20 skips 15 zeros: one filler (at 12), then 7
    assert rel.positions.tolist() == [1, 4, 12, 20, 21]
    assert rel.fillers == 1
    assert positions_from_gaps(rel.gaps).tolist() == rel.positions.tolist()


def test_relative_index_exact_multiples_and_empty():
    keep = np.zeros(20, dtype=bool)
    keep[[3, 11]] = True  # 3 zeros then 7 zeros, 2-bit gaps (max 3): 3 = 3 (no filler), 7 = filler(3) + 3
    rel = relative_index(keep, 2)
    assert rel.gaps.tolist() == [3, 3, 3] and rel.positions.tolist() == [3, 7, 11] and rel.fillers == 1
    empty = relative_index(np.zeros(10, dtype=bool), 4)
    assert empty.gaps.size == 0 and empty.fillers == 0


def _tiny() -> tuple[nn.Module, QuantizedModel]:
    """A 2x8 layer with 3 nonzeros at flat positions 0, 5, 15 and a 4-level codebook."""
    layer = nn.Sequential(nn.Linear(8, 2, bias=False))
    levels = torch.tensor([0.0, -0.5, 0.25, 1.0])
    codes = torch.zeros(2, 8, dtype=torch.int64)
    codes.view(-1)[[0, 5, 15]] = torch.tensor([1, 2, 1])
    with torch.no_grad():
        layer[0].weight.copy_(levels[codes])
    qt = QuantizedTensor(codes=codes, levels=levels, bits=2, method="kmeans", per_channel=False)
    return layer, QuantizedModel(model=layer, tensors={"0.weight": qt})


def test_size_table_by_hand():
    model, quantized = _tiny()
    frame = size_table(model, quantized=quantized, index_bits=2)
    row = frame.iloc[0]
    assert row["dense_fp32_bytes"] == 16 * 4
    assert row["sparse_csr_bytes"] == 3 * 4 + 3 * 2 + 3 * 4  # int32 row pointers, int16 columns, fp32 values
    # 2-bit gaps: 0 | 4 = filler(3) + 0 | 9 = filler(3) + filler(3) + 1  -> 6 entries, 3 fillers
    assert (row["stored"], row["fillers"]) == (6, 3)
    assert row["quantized_bytes"] == math.ceil(6 * 2 / 8) + math.ceil(6 * 2 / 8) + 4 * 4  # codes + gaps + levels
    # codes stream [1, 0, 2, 0, 0, 1]: lengths 0:1 1:2 2:2 -> 9 bits; table 3 + 3 bytes
    # gaps stream  [0, 3, 0, 3, 3, 1]: lengths 3:1 0:2 1:2 -> 9 bits; table 3 + 4 bytes
    assert row["huffman_bytes"] == 2 + 6 + 2 + 7 + 16
    enc = encode_layer(quantized.tensors["0.weight"], 2)
    assert huffman.decode(enc.codes_huffman, enc.codes_table, 6).tolist() == [1, 0, 2, 0, 0, 1]
    assert huffman.decode(enc.gaps_huffman, enc.gaps_table, 6).tolist() == [0, 3, 0, 3, 3, 1]
    total = frame.iloc[-1]
    assert total["layer"] == "total" and total["huffman_bytes"] == row["huffman_bytes"]
    assert total["huffman_ratio"] == pytest.approx(64 / 33)


def test_without_quantization_the_code_columns_are_empty(tiny_mlp):
    frame = size_table(tiny_mlp)
    assert frame["quantized_bytes"].isna().all() and frame["huffman_bytes"].isna().all()
    assert frame.iloc[-1]["dense_fp32_bytes"] == 4 * (35 + 63 + 27)


def test_default_index_bits_fc_and_conv(tiny_conv):
    quantized = quantize_model(tiny_conv, "kmeans", 3)
    frame = size_table(tiny_conv, quantized=quantized).set_index("layer")
    assert frame.loc["conv1", "index_bits"] == CONV_INDEX_BITS and frame.loc["fc1", "index_bits"] == FC_INDEX_BITS


def test_masks_and_quantization_on_lenet300(lenet300):
    from sparsity_viz.pruning import prune

    pruned, masks = prune(lenet300, "global_magnitude", 0.9)
    quantized = quantize_model(pruned, "kmeans", 5, masks=masks)
    frame = size_table(lenet300, masks, quantized)
    total = frame.iloc[-1]
    assert total["weights"] == 266_200 and total["dense_fp32_bytes"] == 4 * 266_200
    assert total["nonzeros"] == int(sum(int(m.sum()) for m in masks.values()))
    assert total["stored"] >= total["nonzeros"] - quantized.report().iloc[-1]["zeros_created"]
    body = frame.iloc[:-1]
    for col in ("sparse_csr_bytes", "quantized_bytes", "huffman_bytes", "fillers"):
        assert total[col] == body[col].sum()
    # each stage smaller than the last: dense > CSR > 5-bit codes + 5-bit indices > Huffman
    assert total["dense_fp32_bytes"] > total["sparse_csr_bytes"] > total["quantized_bytes"] > total["huffman_bytes"]
    assert total["huffman_ratio"] > 25


def test_unknown_quantized_layer_is_refused(tiny_mlp):
    _, quantized = _tiny()
    with pytest.raises(ValueError, match="0.weight"):
        size_table(tiny_mlp, quantized=quantized)
