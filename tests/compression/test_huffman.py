"""The canonical Huffman coder: hand-computed code lengths, exact bytes, round trips, bad streams."""

import math

import numpy as np
import pytest

from sparsity_viz.compression import huffman
from sparsity_viz.compression.huffman import CodeTable, HuffmanError


def test_known_histogram_lengths_and_bits():
    counts = {0: 5, 1: 2, 2: 1, 3: 1}  # a:5 b:2 c:1 d:1
    assert huffman.code_lengths(counts) == {0: 1, 1: 2, 2: 3, 3: 3}
    assert huffman.huffman_bits(counts) == 5 * 1 + 2 * 2 + 1 * 3 + 1 * 3 == 15


def test_canonical_codes_give_exact_bytes():
    symbols = [0] * 5 + [1] * 2 + [2, 3]
    data, table = huffman.encode(symbols)
    assert table.lengths == (1, 2, 3, 3)
    # canonical codes: 0 -> 0, 1 -> 10, 2 -> 110, 3 -> 111 => 00000 1010 110 111 + one padding bit
    assert data == bytes([0b00000101, 0b01101110])
    assert len(data) == math.ceil(15 / 8)
    assert huffman.decode(data, table, len(symbols)).tolist() == symbols


def test_table_bytes_round_trip_and_size():
    table = CodeTable.from_lengths({0: 1, 1: 2, 2: 3, 3: 3})
    raw = table.to_bytes()
    assert len(raw) == 3 + 4 and table.nbytes == 7  # header + one length byte per symbol
    assert CodeTable.from_bytes(raw) == table


@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_and_entropy_bounds(seed):
    rng = np.random.default_rng(seed)
    symbols = rng.geometric(0.35, 20_000) - 1  # skewed, like quantization codes around zero
    data, table = huffman.encode(symbols)
    assert np.array_equal(huffman.decode(data, table, symbols.size), symbols)
    hist = huffman.histogram(symbols)
    bits = huffman.huffman_bits(hist)
    assert len(data) == math.ceil(bits / 8)
    p = np.array(list(hist.values())) / symbols.size
    entropy = float(-(p * np.log2(p)).sum()) * symbols.size
    assert entropy <= bits < entropy + symbols.size  # Huffman is within one bit per symbol of the entropy


def test_long_codes_decode_bitwise():
    fib = [1, 1]
    while len(fib) < 26:
        fib.append(fib[-1] + fib[-2])
    symbols = np.repeat(np.arange(26), fib)  # Fibonacci counts give the deepest tree: 25-bit codes
    data, table = huffman.encode(symbols)
    assert max(table.lengths) == 25
    assert np.array_equal(huffman.decode(data, table, symbols.size), symbols)


def test_single_symbol_and_empty():
    data, table = huffman.encode([7] * 10)
    assert table.lengths[7] == 1 and len(data) == 2  # one bit per symbol
    assert huffman.decode(data, table, 10).tolist() == [7] * 10
    assert huffman.huffman_bits({7: 10}) == 10
    data, table = huffman.encode([])
    assert data == b"" and table.lengths == ()
    assert huffman.decode(b"", table, 0).size == 0
    assert huffman.huffman_bits({}) == 0


def test_largest_symbol_round_trips_through_its_table():
    data, table = huffman.encode([huffman.MAX_SYMBOL, 1, 1])
    back = huffman.CodeTable.from_bytes(table.to_bytes())  # the header holds the alphabet size MAX_SYMBOL + 1
    assert back == table and huffman.decode(data, back, 3).tolist() == [huffman.MAX_SYMBOL, 1, 1]
    with pytest.raises(HuffmanError, match="0..65534"):
        huffman.encode([huffman.MAX_SYMBOL + 1])


def test_bad_input_raises_one_error():
    with pytest.raises(HuffmanError, match="0..65534"):
        huffman.encode([-1, 2])
    with pytest.raises(HuffmanError, match="integers"):
        huffman.encode(np.array([0.5, 1.0]))
    data, table = huffman.encode([0, 1, 2, 3, 0, 0])
    with pytest.raises(HuffmanError, match="ends"):
        huffman.decode(data[:0] + b"", table, 6)
    with pytest.raises(HuffmanError, match="left over"):
        huffman.decode(data + b"\x00", table, 6)
    with pytest.raises(HuffmanError, match="prefix code"):
        CodeTable.from_bytes(bytes([3, 0, 1, 1, 1, 1]))  # three 1-bit codes: Kraft sum 1.5
    with pytest.raises(HuffmanError, match="needs"):
        CodeTable.from_bytes(bytes([9, 0, 1, 1]))
