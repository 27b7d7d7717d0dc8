"""The live slider's native helpers against torch: ``csr_onto`` (anchor + correction) and ``cut_weight``."""

from __future__ import annotations

import pytest
import torch

from sparsity_viz.backend import kernels
from sparsity_viz.backend.formats import CSR

pytestmark = pytest.mark.skipif(not kernels.available(), reason="native kernel not built (no C++ compiler)")


def _sparse(out: int, inp: int, density: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(out, inp, generator=gen) * (torch.rand(out, inp, generator=gen) < density)


@pytest.mark.parametrize("batch", [1, 5, 17, 64, 300, 1000])
@pytest.mark.parametrize("relu", [False, True])
def test_csr_onto_equals_base_plus_product(batch, relu):
    gen = torch.Generator().manual_seed(batch)
    w = _sparse(300, 784, 0.0125, batch)
    x, base = torch.randn(784, batch, generator=gen), torch.randn(300, batch, generator=gen)
    want = base + w @ x
    want = want.relu() if relu else want
    for threads in (1, 2):
        for index in (torch.int16, torch.int32):
            got = kernels.csr_onto(base, CSR.from_dense(w, index_dtype=index), x, relu=relu, threads=threads)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
            assert got.data_ptr() != base.data_ptr()  # a new tensor; the base is read only
    torch.testing.assert_close(kernels.csr_onto(base, CSR.from_dense(torch.zeros(300, 784)), x, relu=relu),
                               base.relu() if relu else base, rtol=0, atol=0)


def test_csr_onto_reads_a_strided_input():
    w, x, base = _sparse(40, 70, 0.2, 1), torch.randn(70, 200), torch.randn(40, 100)
    view = x[:, ::2]  # (70, 100), stride 2 along the batch
    torch.testing.assert_close(kernels.csr_onto(base, CSR.from_dense(w), view), base + w @ view)


def test_csr_onto_rejects_hostile_tensors():
    native = kernels.load()
    base, x = torch.zeros(2, 4), torch.zeros(3, 4)
    rowptr, col, val = torch.tensor([0, 1, 2], dtype=torch.int32), torch.tensor([0, 2], dtype=torch.int16), torch.ones(2)
    assert native.csr_onto(base, rowptr, col, val, x, False, 1).shape == (2, 4)
    bad = {
        "column index out of range": (base, rowptr, torch.tensor([0, 3], dtype=torch.int16), val, x),
        "non-decreasing": (base, torch.tensor([0, 3, 2], dtype=torch.int32), col, val, x),
        "from 0 to nnz": (base, torch.tensor([0, 1, 3], dtype=torch.int32), col, val, x),
        "out \\+ 1 entries": (base, torch.tensor([0, 2], dtype=torch.int32), col, val, x),
        "samples": (torch.zeros(2, 5), rowptr, col, val, x),
        "float32": (base, rowptr, col, val.double(), x),
    }
    for message, args in bad.items():
        with pytest.raises(RuntimeError, match=message):
            native.csr_onto(*args, False, 1)
    negative = torch.tensor([0, -1], dtype=torch.int16)
    with pytest.raises(RuntimeError, match="column index out of range"):
        native.csr_onto(base, rowptr, negative, val, x, False, 1)


@pytest.mark.parametrize("k", [-5, 0, 1, 1000, 117_600, 235_199, 235_200, 2**40])
def test_cut_weight_is_torchs_mask_and_product_bit_for_bit(k):
    gen = torch.Generator().manual_seed(0)
    pos = torch.randperm(235_200, generator=gen).to(torch.int32).view(300, 784)
    w = torch.randn(300, 784, generator=gen)
    w[0, :3] = torch.tensor([float("nan"), float("inf"), -0.0])
    keep, pruned = kernels.cut_weight(pos, k, w)
    want_keep = pos.long() >= k
    want = w * want_keep  # prune's product: a pruned negative weight is -0.0, NaN stays NaN
    assert keep.dtype == torch.bool and torch.equal(keep, want_keep)
    assert torch.equal(pruned.view(torch.int32)[~want.isnan()], want.view(torch.int32)[~want.isnan()])
    assert torch.equal(pruned.isnan(), want.isnan())


def test_cut_weight_rejects_mismatched_tensors():
    native = kernels.load()
    with pytest.raises(RuntimeError, match="same shape"):
        native.cut_weight(torch.zeros(3, dtype=torch.int32), 1, torch.zeros(4))
    with pytest.raises(RuntimeError, match="int32"):
        native.cut_weight(torch.zeros(3, dtype=torch.int64), 1, torch.zeros(3))
