"""int8 weights on the sparse kernel: equal to the fake-quantized model, zeros kept, fallback, bad input."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sparsity_viz.backend import int8, kernels
from sparsity_viz.backend.bench import benchmark_model
from sparsity_viz.backend.speed_report import SpeedSettings, measure_speed
from sparsity_viz.models import MLP
from sparsity_viz.quantization.base import MIN_SCALE


def native_or_skip():
    if not int8.available():
        pytest.skip("no int8 kernel here: " + str(int8.notice()))


def weight(kind: str, shape=(37, 150), seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    if kind == "90%":
        w[torch.rand(shape, generator=g) < 0.9] = 0
    elif kind == "empty_rows":  # every third row pruned completely, the rest 50 %
        w[torch.rand(shape, generator=g) < 0.5] = 0
        w[::3] = 0
    elif kind == "all_zero":
        w.zero_()
    elif kind == "one_per_row":  # a single surviving weight per row (and one 100 % sparse row)
        keep = torch.zeros(shape, dtype=torch.bool)
        keep[torch.arange(shape[0]), torch.randint(shape[1], (shape[0],), generator=g)] = True
        keep[-1] = False
        w = w * keep
    elif kind == "outlier":  # one huge weight per row: most of the row rounds to zero
        w[:, 0] = 1000.0
    return w


def reference(w, b, x, relu):
    """The fake-quantized model: per-row symmetric int8 by torch, then dense F.linear."""
    scale = int8.row_scales(w)
    wq = torch.fake_quantize_per_channel_affine(w, scale, torch.zeros(w.shape[0], dtype=torch.int32), 0, -127, 127)
    y = F.linear(x, wq, b)
    return F.relu(y) if relu else y


def test_a_hand_computed_row_quantization():
    w = torch.tensor([[2.54, -1.0, 0.0, 0.004], [0.0, 0.0, 0.0, 0.0], [-0.5, 0.25, 0.0, 0.0]])
    q, scale = int8.quantize_rows(w)
    torch.testing.assert_close(scale, torch.tensor([0.02, 1.0, 0.5 / 127]))
    assert q.dtype == torch.int8
    assert q.tolist() == [[127, -50, 0, 0], [0, 0, 0, 0], [-127, 64, 0, 0]]  # 0.004 / 0.02 = 0.2 rounds to zero
    csr = int8.Int8CSR.from_dense(w)
    assert csr.nnz == 4 and csr.rowptr.tolist() == [0, 2, 2, 4] and csr.col.tolist() == [0, 1, 0, 1]
    assert csr.col.dtype == torch.int16 and csr.nbytes == 4 * 4 + 4 * 2 + 4 * 1 + 3 * 4


@pytest.mark.parametrize("kind", ["90%", "empty_rows", "all_zero", "one_per_row", "outlier", "dense"])
def test_dequantized_csr_is_exactly_torchs_fake_quantization_and_pruned_weights_stay_zero(kind):
    w = weight(kind)
    csr = int8.Int8CSR.from_dense(w)
    fq = torch.fake_quantize_per_channel_affine(w, int8.row_scales(w), torch.zeros(w.shape[0], dtype=torch.int32),
                                                0, -127, 127)
    assert torch.equal(csr.dequantize(), fq)
    assert torch.equal(int8.fake_quantize_rows(w), fq)
    assert bool((csr.dequantize()[w == 0] == 0).all())  # a pruned weight stays exactly zero
    assert csr.nnz == int((fq != 0).sum()) <= int((w != 0).sum())
    assert bool((csr.qval != 0).all()) and bool((csr.qval.to(torch.int32).abs() <= 127).all())


@pytest.mark.parametrize("batch", [1, 7, 64, 100])
@pytest.mark.parametrize("kind", ["90%", "empty_rows", "all_zero", "one_per_row", "outlier"])
@pytest.mark.parametrize("relu,bias", [(False, False), (True, True), (False, True)])
def test_native_int8_csr_equals_the_fake_quantized_layer(kind, batch, relu, bias):
    native_or_skip()
    w = weight(kind)
    b = torch.randn(w.shape[0]) if bias else None
    x = torch.randn(batch, w.shape[1])
    op = int8.Int8CSROp(w, b, relu)
    assert op.uses_native
    y = op.forward(x.t().contiguous())  # feature-major in and out
    assert y.shape == (w.shape[0], batch)
    torch.testing.assert_close(y.t(), reference(w, b, x, relu))


def test_int32_columns_for_wide_layers():
    native_or_skip()
    w = weight("90%", shape=(5, 40000))
    op = int8.Int8CSROp(w, torch.randn(5), True)
    assert op.csr.col.dtype == torch.int32
    x = torch.randn(3, 40000)
    # 4,000 products per output summed in another order than F.linear's: fp32 rounding grows with the width
    torch.testing.assert_close(op.forward(x.t().contiguous()).t(), reference(w, op.bias, x, True), rtol=1e-5, atol=1e-4)


def test_fallback_gives_the_same_numbers_with_a_notice(monkeypatch):
    w, b = weight("empty_rows"), torch.randn(37)
    x = torch.randn(9, 150)
    fallback = int8.Int8CSROp(w, b, relu=True, force_fallback=True)
    assert not fallback.uses_native
    y = fallback.forward(x.t().contiguous()).t()
    torch.testing.assert_close(y, reference(w, b, x, True))
    if int8.available():
        torch.testing.assert_close(int8.Int8CSROp(w, b, relu=True).forward(x.t().contiguous()).t(), y)
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    assert not int8.available() and int8.ready()
    assert "SPARSITY_VIZ_NATIVE=0" in int8.notice() and "fallback" in int8.notice()
    env_off = int8.Int8CSROp(w, b, relu=True)
    torch.testing.assert_close(env_off.forward(x.t().contiguous()).t(), y)


@pytest.mark.parametrize("force_fallback", [False, True])
def test_whole_mlp_equals_the_fake_quantized_model(force_fallback):
    if not force_fallback:
        native_or_skip()
    torch.manual_seed(0)
    model = MLP(20, (16, 9), 4).eval()
    with torch.no_grad():
        model.fc1.weight[torch.rand(16, 20) < 0.8] = 0
        model.fc2.weight[3] = 0  # a dead row
    fq = MLP(20, (16, 9), 4).eval()
    fq.load_state_dict(model.state_dict())
    with torch.no_grad():
        for name in ("fc1", "fc2", "fc3"):
            getattr(fq, name).weight.copy_(int8.fake_quantize_rows(getattr(model, name).weight))
    q8 = int8.Int8SparseMLP(model, force_fallback=force_fallback)
    assert q8.native is not force_fallback
    for batch in (1, 7, 64, 100, 300):  # above 64: 64-sample chunks through every layer, and a remainder
        x = torch.randn(batch, 20)
        with torch.no_grad():
            torch.testing.assert_close(q8(x), fq(x))
    weightonly = int8.int8_dense_model(model, "weightonly")
    with torch.no_grad():
        torch.testing.assert_close(weightonly(x), fq(x), rtol=1e-4, atol=1e-5)
        dynamic = int8.int8_dense_model(model, "dynamic")  # also rounds activations: close, not equal
        assert float((dynamic(x) - fq(x)).abs().max()) < 0.05 * float(fq(x).abs().max()) + 1e-3


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_weights_are_one_clear_value_error(bad):
    w = weight("90%")
    w[2, 3] = bad
    with pytest.raises(ValueError, match="NaN/inf"):
        int8.Int8CSR.from_dense(w)
    with pytest.raises(ValueError, match="NaN/inf"):
        int8.quantize_rows(w)


def test_other_bad_input_is_a_value_error():
    with pytest.raises(ValueError, match="2-D"):
        int8.quantize_rows(torch.randn(2, 3, 4))
    with pytest.raises(ValueError, match="scale"):
        int8.quantize_rows(torch.randn(2, 3), scale=torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="Unknown int8 format"):
        int8.int8_model(MLP(4, (3,), 2), "int4-magic")
    with pytest.raises(ValueError, match="MLPs with ReLU"):
        int8.Int8SparseMLP(MLP(4, (3,), 2, activation="tanh"))


def test_the_int8_extension_has_its_own_cache_dir_and_build_rules():
    assert int8.EXTENSION.cache_dir() != kernels.cache_dir()  # editing one source never rebuilds the other
    assert int8.EXTENSION.cache_dir().parent == kernels.cache_dir().parent
    native_or_skip()
    assert int8.ready() and int8.EXTENSION.built() and int8.EXTENSION.origin() in ("built", "cached")
    int8.build_in_background()  # already loaded: nothing to start
    assert int8.EXTENSION._background is None or not int8.EXTENSION._background.is_alive()


def test_an_extension_on_an_empty_cache_is_not_ready_and_a_page_never_waits(tmp_path, monkeypatch):
    monkeypatch.setenv(kernels.ENV_CACHE, str(tmp_path))
    fresh = kernels.Extension(int8.SOURCE, "sparsity_viz_int8", "native int8 sparse kernels")
    assert not fresh.ready() and not fresh.built()
    started = []
    monkeypatch.setattr(int8, "EXTENSION", fresh)
    monkeypatch.setattr(fresh, "build_in_background", lambda: started.append(True))
    model = MLP(6, (5,), 3).eval()
    rows = benchmark_model(model, [1, 4], device="cpu", formats=("dense", *int8.INT8_FORMATS), repeats=2)
    sparse = rows[rows.format == int8.SPARSE_FORMAT]
    assert len(sparse) == 2 and sparse["median_us"].isna().all()
    assert sparse["note"].str.startswith("skipped: the int8 kernel is being built").all()
    assert started  # the build was started in the background, not waited for
    dense = rows[~rows.format.isin([int8.SPARSE_FORMAT, "dense"])]
    assert len(dense) == 4 and (dense["median_us"] > 0).all() and (dense["rounds"] == 2).all()


def test_speed_report_lists_the_int8_rows_with_ratios():
    native_or_skip()
    torch.manual_seed(0)
    model = MLP(30, (20,), 5).eval()
    with torch.no_grad():
        model.fc1.weight[torch.rand(20, 30) < 0.9] = 0
    settings = SpeedSettings(batches=(1, 8), formats=("dense", "csr-native", *int8.INT8_FORMATS), repeats=3,
                             device="cpu", layer="fc1", time_cap_s=0.5)  # the rows, not their stability
    bench = measure_speed(model, settings).bench
    assert set(bench["format"]) == {"dense", "csr-native", *int8.INT8_FORMATS}
    q8 = bench[bench.format == int8.SPARSE_FORMAT].set_index("batch")
    assert sorted(q8.index) == [1, 8] and (q8["median_us"] > 0).all() and (q8["ratio_dense"] > 0).all()
    expected = int8.Int8CSR.from_dense(model.fc1.weight).nbytes + int8.Int8CSR.from_dense(model.fc2.weight).nbytes
    assert (q8["weight_bytes"] == expected).all()
    assert (q8["bytes_ratio"] == expected / (4 * (20 * 30 + 5 * 20))).all()
    # timed in the interleaved rounds with the others (an audit: their own loop, a ratio to another run's dense)
    for fmt in int8.INT8_FORMATS:
        rows = bench[bench.format == fmt]
        assert (rows["rounds"] >= 3).all() and rows["ratio_q25"].notna().all() and rows["ratio_q75"].notna().all()


def test_a_format_whose_output_is_wrong_is_not_timed(monkeypatch):
    """Found by an audit: forced formats and the int8 rows were timed without comparing their output."""
    from sparsity_viz.backend import bench

    torch.manual_seed(0)
    model = MLP(30, (20,), 5).eval()
    real = bench.compile_model

    def broken(*args, **kwargs):  # a compiled model that answers zeros
        compiled = real(*args, **kwargs)
        compiled.forward = lambda x: torch.zeros(x.shape[0], 5)
        return compiled

    monkeypatch.setattr(bench, "compile_model", broken)
    rows = benchmark_model(model, [4], device="cpu", formats=("dense", "csr-torch"), repeats=3).set_index("format")
    assert rows.loc["csr-torch", "median_us"] != rows.loc["csr-torch", "median_us"]  # NaN: not timed
    assert rows.loc["csr-torch", "note"].startswith("skipped: not timed: its output differs from the model's by up to")
    assert bench.output_problem(torch.ones(2, 3), torch.ones(2, 4)).startswith("its output has shape (2, 3)")
    assert bench.output_problem(torch.ones(2) * 1.05, torch.ones(2), approximate=True) == ""  # within 8-bit room


@pytest.mark.parametrize("batch", [1, 7, 64, 100])
def test_nan_input_stays_nan_through_relu(batch):
    """torch.relu(NaN) is NaN: the int8 kernel's fused ReLU must not turn it into 0."""
    native_or_skip()
    w = torch.randn(24, 40)  # dense: every output uses every input
    op = int8.Int8CSROp(w, torch.randn(24), True)
    x = torch.randn(batch, 40)
    x[batch // 2] = float("nan")
    y = op.forward(x.t().contiguous()).t()  # (batch, 24)
    assert bool(y[batch // 2].isnan().all())
    keep = torch.arange(batch) != batch // 2
    assert not bool(y[keep].isnan().any())


@pytest.mark.parametrize("fmt", int8.INT8_FORMATS)
def test_empty_batches_and_a_transposed_one_feature_input(fmt):
    """Found by an audit: csr-int8 failed on an empty batch (reshape(0, -1)); the weight-only kernel on a (B, 1)
    transposed view, whose last stride contiguous() leaves at B."""
    if fmt == int8.SPARSE_FORMAT:
        native_or_skip()
    model = MLP(6, (20,), 3).eval()
    assert int8.int8_model(model, fmt)(torch.randn(0, 6)).shape == (0, 3)
    one = MLP(1, (9,), 2).eval()
    x = torch.randn(1, 37).t()  # (37, 1), strides (1, 37)
    q = int8.int8_model(one, fmt)
    torch.testing.assert_close(q(x), q(x.contiguous().clone()))


def test_rows_of_tiny_weights_quantize_like_the_reference_and_zeros_stay_zero():
    """A row whose largest weight is ~1e-38 had a subnormal scale: 1/scale overflowed and every code saturated (or the
    scale rounded to 0 and quantizing raised). Scales are now at least the smallest normal float32."""
    w = torch.tensor([[1e-38, -3.3e-39, 0.0], [0.5, -0.25, 0.1], [1e-44, 0.0, 0.0]])
    scale = int8.row_scales(w)
    assert bool((scale >= MIN_SCALE).all()) and bool(torch.isfinite(1.0 / scale).all())
    csr = int8.Int8CSR.from_dense(w)
    ref = int8.fake_quantize_rows(w)
    assert torch.equal(csr.dequantize(), ref)
    assert bool((ref[w == 0] == 0).all())  # a pruned weight stays exactly zero
    assert int(csr.qval.abs().max()) <= 127 and torch.equal(csr.dequantize()[1], ref[1])
