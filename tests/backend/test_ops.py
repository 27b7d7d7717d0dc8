"""Every operator format gives the dense result (assert_close), on CPU and CUDA where present."""

import pytest
import torch
import torch.nn.functional as F

from sparsity_viz.backend import kernels
from sparsity_viz.backend.dispatch import CPU_FORMATS, FormatUnavailable, choose, make_op
from sparsity_viz.backend.ops import SparseConv2d, SparseLinear, run_chain

from .patterns import PATTERNS, make_weight

BATCHES = [1, 3, 17, 64, 100]


def reference(w, b, x, relu):
    y = F.linear(x, w, b)
    return F.relu(y) if relu else y


@pytest.mark.parametrize("fmt", CPU_FORMATS)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_cpu_formats_match_dense(fmt, pattern):
    w = make_weight(pattern, (24, 40))
    b = torch.randn(24)
    for relu in (False, True):
        try:
            op = make_op(fmt, w, b, relu, threads=2, tile=32)
        except FormatUnavailable:
            assert fmt == "nm-native" and pattern not in ("2:4", "100%", "99%")
            continue
        for batch in BATCHES:
            x = torch.randn(batch, 40)
            y = op.forward(x.t().contiguous()).t()
            torch.testing.assert_close(y, reference(w, b, x, relu))


def test_native_kernel_builds_here():
    """This machine has a compiler: the native path must be the one in use."""
    assert kernels.available(), kernels.notice()


