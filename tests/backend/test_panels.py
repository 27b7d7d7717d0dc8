"""Grouped column-panel path of the native CSR kernel: every tile width, remainders, padding, chains, bad input."""

import pytest
import torch

from sparsity_viz.backend import kernels
from sparsity_viz.backend.bench import random_sparse
from sparsity_viz.backend import ops as ops_mod
from sparsity_viz.backend.ops import PANEL_MAX, NativeCSROp, NativeDenseOp, panel_width, run_chain

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


@pytest.mark.parametrize("offset", [0, 1, 16])
def test_a_contiguous_64_sample_block_is_read_in_place_only_when_aligned(offset):
    """(in, 64) feature-major input with row stride 64: the grouped kernel reads its panels where they are when
    the block is 64-byte aligned (offset 0 and 16 floats), and repacks them otherwise (offset 1)."""
    w = random_sparse((45, 500), 0.9, seed=offset)
    b = torch.randn(45)
    op = NativeCSROp(w, b, relu=True, tile=64)
    x = torch.randn(500 * 64 + offset)[offset:].view(500, 64)  # (in, 64), row stride 64
    assert (x.data_ptr() % 64 == 0) == (offset != 1)
    torch.testing.assert_close(op.forward(x), torch.relu(torch.addmm(b[:, None], w, x)), rtol=1e-4, atol=1e-4)


def unpack(meta: torch.Tensor) -> tuple[int, list, list, list, list]:
    """The grouped-panel metadata of ``panelize``: npan, gstart, gcnt, gnr, grows (lists)."""
    m = meta.tolist()
    npan, ng, nrows = m[:3]
    gstart = m[3:4 + npan]
    gcnt = m[4 + npan:4 + npan + ng]
    gnr = m[4 + npan + ng:4 + npan + 2 * ng]
    grows = m[4 + npan + 2 * ng:]
    assert len(grows) == nrows
    return npan, gstart, gcnt, gnr, grows


