"""Activation-sparse formats (skip zero inputs): equal to dense F.linear, chosen on real activations, reported."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsity_viz.backend import act_sparse, kernels
from sparsity_viz.backend.compiled import compile_model
from sparsity_viz.backend.dispatch import FormatUnavailable, _key, choose, default_formats, make_op, time_op
from sparsity_viz.backend.ops import run_chain
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.pruning import prune

FORMATS = act_sparse.ACT_FORMATS


def native_or_skip():
    if not act_sparse.available():
        pytest.skip("no activation-sparse kernel here: " + str(act_sparse.notice()))


def _weight(shape, sparsity: float, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(shape, generator=g)
    w[torch.rand(shape, generator=g) < sparsity] = 0
    return w


def _input(in_features: int, batch: int, zero_share: float, seed: int) -> torch.Tensor:
    """Feature-major (in, B), both signs, exactly round(zero_share * n) zeros."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(in_features, batch, generator=g)
    n = x.numel()
    x.view(-1)[torch.randperm(n, generator=g)[: round(zero_share * n)]] = 0
    return x


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ["sample", "union"])
@pytest.mark.parametrize("shape", [(7, 13), (300, 784), (10, 100), (33, 1)])
def test_every_op_equals_dense_linear(fmt, mode, shape):
    native_or_skip()
    seed = 0
    for w_sparsity in (0.0, 0.9, 1.0):
        for zeros in (0.0, 0.5, 0.9, 1.0):
            for batch in (1, 4, 16):
                for relu in (False, True):
                    for with_bias in (True, False):
                        seed += 1
                        w = _weight(shape, w_sparsity, seed)
                        b = torch.randn(shape[0]) if with_bias else None
                        x = _input(shape[1], batch, zeros, seed)
                        op = act_sparse.act_op(fmt, w, b, relu, mode)
                        ref = F.linear(x.t(), w, b)
                        ref = (torch.relu(ref) if relu else ref).t()
                        torch.testing.assert_close(op.forward(x), ref, rtol=1e-4, atol=1e-4)
    assert seed == 3 * 4 * 3 * 2 * 2


def test_all_zero_input_gives_the_bias_and_batch_major_input_is_read_in_place():
    native_or_skip()
    w, b = _weight((9, 13), 0.5, 1), torch.randn(9)
    for fmt in FORMATS:
        op = act_sparse.act_op(fmt, w, b, relu=True)
        torch.testing.assert_close(op.forward(torch.zeros(13, 3)), torch.relu(b).unsqueeze(1).expand(9, 3))
        x = _input(13, 5, 0.6, 2)
        y = op.make_chain([op.layer()], 13).forward(x.t().contiguous(), True)  # (B, in) batch-major in
        torch.testing.assert_close(y, torch.relu(F.linear(x.t(), w, b)).t())


