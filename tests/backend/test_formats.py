"""Encodings round-trip exactly for every sparsity pattern."""

import pytest
import torch

from sparsity_viz.backend.formats import BSR, CSR, NM, Bitmap, bsr_blocksize, nm_fits, nm_pattern

from .patterns import PATTERNS, make_weight


@pytest.mark.parametrize("pattern", PATTERNS)
def test_csr_bitmap_roundtrip(pattern):
    w = make_weight(pattern, (24, 40))
    for enc in (CSR.from_dense(w), Bitmap.from_dense(w)):
        assert torch.equal(enc.to_dense(), w)
    assert CSR.from_dense(w).col.dtype == torch.int16


@pytest.mark.parametrize("pattern", PATTERNS)
def test_bsr_roundtrip(pattern):
    w = make_weight(pattern, (24, 40))
    assert bsr_blocksize((24, 40)) == (8, 8)
    assert torch.equal(BSR.from_dense(w).to_dense(), w)


def test_int32_columns_for_wide_layers():
    w = torch.zeros(2, 40000)
    w[0, 39999] = 1.0
    csr = CSR.from_dense(w)
    assert csr.col.dtype == torch.int32 and torch.equal(csr.to_dense(), w)


def test_nm_encoding():
    w = make_weight("2:4", (16, 32))
    assert nm_pattern(w) == (2, 4) and nm_fits(w, 2, 4) and not nm_fits(w, 1, 4)
    nm = NM.from_dense(w, 2, 4)
    assert torch.equal(nm.to_dense(), w) and torch.equal(nm.to_csr().to_dense(), w)
    assert nm.nbytes < w.numel() * 4 * 0.7
    with pytest.raises(ValueError):
        NM.from_dense(make_weight("50%", (16, 32)), 1, 4)


def test_csr_bytes_at_90_percent():
    w = make_weight("90%", (300, 784))
    assert CSR.from_dense(w).nbytes <= 0.16 * w.numel() * 4
