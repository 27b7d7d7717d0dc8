"""Column-panel path of the native CSR kernel: every tile width, remainders, padding, chains."""

import pytest
import torch

from sparsity_viz.backend import kernels
from sparsity_viz.backend.bench import random_sparse
from sparsity_viz.backend.ops import NativeCSROp, NativeDenseOp, run_chain

pytestmark = pytest.mark.skipif(not kernels.available(), reason="native kernels unavailable")


@pytest.mark.parametrize("tile", [128, 64, 32, 16])
@pytest.mark.parametrize("batch", [1, 17, 32, 64, 100, 256, 300])
def test_panel_kernel_matches_dense(tile, batch):
    w = random_sparse((37, 700), 0.9, seed=batch)
    b = torch.randn(37)
    op = NativeCSROp(w, b, relu=True, tile=tile)
    x = torch.randn(700, batch)
    ref = torch.relu(torch.addmm(b[:, None], w, x))
    torch.testing.assert_close(op.forward(x), ref, rtol=1e-4, atol=1e-4)
    # batch-major input through run_chain (transpose into the padded layout)
    torch.testing.assert_close(run_chain([op], x.t().contiguous(), batch_major=True), ref, rtol=1e-4, atol=1e-4)
    # a strided feature-major view is read in place
    xs = torch.randn(700, batch + 5)[:, :batch]
    torch.testing.assert_close(op.forward(xs), torch.relu(torch.addmm(b[:, None], w, xs)), rtol=1e-4, atol=1e-4)


def test_panelize_keeps_every_nonzero():
    w = random_sparse((20, 1000), 0.8)
    op = NativeCSROp(w, None, tile=64)
    prow, pcol, pval, pw = op.panels()
    npan = (1000 + pw - 1) // pw
    assert prow.numel() == npan * 21 and pcol.dtype == torch.uint16 and pval.numel() == op.nnz
    dense = torch.zeros(20, 1000)
    rp = prow.view(npan, 21)
    for q in range(npan):
        for r in range(20):
            s, e = int(rp[q, r]), int(rp[q, r + 1])
            dense[r, q * pw + pcol[s:e].to(torch.int64)] = pval[s:e]
    assert torch.equal(dense, w)


def test_mixed_chain_with_panels_matches_torch():
    torch.manual_seed(0)
    ws = [random_sparse((300, 784), 0.92), random_sparse((100, 300), 0.7), torch.randn(10, 100)]
    bs = [torch.randn(300), torch.randn(100), torch.randn(10)]
    ops = [NativeCSROp(ws[0], bs[0], True, tile=64), NativeCSROp(ws[1], bs[1], True, tile=32),
           NativeDenseOp(ws[2], bs[2], False)]
    for batch in (1, 5, 256):
        x = torch.randn(batch, 784)
        ref = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            ref = torch.nn.functional.linear(ref, w, b)
            if i < 2:
                ref = ref.relu()
        y = run_chain(ops, x, batch_major=True)
        torch.testing.assert_close(y.t(), ref, rtol=1e-4, atol=1e-3)  # |y| ~ 100 after 3 layers
        torch.testing.assert_close(run_chain(ops, x, batch_major=True), y)  # cached chain, same result
