"""A canonical Huffman coder over small non-negative integer symbols.

Deep Compression's last stage (Han et al. 2016, section 4): the quantization codes
and the relative sparse indices are far from uniform, so a Huffman code stores them
in fewer bits than their fixed width. This is a real coder, not a formula: ``encode``
returns the packed bit stream and ``decode`` gives the symbols back exactly.

The codes are *canonical* (symbols sorted by (length, symbol) get consecutive codes),
so a code table is just the code length of each symbol: ``CodeTable.to_bytes`` stores
one byte per symbol of the alphabet ``0..max_symbol`` (0 = absent) after a small
header, which is what the size tables count and the compressed checkpoint stores.

Conventions: an alphabet of one symbol gets a 1-bit code (a decoder needs at least
one bit per symbol to count them); an empty input encodes to ``b""`` with an empty
table. The number of symbols is not in the stream; the caller stores it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

MAX_SYMBOL = 2**16 - 2  # code tables are dense over 0..max_symbol, whose size (max_symbol + 1) the header's uint16 holds
MAX_CODE_LENGTH = 56  # codes are built in int64; no real histogram gets near (it needs ~Fibonacci(56) symbols)
_TABLE_DECODE_MAX = 20  # decode through a 2**L lookup table up to this longest code, bit by bit beyond
_HEADER = 3  # bytes: the alphabet size (max_symbol + 1) as uint16 little-endian + 1 reserved/version byte
_VERSION = 1


class HuffmanError(ValueError):
    """Symbols, a histogram or a stream the coder cannot take; the message says why."""


def code_lengths(histogram: Mapping[int, int]) -> dict[int, int]:
    """Huffman code length of every symbol with a positive count.

    Ties are broken by symbol, so the lengths are deterministic. One symbol gets length 1.
    """
    counts = {int(s): int(c) for s, c in histogram.items() if int(c) > 0}
    if any(c < 0 for c in histogram.values()):
        raise HuffmanError("a histogram count is negative.")
    if not counts:
        return {}
    if len(counts) == 1:
        return {next(iter(counts)): 1}
    lengths = dict.fromkeys(counts, 0)
    order = itertools.count()
    heap = [(c, next(order), [s]) for s, c in sorted(counts.items())]
    heapq.heapify(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in itertools.chain(s1, s2):  # every symbol under the merged node sinks one level
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, next(order), s1 + s2))
    if max(lengths.values()) > MAX_CODE_LENGTH:
        raise HuffmanError(f"a code longer than {MAX_CODE_LENGTH} bits would be needed.")
    return lengths


def huffman_bits(histogram: Mapping[int, int]) -> int:
    """Bits of the Huffman-coded stream for these symbol counts (sum of count x code length)."""
    lengths = code_lengths(histogram)
    return int(sum(int(histogram[s]) * n for s, n in lengths.items()))


@dataclass(frozen=True)
class CodeTable:
    """A canonical code: ``lengths[s]`` is the code length of symbol ``s`` (0 = not in the alphabet)."""

    lengths: tuple[int, ...]

    @classmethod
    def from_lengths(cls, lengths: Mapping[int, int]) -> CodeTable:
        if not lengths:
            return cls(())
        top = max(lengths)
        dense = [0] * (top + 1)
        for s, n in lengths.items():
            dense[s] = n
        return cls(tuple(dense))

    def canonical(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(symbols, lengths, codes)`` in canonical order (by length, then symbol)."""
        pairs = sorted((n, s) for s, n in enumerate(self.lengths) if n > 0)
        symbols = np.array([s for _, s in pairs], dtype=np.int64)
        lengths = np.array([n for n, _ in pairs], dtype=np.int64)
        codes = np.zeros(len(pairs), dtype=np.int64)
        code = 0
        for i in range(1, len(pairs)):
            code = (code + 1) << (lengths[i] - lengths[i - 1])
            codes[i] = code
        return symbols, lengths, codes

    def to_bytes(self) -> bytes:
        """Header (alphabet size, version) + one length byte per symbol ``0..max_symbol``."""
        n = len(self.lengths)
        return n.to_bytes(2, "little") + bytes([_VERSION]) + bytes(self.lengths)

    @classmethod
    def from_bytes(cls, data: bytes) -> CodeTable:
        """Inverse of ``to_bytes``; checks that the lengths form a complete prefix code."""
        data = bytes(data)
        if len(data) < _HEADER:
            raise HuffmanError(f"a code table needs at least {_HEADER} bytes, got {len(data)}.")
        n = int.from_bytes(data[:2], "little")
        if data[2] != _VERSION:
            raise HuffmanError(f"unknown code table version {data[2]}.")
        if len(data) != _HEADER + n:
            raise HuffmanError(f"a code table of {n} symbols needs {_HEADER + n} bytes, got {len(data)}.")
        table = cls(tuple(data[_HEADER:]))
        table.check()
        return table

    def check(self) -> None:
        """Raise ``HuffmanError`` unless the lengths are a valid prefix code (Kraft sum exactly 1)."""
        used = [n for n in self.lengths if n > 0]
        if not used:
            return
        if max(used) > MAX_CODE_LENGTH:
            raise HuffmanError(f"a code length exceeds {MAX_CODE_LENGTH} bits.")
        top = max(used)
        kraft = sum(1 << (top - n) for n in used)
        if len(used) == 1:
            if used[0] != 1:
                raise HuffmanError("a one-symbol code must be 1 bit long.")
        elif kraft != 1 << top:
            raise HuffmanError("the code lengths do not form a complete prefix code.")

    @property
    def nbytes(self) -> int:
        return len(self.to_bytes())


