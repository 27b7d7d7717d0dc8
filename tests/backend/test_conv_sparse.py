"""Sparse convolutions (conv_sparse): the direct kernel, conv + ReLU + pool fusion and the compiled LeNet-5,
each checked against dense torch (F.conv2d, F.relu, F.max_pool2d) with assert_close."""

import copy
import pickle
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sparsity_viz.backend import compile_model, conv_sparse
from sparsity_viz.models import LeNet5, build_model
from sparsity_viz.pruning import prune

pytestmark = pytest.mark.skipif(conv_sparse.EXTENSION.load() is None,
                                reason="native sparse convolution kernel unavailable (no compiler)")


def _sparse_conv(cin, cout, k, density, padding=0, bias=True, seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv2d(cin, cout, k, padding=padding, bias=bias)
    with torch.no_grad():
        conv.weight.mul_(torch.rand_like(conv.weight) < density)
    return conv


# (cin, cout, k, H, W, padding): LeNet-5's two layers, a plane of < 16 positions (scalar path), one of exactly
# 16 x 8 positions, odd output sizes (the pool floors), a non-square kernel, padding
CASES = [(1, 20, 5, 28, 28, 0), (20, 50, 5, 12, 12, 0), (3, 4, 3, 5, 5, 0), (2, 3, 1, 8, 16, 0),
         (3, 5, 3, 14, 13, 0), (4, 6, (3, 2), 9, 11, 1)]


@pytest.mark.parametrize("cin,cout,k,h,w,padding", CASES)
@pytest.mark.parametrize("density", [0.0, 0.1, 1.0])
def test_direct_conv_equals_torch(cin, cout, k, h, w, padding, density):
    conv = _sparse_conv(cin, cout, k, density, padding)
    x = torch.randn(3, cin, h, w)
    with torch.no_grad():
        ref = conv(x)
        for relu, pool in ((False, 1), (True, 1), (False, 2), (True, 2)):
            want = F.relu(ref) if relu else ref
            want = F.max_pool2d(want, 2) if pool == 2 else want
            got = conv_sparse.DirectConv2d(conv, relu, pool)(x)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_taps_hold_exactly_the_nonzeros():
    conv = _sparse_conv(3, 4, 3, 0.3, bias=False)
    taps = conv_sparse.Taps.from_weight(conv.weight)
    rebuilt = torch.zeros(4, 3, 9)
    for o in range(4):
        for t in range(int(taps.ptr[o]), int(taps.ptr[o + 1])):
            rebuilt[o, taps.chan[t], taps.k[t]] = taps.val[t]
    assert torch.equal(rebuilt.view_as(conv.weight), conv.weight.detach())
    assert int(taps.ptr[-1]) == int((conv.weight != 0).sum())
    x = torch.randn(2, 3, 7, 7)
    with torch.no_grad():  # no bias: the kernel takes an empty one
        torch.testing.assert_close(conv_sparse.DirectConv2d(conv)(x), conv(x), rtol=1e-5, atol=1e-5)


def test_unsupported_convs_say_why():
    for conv, why in ((nn.Conv2d(4, 4, 3, groups=2), "grouped"), (nn.Conv2d(1, 2, 3, stride=2), "stride"),
                      (nn.Conv2d(1, 2, 3, padding="same"), "padding")):
        assert why in conv_sparse.direct_problem(conv)
        with pytest.raises(ValueError, match=why):
            conv_sparse.DirectConv2d(conv)


class Functional(nn.Module):
    """ReLU / pool as functions, pool before ReLU, a conv used twice (never fused), a conv without pool."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 2, 3)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.a(x), 2))  # (N, 4, 7, 7)
        x = self.b(self.b(x)).relu()  # used twice: not fused
        return torch.relu(self.c(x)).flatten(1)


def test_fuse_units_finds_relu_and_pool_and_keeps_the_function():
    model = LeNet5().eval()
    gm, units = conv_sparse.fuse_units(model)
    assert units == {"conv1": (True, 2), "conv2": (True, 2)}
    for name, (relu, pool) in units.items():  # torch units computing the absorbed ReLU / pool
        setattr(gm, name, conv_sparse.TorchUnit(getattr(model, name), relu, pool))
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(gm(x), model(x))
    f = Functional().eval()
    gm, units = conv_sparse.fuse_units(f)
    assert units == {"a": (True, 2), "c": (True, 1)}


def test_fuse_units_traces_once_per_architecture(monkeypatch):
    """A torch.fx trace patches nn.Module for every thread: compiling each new pruned model must not trace."""
    from sparsity_viz import layers

    traces = []
    real = layers._OwnThreadTracer.trace  # every trace in the project (layers.fx_trace)
    monkeypatch.setattr(layers._OwnThreadTracer, "trace",
                        lambda self, m, *a, **k: traces.append(type(m)) or real(self, m, *a, **k))
    monkeypatch.setattr(layers, "_TRACED", {})
    x = torch.randn(4, 1, 28, 28)
    for seed in (0, 1, 2):
        model = build_model("lenet5", seed=seed).eval()
        gm, units = conv_sparse.fuse_units(model)
        assert units == {"conv1": (True, 2), "conv2": (True, 2)}
        assert gm.conv1 is model.conv1 and gm.fc1 is model.fc1  # this model's own layers
        for name, (relu, pool) in units.items():
            setattr(gm, name, conv_sparse.TorchUnit(getattr(model, name), relu, pool))
        with torch.no_grad():
            torch.testing.assert_close(gm(x), model(x))
    assert len(traces) == 1


class _Flagged(nn.Module):
    """A forward that branches on a flag and scales by a constant: plain attributes, not parameters."""

    def __init__(self, use_relu: bool, scale: float | torch.Tensor):
        super().__init__()
        self.use_relu, self.scale = use_relu, scale
        self.conv, self.fc = nn.Conv2d(1, 4, 5), nn.Linear(4 * 12 * 12, 3)

    def forward(self, x):
        x = self.conv(x)
        if self.use_relu:
            x = torch.relu(x)
        return self.fc(F.max_pool2d(x, 2).flatten(1)) * self.scale


def test_models_of_one_class_with_other_attributes_get_their_own_graph(monkeypatch):
    """Found by an audit: the graph cached per architecture ran a second model of the class with the first one's
    flag and constant (0.5 % off, under the compile's own logits check, or unchecked with every layer dense)."""
    from sparsity_viz import layers

    monkeypatch.setattr(layers, "_TRACED", {})
    x = torch.randn(2, 1, 28, 28)
    torch.manual_seed(0)
    models = [_Flagged(True, 1.0), _Flagged(True, 1.005), _Flagged(False, 1.0), _Flagged(True, torch.tensor(2.0)),
              _Flagged(True, torch.tensor(3.0))]
    for model in models:
        model.eval()
        for formats in (None, ("dense",)):
            compiled = compile_model(model, batch_size=2, policy="heuristic", formats=formats)
            with torch.no_grad():
                torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-6)
    assert layers._structure(models[3]) is None  # a tensor attribute: traced for each model, never shared


@pytest.fixture(scope="module")
def lenet5_90():
    return prune(build_model("lenet5", seed=0), "global_magnitude", 0.9).model.eval()


def test_compiled_lenet5_equals_dense_and_uses_sparse_units(lenet5_90):
    x = torch.randn(40, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = lenet5_90(x)
    forced = compile_model(lenet5_90, batch_size=32, device="cpu", formats=("direct-native",))
    convs = [p for p in forced.plans if p.name.startswith("conv")]
    assert [p.format for p in convs] == ["direct-native", "direct-native"]
    for p in convs:  # 12 bytes per nonzero tap (value, channel, tap index) + 4 per output channel pointer
        w = getattr(lenet5_90, p.name).weight
        assert p.nbytes == 12 * int((w != 0).sum()) + 4 * (w.shape[0] + 1)
    torch.testing.assert_close(forced(x), ref, rtol=1e-4, atol=1e-5)
    for clone in (copy.deepcopy(forced), pickle.loads(pickle.dumps(forced))):  # the fx module pickles
        torch.testing.assert_close(clone(x), ref, rtol=1e-4, atol=1e-5)
    measured = compile_model(lenet5_90, batch_size=32, device="cpu", repeats=3, calibration=x)
    convs = {p.name: p for p in measured.plans if p.name.startswith("conv")}
    for p in convs.values():
        assert {"dense", "direct-native"} <= set(p.times_us)  # every candidate unit was timed
        assert p.format in p.times_us
    torch.testing.assert_close(measured(x), ref, rtol=1e-4, atol=1e-5)
    text = measured.explain()  # whichever unit the timings chose, the explanation names it for every conv
    for p in convs.values():
        assert p.format in ("dense", "direct-native") or p.format.startswith("im2col"), p.format
        assert re.search(rf"{p.name} .*{re.escape(p.format)}", text), text


def test_heuristic_and_unsupported_convs_still_compute_the_model():
    f = Functional().eval()
    with torch.no_grad():
        f.b.weight.mul_(torch.rand_like(f.b.weight) < 0.2)
    x = torch.randn(5, 1, 16, 16)
    with torch.no_grad():
        ref = f(x)
    for policy in ("heuristic", "measure"):
        compiled = compile_model(f, batch_size=5, device="cpu", policy=policy, repeats=3, calibration=x)
        torch.testing.assert_close(compiled(x), ref, rtol=1e-4, atol=1e-5)
    plans = {p.name: p for p in compiled.plans}
    assert set(plans) == {"a", "b", "c"}


def test_direct_conv_on_one_and_two_threads_equals_torch():
    from sparsity_viz.devices import torch_threads

    conv = _sparse_conv(20, 50, 5, 0.3)
    x = torch.randn(8, 20, 12, 12)
    with torch.no_grad():
        want = F.max_pool2d(F.relu(conv(x)), 2)
    with torch_threads(2):
        unit = conv_sparse.DirectConv2d(conv, True, 2)
        for _ in range(4):  # the guard runs both thread counts (the other one as a probe)
            torch.testing.assert_close(unit(x), want, rtol=1e-5, atol=1e-5)
        assert set(unit.guard.summary()[8]["median_us"]) == {1, 2}


def test_nan_reaches_the_fused_pool_as_in_torch():
    """Found by an audit: the fused 2x2 pool took std::max, which drops a NaN in its second argument."""
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    for where in [(0, 0), (0, 1), (1, 0), (1, 1)]:
        x = torch.full((1, 1, 2, 2), 5.0)
        x[0, 0][where] = float("nan")
        for relu in (False, True):
            got = conv_sparse.DirectConv2d(conv, relu, 2)(x)
            assert torch.isnan(got).all(), (where, relu)


def test_wrong_channels_and_empty_batches_behave_as_nn_conv2d(lenet5_90):
    """Found by an audit: a 3-channel input ran on channel 0 alone; an im2col unit failed to reshape a batch of 0."""
    x = torch.randn(2, 3, 28, 28)
    for formats in (("direct-native",), ("csr-native",), ("csr-torch",)):
        compiled = compile_model(lenet5_90, batch_size=8, device="cpu", policy="heuristic", formats=formats)
        with pytest.raises(ValueError, match=r"takes input \(N, 1, H, W\), got shape \(2, 3, 28, 28\)"):
            compiled(x)
        assert compiled(torch.randn(0, 1, 28, 28)).shape == (0, 10)