@pytest.mark.parametrize("modes", [("sample", "sample"), ("union", "sample"), ("sample", "union")])
def test_consecutive_act_ops_fuse_into_one_chain_with_the_same_numbers(modes):
    native_or_skip()
    w1, w2 = _weight((20, 11), 0.3, 3), _weight((6, 20), 0.8, 4)
    b1, b2 = torch.randn(20), torch.randn(6)
    ops = [act_sparse.act_op("act-dense-native", w1, b1, True, modes[0]),
           act_sparse.act_op("act-csc-native", w2, b2, False, modes[1])]
    for batch in (1, 4, 16, 17):  # 17: union mode falls back to per sample beyond 16 lanes
        x = _input(11, batch, 0.5, batch)
        ref = F.linear(torch.relu(F.linear(x.t(), w1, b1)), w2, b2).t()
        torch.testing.assert_close(run_chain(ops, x), ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(run_chain(ops, x.t().contiguous(), batch_major=True), ref, rtol=1e-4, atol=1e-4)


def test_csc_stores_only_nonzero_weights():
    native_or_skip()
    w = _weight((50, 40), 0.9, 5)
    op = act_sparse.act_op("act-csc-native", w, None)
    nnz = int((w != 0).sum())
    assert op.csc.val.numel() == nnz and op.csc.col.dtype == torch.int16
    assert op.nbytes == 4 * (40 + 1) + 2 * nnz + 4 * nnz  # int32 colptr, int16 rows, fp32 values


def test_formats_are_skipped_with_a_reason_without_the_kernel(monkeypatch):
    w = _weight((8, 8), 0.5, 6)
    with pytest.raises(FormatUnavailable, match="force_fallback"):
        make_op("act-dense-native", w, None, force_fallback=True)
    monkeypatch.setenv(kernels.ENV_SWITCH, "0")
    with pytest.raises(FormatUnavailable, match="SPARSITY_VIZ_NATIVE=0"):
        make_op("act-csc-native", w, None)
    choice = choose(w, None, False, batch=1, example=torch.zeros(8, 4), repeats=3)
    assert choice.format not in FORMATS and "SPARSITY_VIZ_NATIVE=0" in choice.skipped["act-csc-native"]


def test_an_unbuilt_kernel_is_skipped_as_being_built_and_never_waited_for(tmp_path, monkeypatch):
    monkeypatch.setenv(kernels.ENV_CACHE, str(tmp_path))
    fresh = kernels.Extension(act_sparse.SOURCE, "sparsity_viz_act", "native activation-sparse kernels")
    started = []
    monkeypatch.setattr(act_sparse, "EXTENSION", fresh)
    monkeypatch.setattr(fresh, "build_in_background", lambda: started.append(True))
    with pytest.raises(FormatUnavailable, match="being built"):
        make_op("act-dense-native", _weight((4, 4), 0.0, 7), None)
    assert started == [True] and not fresh.built()


def test_random_inputs_are_not_used_to_judge_them():
    w = _weight((16, 32), 0.5, 8)
    assert set(FORMATS) <= set(default_formats(torch.device("cpu"), 16))
    assert not set(FORMATS) & set(default_formats(torch.device("cpu"), 32))
    choice = choose(w, None, False, batch=1, repeats=3)
    assert choice.format not in FORMATS and "no example input" in choice.skipped["act-dense-native"]
    assert choice.input_zero_share is None


def test_timing_key_holds_the_zero_share_bucket_and_mode():
    native_or_skip()
    w = _weight((16, 32), 0.5, 9)
    a, b = (act_sparse.act_op("act-dense-native", w, None, mode=m) for m in ("sample", "union"))
    assert _key(a, a.format, 4, "cpu", 0.5) != _key(b, b.format, 4, "cpu", 0.5)
    assert _key(a, a.format, 4, "cpu", 0.5) != _key(a, a.format, 4, "cpu", 0.9)
    assert act_sparse.zero_bucket(0.52) == 0.5 and act_sparse.zero_bucket(0.93) == 0.95
    assert act_sparse.zero_bucket(None) is None
    assert time_op(a, 3, example=_input(32, 40, 0.9, 1), repeats=3) > 0


def test_choose_reports_the_zero_share_and_rejects_a_wrong_example():
    native_or_skip()
    w = _weight((30, 64), 0.0, 10)
    x = _input(64, 32, 0.75, 11)
    c = choose(w, None, True, batch=1, example=x, repeats=5)
    assert c.input_zero_share == pytest.approx(0.75)
    assert any(k.startswith("act-dense-native[sample]") for k in c.times_us)
    c4 = choose(w, None, True, batch=4, example=x, repeats=5)
    assert {"act-dense-native[sample]", "act-dense-native[union]"} <= set(c4.times_us)
    with pytest.raises(ValueError, match="in=64"):
        choose(w, None, True, batch=1, example=torch.zeros(63, 4))


@pytest.fixture(scope="module")
def lenet():
    model, _card = load_sample("lenet300")
    pruned = prune(model, "global_magnitude", 0.9).model.eval()
    x = load_dataset("mnist5k").x_test[:64]
    return pruned, x


def _direct_input_zero_shares(model, x) -> list[float]:
    layers = [model.fc1, model.fc2, model.fc3]
    h, shares = x.flatten(1), []
    for i, layer in enumerate(layers):
        shares.append(float((h == 0).float().mean()))
        h = layer(h)
        if i < 2:
            h = torch.relu(h)
    return shares


def test_compiled_lenet_at_batch_1_equals_the_dense_model_and_reports_input_zero_shares(lenet):
    model, x = lenet
    compiled = compile_model(model, batch_size=1, calibration=x, compact=False, repeats=5)
    with torch.no_grad():
        ref = model(x[:9])
        torch.testing.assert_close(compiled(x[:9]), ref, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(compiled(x[:1]), ref[:1], rtol=1e-4, atol=1e-4)
    table = compiled.plan_table()
    assert table["input_zeros"].tolist() == pytest.approx(_direct_input_zero_shares(model, x))
    assert table["input_zeros"][0] == 0.0  # normalised MNIST pixels: no exact zeros at fc1
    assert table["input_zeros"][1] > 0.3  # ReLU outputs
    assert "input zeros" in compiled.explain()


def test_forcing_an_act_format_on_lenet_gives_the_same_logits(lenet):
    native_or_skip()
    model, x = lenet
    for fmt in FORMATS:
        compiled = compile_model(model, batch_size=1, formats=(fmt,), calibration=x)
        assert {p.format for p in compiled.plans} == {fmt}
        assert all(p.input_zero_share is not None for p in compiled.plans)
        with torch.no_grad():
            torch.testing.assert_close(compiled(x[:5]), model(x[:5]), rtol=1e-4, atol=1e-4)


def test_bad_calibration_is_a_clear_error(lenet):
    model, _ = lenet
    with pytest.raises(ValueError, match="784"):
        compile_model(model, batch_size=1, calibration=torch.zeros(4, 100))


def test_calibration_of_the_wrong_shape_for_a_conv_model_is_a_clear_error():
    """Only MLPs were checked: LeNet-5 with 20x20 calibration images raised torch's matmul RuntimeError."""
    from sparsity_viz.models import LeNet5

    with pytest.raises(ValueError, match=r"calibration inputs of shape \(1, 20, 20\) do not fit the model"):
        compile_model(LeNet5(), batch_size=4, policy="heuristic", device="cpu", calibration=torch.randn(4, 1, 20, 20))


def test_a_conv_model_of_other_than_28x28_inputs_asks_for_calibration():
    """Found by an audit: without calibration= the guess of 28x28 inputs raised torch's matmul error from inside."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 15 * 15, 10))
    with pytest.raises(ValueError, match=r"guessed inputs of shape \(3, 28, 28\) do not fit the model .*"
                                         r"pass calibration= a few real inputs"):
        compile_model(model, batch_size=4, policy="heuristic", device="cpu")
    x = torch.randn(4, 3, 32, 32)
    compiled = compile_model(model, batch_size=4, policy="heuristic", device="cpu", calibration=x)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)