def _as_symbols(symbols: Iterable[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(symbols if not hasattr(symbols, "numpy") else symbols.numpy())
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise HuffmanError(f"symbols must be integers, got {arr.dtype}.")
    arr = arr.reshape(-1).astype(np.int64)
    if int(arr.min()) < 0 or int(arr.max()) > MAX_SYMBOL:
        raise HuffmanError(f"symbols must lie in 0..{MAX_SYMBOL}, got {int(arr.min())}..{int(arr.max())}.")
    return arr


def histogram(symbols: Iterable[int] | np.ndarray) -> dict[int, int]:
    """``{symbol: count}`` of an integer sequence."""
    arr = _as_symbols(symbols)
    values, counts = np.unique(arr, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def encode(symbols: Iterable[int] | np.ndarray, table: CodeTable | None = None) -> tuple[bytes, CodeTable]:
    """Huffman-code ``symbols``; returns the packed bits (MSB first, zero-padded) and the code table.

    ``table`` reuses a given code (it must cover every symbol); by default the code is
    built from the symbols' own histogram.
    """
    arr = _as_symbols(symbols)
    if table is None:
        table = CodeTable.from_lengths(code_lengths(histogram(arr)))
    if arr.size == 0:
        return b"", table
    syms, lens, codes = table.canonical()
    lookup_len = np.zeros(len(table.lengths), dtype=np.int64)
    lookup_code = np.zeros(len(table.lengths), dtype=np.int64)
    lookup_len[syms], lookup_code[syms] = lens, codes
    if int(arr.max()) >= len(table.lengths) or not lookup_len[arr].all():
        raise HuffmanError("the code table does not cover every symbol.")
    n = lookup_len[arr]
    c = lookup_code[arr]
    total = int(n.sum())
    starts = np.cumsum(n) - n
    owner = np.repeat(np.arange(arr.size), n)
    offset = np.arange(total) - starts[owner]  # bit position inside its code, MSB first
    bits = ((c[owner] >> (n[owner] - 1 - offset)) & 1).astype(np.uint8)
    return np.packbits(bits).tobytes(), table


def decode(data: bytes, table: CodeTable, count: int) -> np.ndarray:
    """The ``count`` symbols coded in ``data`` with ``table`` (int64).

    Raises:
        HuffmanError: the stream ends early, holds a bit pattern that is no code, or has
            more than 7 padding bits left over.
    """
    if count < 0:
        raise HuffmanError(f"cannot decode {count} symbols.")
    if count == 0:
        if data:
            raise HuffmanError(f"{len(data)} bytes given for 0 symbols.")
        return np.zeros(0, dtype=np.int64)
    table.check()
    syms, lens, codes = table.canonical()
    if syms.size == 0:
        raise HuffmanError("an empty code table cannot decode symbols.")
    bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
    if count > len(bits) // int(lens.min()):  # every symbol takes at least the shortest code's bits
        # checked before the output is allocated: a 2 KB file claiming 2**28 symbols made 2 GiB of it (an audit)
        raise HuffmanError(f"the stream ends before {count} symbols: {len(data)} bytes cannot hold them.")
    top = int(lens.max())
    if top <= _TABLE_DECODE_MAX:
        out, used = _decode_table(bits, syms, lens, codes, top, count)
    else:
        out, used = _decode_bitwise(bits, syms, lens, codes, count)
    if len(bits) - used >= 8:
        raise HuffmanError(f"{(len(bits) - used) // 8} bytes left over after {count} symbols.")
    return out


def _decode_table(bits: np.ndarray, syms, lens, codes, top: int, count: int) -> tuple[np.ndarray, int]:
    """Decode through a 2**top table indexed by the next ``top`` bits at every position."""
    padded = np.concatenate([bits, np.zeros(top, dtype=np.uint8)]).astype(np.int64)
    window = np.zeros(len(bits), dtype=np.int64)
    for j in range(top):  # window[p] = the ``top`` bits starting at p, as an integer
        window = (window << 1) | padded[j : j + len(bits)]
    sym_of = np.full(1 << top, -1, dtype=np.int64)
    len_of = np.zeros(1 << top, dtype=np.int64)
    for s, n, c in zip(syms, lens, codes):
        lo = int(c) << (top - int(n))
        sym_of[lo : lo + (1 << (top - int(n)))] = s
        len_of[lo : lo + (1 << (top - int(n)))] = n
    window_l, sym_l, len_l = window.tolist(), sym_of.tolist(), len_of.tolist()
    out = [0] * count
    p, nbits = 0, len(bits)
    for i in range(count):
        if p >= nbits:
            raise HuffmanError(f"the stream ends after {i} of {count} symbols.")
        w = window_l[p]
        s = sym_l[w]
        if s < 0:
            raise HuffmanError(f"bit pattern at bit {p} is no code.")
        p += len_l[w]
        out[i] = s
    if p > nbits:
        raise HuffmanError(f"the stream ends inside symbol {count}.")
    return np.array(out, dtype=np.int64), p


def _decode_bitwise(bits: np.ndarray, syms, lens, codes, count: int) -> tuple[np.ndarray, int]:
    """Canonical decoding one bit at a time (for codes longer than the lookup table allows)."""
    first: dict[int, int] = {}
    index: dict[int, int] = {}
    for i, (n, c) in enumerate(zip(lens.tolist(), codes.tolist())):
        if n not in first:
            first[n], index[n] = c, i
    per_len = Counter(lens.tolist())
    syms_l, bits_l = syms.tolist(), bits.tolist()
    out, p = [0] * count, 0
    for i in range(count):
        code, n = 0, 0
        while True:
            if p >= len(bits_l):
                raise HuffmanError(f"the stream ends after {i} of {count} symbols.")
            code, n, p = (code << 1) | bits_l[p], n + 1, p + 1
            if n in first and 0 <= code - first[n] < per_len[n]:
                out[i] = syms_l[index[n] + code - first[n]]
                break
            if n > MAX_CODE_LENGTH:
                raise HuffmanError(f"bit pattern ending at bit {p} is no code.")
    return np.array(out, dtype=np.int64), p