@pytest.mark.parametrize("shape,sparsity", [((20, 1000), 0.8), ((37, 700), 0.9), ((5, 100), 0.5), ((9, 400), 1.0)])
def test_panelize_groups_keep_every_nonzero(shape, sparsity):
    """Rebuild the dense weight from the groups; rows sorted by count, first/last panels list every row."""
    w = random_sparse(shape, sparsity)
    w[0] = 0  # a row without nonzeros
    op = NativeCSROp(w, None, tile=64)
    pw = panel_width(shape[1])
    meta, poff, pval = kernels.panelize(op.csr.rowptr, op.csr.col, op.csr.val, shape[1], pw)
    npan, gstart, gcnt, gnr, grows = unpack(meta)
    assert npan == -(-shape[1] // pw) and poff.dtype == torch.uint16 and pval.numel() == op.nnz
    dense = torch.zeros(shape)
    off = poff.to(torch.int64)
    assert bool((off % 256 == 0).all())
    p = ri = 0
    for q in range(npan):
        counts = [gcnt[g] for g in range(gstart[q], gstart[q + 1])]
        assert counts == sorted(counts) and len(set(counts)) == len(counts)  # one group per count, increasing
        listed = []
        for g in range(gstart[q], gstart[q + 1]):
            for _ in range(gnr[g]):
                r = grows[ri]
                listed.append(r)
                seg = slice(p, p + gcnt[g])
                dense[r, q * pw + off[seg] // 256] = pval[seg]
                assert int((w[r, q * pw:(q + 1) * pw] != 0).sum()) == gcnt[g]
                p += gcnt[g]
                ri += 1
        assert len(set(listed)) == len(listed)
        if q in (0, npan - 1):
            assert sorted(listed) == list(range(shape[0]))
    assert p == op.nnz and torch.equal(dense, w)


@pytest.mark.parametrize("tile", [64, 32])
def test_grouped_path_edge_cases(monkeypatch, tile):
    """0 % and 100 % sparsity, rows and panels without nonzeros, one panel, batch tails, 2 threads."""
    monkeypatch.setattr(ops_mod, "PANEL_MIN_NNZ", 0)  # grouped panels even where the rule would skip them
    cases = [((16, 500), 0.0), ((16, 500), 1.0), ((33, 100), 0.9), ((8, 2 * PANEL_MAX + 3), 0.95)]
    for (out, inn), s in cases:
        w = random_sparse((out, inn), s, seed=out)
        w[1] = 0
        pw = panel_width(inn)
        w[:, pw:2 * pw] = 0  # a panel with no nonzeros at all
        b = torch.randn(out)
        for relu in (False, True):
            for threads in (1, 2):
                op = NativeCSROp(w, b, relu=relu, threads=threads, tile=tile)
                assert op.panels()[0].numel() > 0
                for batch in (1, 31, 32, 63, 64, 65, 128, 200, 256):
                    x = torch.randn(inn, batch)
                    ref = torch.addmm(b[:, None], w, x)
                    ref = ref.relu() if relu else ref
                    torch.testing.assert_close(op.forward(x), ref, rtol=1e-4, atol=1e-4)


def test_bad_panels_are_rejected():
    """A chain built from tampered panel tensors raises instead of reading out of bounds."""
    w = random_sparse((12, 300), 0.7)
    op = NativeCSROp(w, None, tile=64)
    meta, poff, pval, pw = op.panels()
    layer = op.layer()
    bad_off = poff.clone()
    bad_off[0] = 255 * 256 if pw < 256 else 1  # past the panel / not a multiple of 256
    bad_meta = meta.clone()
    bad_meta[-1] = 12  # a row index out of range
    for key, t in (("pcol", bad_off), ("prow", bad_meta), ("pval", pval[:-1])):
        with pytest.raises(RuntimeError):
            kernels.make_chain([{**layer, key: t}], 300)


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


@pytest.mark.parametrize("in_features,per_panel", [(160, 0), (160, 16), (800, 20), (800, 32)])
def test_ceiling_benchmark_layers_are_one_group_per_panel(in_features, per_panel):
    """benchmarks/csr_ceiling.py's premise: exactly c nonzeros per row and panel, so each panel is one count group."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "csr_ceiling.py"
    spec = importlib.util.spec_from_file_location("csr_ceiling", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    w = bench.ideal_weight(in_features, per_panel)
    assert w.shape == (bench.ROWS, in_features) and bench.ROWS % 3 == 0
    pw = panel_width(in_features)
    per_row_panel = (w != 0).reshape(bench.ROWS, -1, pw).sum(dim=2)  # (rows, panels)
    assert bool((per_row_panel == per_panel).all())
    op = NativeCSROp(w, None, tile=64)
    meta, _, _ = kernels.panelize(op.csr.rowptr, op.csr.col, op.csr.val, in_features, pw)
    npan, gstart, gcnt, gnr, _ = unpack(meta)
    assert npan == in_features // pw
    assert gstart == list(range(npan + 1)) and gcnt == [per_panel] * npan and gnr == [bench.ROWS] * npan
    x = torch.randn(in_features, 64)
    torch.testing.assert_close(op.forward(x), w @ x, rtol=1e-4, atol=1e-4)


def test_chain_on_another_build_of_the_source():
    """make_chain(module=...) builds the chain with the module given (benchmarks/kernel_ab.py's variant build)."""
    from types import SimpleNamespace

    w = random_sparse((40, 300), 0.9)
    layers = [NativeCSROp(w, None, tile=64).layer()]
    seen = []
    other = SimpleNamespace(Chain=lambda *args: seen.append(args) or "other build")
    assert kernels.make_chain(layers, 300, module=other) == "other build" and seen[0][0] == 300
    chain = kernels.make_chain(layers, 300, module=kernels.load())  # the same arguments build a working chain
    x = torch.randn(300, 64)
    torch.testing.assert_close(chain.forward(x, False), w @ x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("in_features,width", [(1, 1), (100, 100), (224, 224), (225, 113), (300, 150), (545, 182),
                                               (784, 196), (2048, 205)])
def test_panel_width_takes_the_fewest_equal_panels(in_features, width):
    """The fewest panels of at most PANEL_MAX features, equally wide (LeNet-300-100's compacted 545 inputs: 3 x 182)."""
    assert panel_width(in_features) == width
    panels = -(-in_features // width)
    assert panels == -(-in_features // PANEL_MAX) and width <= PANEL_MAX <= 256  # uint16 byte offsets
    assert in_features - (panels - 1) * width > 0  # no empty last panel


def test_panel_widths_benchmark_builds_both_layouts_and_restores_the_rule(benchmark_script):
    """benchmarks/panel_widths.py's premise: its two operators differ only in panel width, and the rule is put back."""
    bench = benchmark_script("panel_widths")
    w, b = random_sparse((276, 545), 0.87), torch.randn(276)
    fixed = bench.op_with(lambda i: bench.FIXED, w, b, True, 1)
    balanced = bench.op_with(ops_mod.panel_width, w, b, True, 1)
    assert fixed.panels()[3] == 160 and balanced.panels()[3] == 182 and ops_mod.panel_width(545) == 182
    x = torch.randn(545, 100)
    torch.testing.assert_close(fixed.forward(x), balanced.forward(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(balanced.forward(x), torch.relu(torch.addmm(b[:, None], w, x)), rtol=1e-4, atol=1e-4)
