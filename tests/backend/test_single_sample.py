"""Calls of 1-3 samples through a kept native chain: the CSR layers' 16-row slices (csrc ``slices.h``), fp32 and int8.

Every result is checked against ``torch.addmm`` / ``F.linear``: odd row and feature counts (slice and block
tails), every sparsity pattern, int32 columns, strided inputs, ReLU and bias, a split over two threads, the
first call made from many threads at once (the slices are built then), a layer too scattered for slices (the
row-by-row path instead), and NaN inputs that only pruned weights touch.
"""

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from sparsity_viz.backend import int8, kernels
from sparsity_viz.backend.ops import NativeCSROp, run_chain
from sparsity_viz.devices import torch_threads

from .patterns import PATTERNS, make_weight

pytestmark = pytest.mark.skipif(not kernels.available(), reason="native kernels unavailable")


def reference(w, b, x, relu):
    """relu?(W x + b) on feature-major ``x`` (in, B)."""
    y = w @ x if b is None else torch.addmm(b[:, None], w, x)
    return y.relu() if relu else y


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("shape", [(1, 4), (15, 36), (16, 32), (17, 44), (40, 100), (300, 784)])  # 2:4 needs in % 4 == 0
def test_one_to_three_samples_match_torch(pattern, shape):
    w = make_weight(pattern, shape, seed=shape[0])
    b = torch.randn(shape[0])
    for relu in (False, True):
        op = NativeCSROp(w, b if relu else None, relu=relu)
        for batch in (1, 2, 3):
            x = torch.randn(shape[1], batch)  # (in, B): for B > 1 a sample's features are B apart
            torch.testing.assert_close(op.forward(x), reference(w, b if relu else None, x, relu), rtol=1e-4, atol=1e-4)
            xs = torch.randn(shape[1], batch + 3)[:, 1:batch + 1]  # a strided view
            torch.testing.assert_close(op.forward(xs), reference(w, b if relu else None, xs, relu), rtol=1e-4, atol=1e-4)


def test_int32_columns_and_two_threads():
    wide = make_weight("99%", (20, 40_000), seed=1)  # more features than int16 holds
    bias = torch.randn(20)
    op = NativeCSROp(wide, bias)
    assert op.layer()["col"].dtype == torch.int32
    x = torch.randn(40_000, 1)
    torch.testing.assert_close(op.forward(x), reference(wide, bias, x, False), rtol=1e-4, atol=1e-4)
    w, b = make_weight("90%", (203, 300), seed=2), torch.randn(203)
    op2 = NativeCSROp(w, b, relu=True, threads=2)  # rows split over two threads, slices cut at 16
    with torch_threads(2):
        for batch in (1, 3):
            x = torch.randn(300, batch)
            torch.testing.assert_close(op2.forward(x), reference(w, b, x, True), rtol=1e-4, atol=1e-4)


def test_the_first_call_from_many_threads_at_once():
    """The slices are built by the first call of 1-3 samples; calls racing for it all get the right result."""
    w = make_weight("90%", (300, 784), seed=3)
    b = torch.randn(300)
    xs = [torch.randn(784, 1) for _ in range(16)]
    for _ in range(3):
        op = NativeCSROp(w, b, relu=True)  # a fresh chain: nothing built yet
        with ThreadPoolExecutor(8) as pool:
            outs = list(pool.map(op.forward, xs))
        for x, y in zip(xs, outs):
            torch.testing.assert_close(y, reference(w, b, x, True), rtol=1e-4, atol=1e-4)


def test_a_layer_too_scattered_for_slices_runs_row_by_row():
    """One nonzero per row, each in its own 32-feature block: 16 padded slots per nonzero, over the limit of 8."""
    w = torch.zeros(16, 32 * 16)
    for r in range(16):
        w[r, 32 * r + r] = float(r + 1)
    op = NativeCSROp(w, None)
    x = torch.randn(32 * 16, 1)
    torch.testing.assert_close(op.forward(x), reference(w, None, x, False))