@pytest.mark.parametrize("tile", [64, 32, 16])
@pytest.mark.parametrize("threads", [1, 2])
def test_native_chain_fused_and_batch_major(tile, threads):
    ws = [make_weight("90%", (30, 50)), make_weight("0%", (20, 30)), make_weight("50%", (5, 20))]
    bs = [torch.randn(30), None, torch.randn(5)]
    fmts = ["csr-native", "dense-native", "csr-native"]
    ops = [make_op(f, w, b, i < 2, threads=threads, tile=tile) for i, (f, w, b) in enumerate(zip(fmts, ws, bs))]
    for batch in (1, 7, 130):
        x = torch.randn(batch, 50)
        ref = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            ref = reference(w, b, ref, i < 2)
        torch.testing.assert_close(run_chain(ops, x, batch_major=True).t(), ref, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(run_chain(ops, x.t().contiguous()).t(), ref, rtol=1e-5, atol=1e-4)


def test_native_chain_rejects_a_hostile_csr():
    """A chain built from caller tensors checks the CSR's structure (found in review: a column index past the input or
    a row pointer past nnz was read out of bounds, giving garbage or NaN instead of an error)."""
    good = {"rowptr": torch.tensor([0, 1, 2], dtype=torch.int32), "col": torch.tensor([0, 2], dtype=torch.int16),
            "val": torch.ones(2), "bias": torch.empty(0), "relu": False, "threads": 1}
    x = torch.randn(4, 3)  # batch-major (4 samples, 3 features)
    torch.testing.assert_close(kernels.chain_forward(x, [good], batch_major=True), x[:, [0, 2]].t())
    bad = {
        "column index out of range": {"col": torch.tensor([0, 3], dtype=torch.int16)},
        "column index out of range ": {"col": torch.tensor([-1, 0], dtype=torch.int32)},
        "from 0 to nnz": {"rowptr": torch.tensor([0, 1, 100_000], dtype=torch.int32)},
        "from 0 to nnz ": {"rowptr": torch.tensor([1, 1, 2], dtype=torch.int32)},
        "non-decreasing": {"rowptr": torch.tensor([0, 3, 2], dtype=torch.int32), "col": torch.zeros(2, dtype=torch.int16)},
        "must be 1-D": {"col": torch.tensor([[0], [2]], dtype=torch.int16), "val": torch.ones(2, 1)},
    }
    for message, change in bad.items():
        layer = {**good, **change}
        with pytest.raises(RuntimeError, match=message.strip()):
            kernels.chain_forward(x, [layer], batch_major=True)
        with pytest.raises(RuntimeError, match=message.strip()):
            kernels.make_chain([layer], 3)


def test_native_transpose():
    mod = kernels.load()
    x = torch.randn(37, 83)
    assert torch.equal(mod.transpose(x, 2), x.t())


def test_fallback_forced():
    w, b = make_weight("90%", (24, 40)), torch.randn(24)
    with pytest.raises(FormatUnavailable):
        make_op("csr-native", w, b, force_fallback=True)
    choice = choose(w, b, False, batch=8, policy="heuristic", force_fallback=True)
    assert not choice.op.native and choice.format in ("csr-torch", "dense")
    x = torch.randn(8, 40)
    torch.testing.assert_close(choice.op.forward(x.t()).t(), reference(w, b, x, False))


def test_fallback_env(monkeypatch):
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    assert not kernels.available()
    assert "SPARSITY_VIZ_NATIVE=0" in kernels.notice()


def test_sparse_modules_match_torch():
    lin = torch.nn.Linear(40, 24)
    with torch.no_grad():
        lin.weight.copy_(make_weight("90%", (24, 40)))
    x = torch.randn(3, 5, 40)
    for fmt in ("csr-native", "csr-torch"):
        mod = SparseLinear(make_op(fmt, lin.weight, lin.bias))
        torch.testing.assert_close(mod(x), lin(x))
    conv = torch.nn.Conv2d(3, 8, 3, padding=1, stride=2)
    with torch.no_grad():
        conv.weight.mul_(torch.rand_like(conv.weight) > 0.7)
    x = torch.randn(2, 3, 11, 11)
    for fmt in ("csr-native", "csr-torch", "dense"):
        mod = SparseConv2d(conv, make_op(fmt, conv.weight.flatten(1), conv.bias))
        torch.testing.assert_close(mod(x), conv(x), rtol=1e-4, atol=1e-5)


def test_measured_choice_returns_timings():
    w, b = make_weight("99%", (64, 128)), torch.randn(64)
    c = choose(w, b, True, batch=32, repeats=5)
    assert c.times_us and "dense" in c.times_us and c.reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_formats_skip_cleanly_without_gpu():
    w = make_weight("2:4", (64, 128))
    for fmt in ("csr-cuda", "2:4-cuda", "dense-cuda"):
        with pytest.raises(FormatUnavailable, match="no CUDA GPU"):
            make_op(fmt, w, None, device="cpu")
    from sparsity_viz.backend.cuda import CudaCSROp, CudaDenseOp, Semi24Op

    for op in (CudaDenseOp, CudaCSROp, Semi24Op):  # built directly: the reason, not torch's "not compiled with CUDA" assertion
        with pytest.raises(ValueError, match="CUDA paths skipped: no CUDA GPU"):
            op(w, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("pattern", PATTERNS)
def test_cuda_csr_matches_dense(pattern):
    w, b = make_weight(pattern, (64, 128)), torch.randn(64)
    op = make_op("csr-cuda", w, b, True, device="cuda")
    x = torch.randn(32, 128)
    torch.testing.assert_close(op.forward(x.t().cuda()).t().cpu(), reference(w, b, x, True), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_semi_structured_matches_dense():
    w, b = make_weight("2:4", (64, 128)), torch.randn(64)
    try:
        op = make_op("2:4-cuda", w, b, False, device="cuda")
    except FormatUnavailable as exc:
        pytest.skip(str(exc))
    x = torch.randn(10, 128)
    ref = reference(w.half().float(), b, x.half().float(), False)
    torch.testing.assert_close(op.forward(x.t().cuda()).t().cpu(), ref, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("fmt", CPU_FORMATS)
def test_nan_input_stays_nan_through_relu(fmt):
    """A NaN input reaches every output with a kept weight on it, as NaN (torch.relu(NaN) is NaN, not 0)."""
    w = make_weight("2:4", (24, 40))  # every row keeps weights
    assert bool(((w != 0).sum(dim=1) > 0).all())
    b = torch.randn(24)
    for relu in (False, True):
        for tile in (64, 32):
            op = make_op(fmt, w, b, relu, threads=1, tile=tile)
            for batch in (1, 17, 64, 100):
                x = torch.randn(batch, 40)
                x[batch // 2] = float("nan")  # one sample all NaN
                y = op.forward(x.t().contiguous()).t()  # (batch, 24)
                ref = reference(w, b, x, relu)
                assert bool(y[batch // 2].isnan().all()), (fmt, relu, tile, batch)
                keep = torch.arange(batch) != batch // 2
                torch.testing.assert_close(y[keep], ref[keep])


@pytest.mark.parametrize("fmt", ["csr-native", "csr-torch", "nm-native"])
def test_a_nan_input_on_a_pruned_weight_only_stays_out(fmt):
    """Outputs connected to a NaN input only through pruned weights stay finite in every sparse format (docs/backend.md,
    "Non-finite values"); found by an audit: nm-native's padding slots multiplied it (0 x NaN)."""
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0],  # 2:4, the first group with one padding slot
                      [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0]])  # row 1 uses input 1
    for batch in (1, 5, 64, 100):
        x = torch.randn(batch, 8)
        x[:, 1] = float("nan")  # an input only row 1 keeps a weight on
        for relu in (False, True):
            y = make_op(fmt, w, None, relu).forward(x.t().contiguous()).t()  # (batch, 2)
            assert bool(y[:, 1].isnan().all()), (fmt, batch, relu)
            x0 = x.clone()
            x0[:, 1] = 0.0
            torch.testing.assert_close(y[:, 0], reference(w, None, x0, relu)[:, 0])