def test_a_nan_input_on_pruned_weights_stays_out_of_single_samples():
    """Padding lanes are masked out of the FMA: 0 x NaN never reaches a row that does not use the input."""
    w = make_weight("90%", (40, 100), seed=4)
    unused = int((w != 0).sum(0).argmin())
    assert int((w[:, unused] != 0).sum()) == 0
    used = int((w != 0).sum(0).argmax())
    op = NativeCSROp(w, torch.randn(40), relu=True)
    x = torch.randn(100, 1)
    x[unused] = float("nan")
    assert bool(op.forward(x).isfinite().all())
    x[used] = float("nan")
    y = op.forward(x)[:, 0]
    assert torch.equal(y.isnan(), w[:, used] != 0)


@pytest.mark.parametrize("shape, used", [((16, 100_000), 32), ((300, 40_000), 200)])
def test_wide_layers_that_use_few_inputs(shape, used):
    """Too wide for the slices' fixed work (a visit per 16 rows and 32 inputs): the row path, same results."""
    g = torch.Generator().manual_seed(8)
    w = torch.zeros(shape)
    w[:, torch.randperm(shape[1], generator=g)[:used]] = torch.randn(shape[0], used, generator=g)
    b = torch.randn(shape[0])
    op = NativeCSROp(w, b, relu=True)
    for batch in (1, 3):
        x = torch.randn(shape[1], batch)
        torch.testing.assert_close(op.forward(x), reference(w, b, x, True), rtol=1e-4, atol=1e-4)


def test_padding_lanes_never_read_an_input():
    """Rows with fewer nonzeros in a block than the slice's longest row are padded; the padding points at the block's
    first feature, which no row uses here: a NaN there must reach no output."""
    w = torch.zeros(16, 64)
    for r in range(16):
        w[r, 1:2 + r] = 1.0  # row r: r + 1 nonzeros in block 0 (features 1..r+1), none on feature 0
    w[:, 40] = 2.0
    op = NativeCSROp(w, torch.zeros(16), relu=True)
    for batch in (1, 2, 3):
        x = torch.ones(64, batch)
        x[0] = float("nan")
        y = op.forward(x)
        assert bool(y.isfinite().all()), y
        torch.testing.assert_close(y, reference(w, None, x.nan_to_num(0.0), True))


def test_a_whole_chain_at_batch_one_matches_torch():
    ws = [make_weight("90%", (300, 784), seed=5), make_weight("90%", (100, 300), seed=6), make_weight("50%", (10, 100))]
    bs = [torch.randn(300), torch.randn(100), torch.randn(10)]
    ops = [NativeCSROp(w, b, relu=i < 2) for i, (w, b) in enumerate(zip(ws, bs))]
    for batch in (1, 2, 3):
        x = torch.randn(batch, 784)
        ref = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            ref = torch.nn.functional.linear(ref, w, b)
            ref = ref.relu() if i < 2 else ref
        torch.testing.assert_close(run_chain(ops, x, batch_major=True).t(), ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("pattern", ["0%", "50%", "90%", "99%", "100%", "empty-rows"])
@pytest.mark.parametrize("shape", [(1, 4), (17, 44), (300, 784)])
def test_int8_single_samples_equal_the_fake_quantized_layer(pattern, shape):
    w, b = make_weight(pattern, shape, seed=7), torch.randn(shape[0])
    wq = int8.fake_quantize_rows(w)  # what the int8 codes times the row scales are, exactly
    op = int8.Int8CSROp(w, b, True)
    for batch in (1, 2, 3):
        x = torch.randn(shape[1], batch)
        torch.testing.assert_close(op.forward(x), reference(wq, b, x, True), rtol=1e-4, atol=1e-4)


def test_int8_padding_lanes_never_read_an_input():
    w = torch.zeros(16, 64)
    for r in range(16):
        w[r, 1:2 + r] = 1.0  # as in the fp32 test: padding in block 0, feature 0 unused
    op = int8.Int8CSROp(w, None, False)
    x = torch.ones(64, 1)
    x[0] = float("nan")
    y = op.forward(x)
    assert bool(y.isfinite().all()), y
    torch.testing.assert_close(y, w @ x.nan_to_num(0.0))
